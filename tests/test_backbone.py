"""What SK-Tuning asks of a backbone, through transformers' generic interfaces, and its refusals."""

import pytest
import torch
from conftest import tiny_backbone

from sktuning import SKModel, SKTuningConfig


def test_non_transformers_backbone_is_rejected():
    with pytest.raises(ValueError, match="must be a transformers PreTrainedModel"):
        SKModel(torch.nn.Linear(2, 2), SKTuningConfig(text="t"), [3])


def test_backbone_without_a_cache_fails_at_construction_naming_prompt_mode():
    """A forward without a cache argument stands for an architecture that cannot take a prefix."""
    backbone = tiny_backbone("llama")
    original = type(backbone).forward

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kw):
        return original(self, input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds)

    backbone.forward = forward.__get__(backbone)
    with pytest.raises(ValueError, match="takes no key/value cache.*use mode='prompt'"):
        SKModel(backbone, SKTuningConfig(text="t", mode="prefix"), [7, 8])
    SKModel(backbone, SKTuningConfig(text="t", mode="prompt"), [7, 8])  # prompt mode still works
