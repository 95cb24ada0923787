"""The frozen text is encoded once; the adapter runs once per forward at batch 1 and is broadcast."""

import pytest
import torch
from conftest import padded_batch, random_ids, tiny_backbone

from sktuning import SKModel, SKTuningConfig
from sktuning.core import kv_prefix as prefix_module


def counting_calls(module):
    calls = []
    module.register_forward_hook(lambda mod, args, kwargs, out: calls.append(kwargs), with_kwargs=True)
    return calls


@pytest.mark.parametrize("mode", ["prompt", "prefix"])
def test_backbone_runs_once_per_step_and_text_is_a_buffer(mode):
    model = SKModel(tiny_backbone("llama"), SKTuningConfig(mode=mode, text="t"), random_ids(4, seed=9))
    assert "semantic.representation" not in model.state_dict()  # derived from the backbone, never saved
    assert not model.semantic.representation.requires_grad
    backbone_calls = counting_calls(model.backbone)
    ids, mask, _ = padded_batch([5, 3, 4], "right")
    for _ in range(3):
        model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0])).loss.backward()
    assert len(backbone_calls) == 3  # the text is never re-encoded


@pytest.mark.parametrize("mode", ["prompt", "prefix"])
def test_adapter_runs_at_batch_one_and_is_expanded_not_copied(mode, monkeypatch):
    model = SKModel(tiny_backbone("llama"), SKTuningConfig(mode=mode, text="t"), random_ids(4, seed=9))
    adapter_inputs = []
    model.semantic.adapter.register_forward_hook(lambda mod, args, out: adapter_inputs.append(args[0].shape))
    strides = []
    original = prefix_module.PrefixLayer.__init__

    def recording_init(self, keys, values):
        strides.append(keys.stride(0))
        original(self, keys, values)

    monkeypatch.setattr(prefix_module.PrefixLayer, "__init__", recording_init)
    embeds = []
    model.backbone.register_forward_hook(lambda m, a, kw, o: embeds.append(kw.get("inputs_embeds")), with_kwargs=True)
    ids, mask, _ = padded_batch([5, 3, 4, 6], "right")
    model(input_ids=ids, attention_mask=mask)
    assert len(adapter_inputs) == 1
    groups = 1 if mode == "prompt" else 2 * 2  # keys and values of 2 layers
    assert adapter_inputs[0][0] == groups  # one text, not one per example
    if mode == "prefix":
        assert strides == [0, 0]  # (batch, ...) views with stride 0: the prefix is broadcast
    else:
        assert embeds[0].shape[:2] == (4, 4 + 6)
