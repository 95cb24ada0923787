"""Gradient checkpointing with a prefix: PEFT refuses prefix tuning with it; here the frozen backbone's
activations are recomputed in the backward pass, and the adapter's and head's gradients must equal
those computed without checkpointing (1e-5), for both modes, on decoders and an encoder, either padding side."""

import pytest
import torch
from conftest import DECODERS, padded_batch, tiny_backbone

from sktuning import SKModel, SKTuningConfig

ARCHS = DECODERS + ["bert"]


def gradients(arch: str, mode: str, side: str, checkpointing: bool) -> dict[str, torch.Tensor]:
    backbone = tiny_backbone(arch)
    if checkpointing:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(1)
    model = SKModel(backbone, SKTuningConfig(mode=mode, text="w7 w8 w9 w10", num_labels=3, head_dropout=0.0), [7, 8, 9, 10])
    with torch.no_grad():  # away from the identity, so every adapter tensor gets a gradient
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    model.train()
    ids, mask, _ = padded_batch([5, 3, 4], side)
    model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 2, 1])).loss.backward()
    assert backbone.is_gradient_checkpointing == checkpointing
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("mode", ["prefix", "prompt"])
def test_checkpointed_gradients_equal_the_plain_ones(arch, mode):
    for side in ("left", "right"):
        plain, checkpointed = gradients(arch, mode, side, False), gradients(arch, mode, side, True)
        assert plain.keys() == checkpointed.keys() and any(g.abs().sum() > 0 for g in plain.values())
        for name in plain:
            torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-5, rtol=1e-4, msg=name)
