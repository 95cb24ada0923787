"""SK-Prompt: text -> frozen input-embedding layer -> adapter -> prepended to the input's embeddings.

Shapes: text ids (m,) -> representation (1, m, d) -> adapter (1, m, d) -> expanded (batch, m, d),
concatenated before the input's (batch, seq, d) embeddings. The attention mask gains m ones and
position ids continue after the text, counting only real tokens so that left padding is harmless.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sktuning.semantic import SemanticText


class SemanticPrompt(SemanticText):
    def __init__(self, backbone: nn.Module, text_input_ids: torch.Tensor, config):
        super().__init__(backbone, text_input_ids, config)
        self.virtual_positions = self.num_text_tokens

    @torch.no_grad()
    def encode(self, backbone: nn.Module) -> torch.Tensor:
        embedding = backbone.get_input_embeddings()
        ids = self.text_input_ids.to(embedding.weight.device)
        return embedding(ids).float().unsqueeze(0)  # (1, m, d)

    def inject(self, backbone, input_ids, inputs_embeds, attention_mask, token_type_ids) -> dict[str, Any]:
        if inputs_embeds is None:
            inputs_embeds = backbone.get_input_embeddings()(input_ids)
        batch = inputs_embeds.shape[0]
        prompt = self.adapter(self.representation).to(inputs_embeds.dtype)  # once, at batch size 1
        prompt = prompt.expand(batch, -1, -1)                               # broadcast, no copy
        text_mask = attention_mask.new_ones(batch, self.num_text_tokens)
        full_mask = torch.cat([text_mask, attention_mask], dim=1)
        kwargs = {"inputs_embeds": torch.cat([prompt, inputs_embeds], dim=1), "attention_mask": full_mask,
                  **self._positions(full_mask)}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = torch.cat([token_type_ids.new_zeros(batch, self.num_text_tokens), token_type_ids], dim=1)
        return kwargs
