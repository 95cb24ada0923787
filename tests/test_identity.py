"""The core correctness property: an untrained SK model is the backbone reading `text + input`."""

import pytest
import torch
from conftest import DECODERS, ENCODERS, TINY_CONFIGS, padded_batch, random_ids, tiny_backbone

from sktuning import ADAPTERS, SKModel, SKTuningConfig

TEXT_LEN = 5


def max_identity_error(model: SKModel, text: torch.Tensor, side: str) -> float:
    """Largest difference, over all layers and real tokens, from the backbone run on text + input."""
    ids, mask, rows = padded_batch([7, 3, 6], side)
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    worst = 0.0
    for b, row in enumerate(rows):
        ref = model.backbone(input_ids=torch.cat([text, row])[None], output_hidden_states=True).hidden_states
        assert len(ref) == len(out.hidden_states)
        for got, want in zip(out.hidden_states, ref):
            assert got.shape[:2] == ids.shape  # only the input's positions are returned
            worst = max(worst, (got[b, mask[b].bool()] - want[0, TEXT_LEN:]).abs().max().item())
    return worst


def sk_model(arch: str, mode: str, adapter: str = "lowrank", wrapper: str = "base") -> tuple[SKModel, torch.Tensor]:
    text = random_ids(TEXT_LEN, seed=9)
    config = SKTuningConfig(mode=mode, text="task text", adapter=adapter)
    return SKModel(tiny_backbone(arch, wrapper=wrapper), config, text).eval(), text


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("arch", list(TINY_CONFIGS))
def test_prompt_identity_matches_concatenated_text(arch, side):
    model, text = sk_model(arch, "prompt")
    assert max_identity_error(model, text, side) <= 1e-4


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("arch", DECODERS)
def test_prefix_identity_matches_concatenated_text(arch, side):
    model, text = sk_model(arch, "prefix")
    assert max_identity_error(model, text, side) <= 1e-4


@pytest.mark.parametrize("mode", ["prompt", "prefix"])
@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_every_adapter_starts_at_identity(adapter, mode):
    model, text = sk_model("llama", mode, adapter=adapter)
    assert max_identity_error(model, text, "left") <= 1e-4


@pytest.mark.parametrize("mode", ["prompt", "prefix"])
def test_trained_adapter_breaks_identity(mode):
    """The invariant test can fail: a non-identity adapter changes the hidden states."""
    model, text = sk_model("llama", mode, adapter="scale")
    with torch.no_grad():
        model.semantic.adapter.shift.add_(0.5)
    assert max_identity_error(model, text, "right") > 1e-2


@pytest.mark.parametrize("arch", ENCODERS)
def test_prefix_on_encoder_reads_text_alone(arch):
    """In a bidirectional encoder the text's keys/values cannot see the input: close, not equal, to text + input."""
    model, text = sk_model(arch, "prefix")
    error = max_identity_error(model, text, "right")
    assert 1e-7 < error < 1.0
    bare = model.backbone(input_ids=random_ids(1, 6, seed=3)).last_hidden_state
    with_text = model(input_ids=random_ids(1, 6, seed=3), output_hidden_states=True).hidden_states[-1]
    assert (bare - with_text).abs().max() > 1e-5  # the prefix is really read


@pytest.mark.parametrize("arch,wrapper", [("llama", "causal-lm"), ("gpt2", "causal-lm"), ("bert", "masked-lm"),
                                          ("roberta", "masked-lm")])
def test_lm_wrappers_use_inner_base_model(arch, wrapper):
    model, text = sk_model(arch, "prompt", wrapper=wrapper)
    assert "For" not in type(model.backbone).__name__
    assert max_identity_error(model, text, "right") <= 1e-4


def test_identity_holds_in_bf16_within_bf16_precision():
    model, text = sk_model("llama", "prefix")
    model.backbone.to(torch.bfloat16)
    ids, mask, rows = padded_batch([6, 4], "left")
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    ref = model.backbone(input_ids=torch.cat([text, rows[1]])[None], output_hidden_states=True).hidden_states
    assert out.hidden_states[-1].dtype == torch.bfloat16
    assert (out.hidden_states[-1][1, mask[1].bool()].float() - ref[-1][0, TEXT_LEN:].float()).abs().max() < 0.1
