"""What the benchmark scripts share: PEFT baselines under SKModel's own pooling and head."""

from __future__ import annotations

import warnings

import peft
import torch
import transformers
from torch import nn

from sktuning.core.heads import pool


def quiet_cpu_setup(threads: int) -> None:
    """The same thread count for every method, and no library chatter in the printed tables."""
    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)


class PeftWithHead(nn.Module):
    """A PEFT feature-extraction model under the same masked last-token pooling and linear head as
    SKModel, so that only the method differs. (PEFT 0.21's SEQ_CLS prefix path looks for a
    `past_key_values` argument, which transformers 5.24 renamed `cache`, and refuses to run.)"""

    def __init__(self, backbone, config, num_labels: int = 2):
        super().__init__()
        # prompt-style methods put their virtual tokens in front of the output: skip them
        virtual = isinstance(config, (peft.PromptTuningConfig, peft.PromptEncoderConfig))
        self.skip = config.num_virtual_tokens if virtual else 0
        self.model = peft.get_peft_model(backbone, config)
        self.head = nn.Linear(backbone.config.hidden_size, num_labels, device=backbone.device)

    def forward(self, input_ids, attention_mask, labels):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, self.skip:]
        return nn.functional.cross_entropy(self.head(pool(hidden, attention_mask, "last")).float(), labels)
