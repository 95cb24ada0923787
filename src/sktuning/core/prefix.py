"""SK-Prefix: text -> one forward pass of the frozen backbone -> each layer's keys and values ->
per-layer adapter -> that layer's key/value prefix for every input, through the Cache API.

Shapes: the text's cache holds, per layer, keys and values of (1, kv_heads, m, head_dim). They are
flattened to a (2 * layers, m, kv_heads * head_dim) representation, refined by one batched adapter,
and handed back to the backbone as a read-only cache expanded (not copied) to the batch
(`sktuning.core.kv_prefix`).

Where layers' keys and values differ in shape (latent attention, per-layer head sizes), the entries of
each width get an adapter of their own (`GroupedAdapter`, parameters `adapter.adapters.width_<w>.*`) and
each layer gets back keys and values of its own shape, as per-layer lists.
"""

from __future__ import annotations

import torch
from torch import nn


from sktuning.core.adapters import GroupedAdapter
from sktuning.core.kv_prefix import (KeyValuePrefix, allow_checkpointing_with_prefix, kept, require_cache_argument,
                                     text_key_values, uniform, unkept, widths)
from sktuning.core.semantic import SemanticText


class SemanticPrefix(SemanticText):
    joins_as_prefix = True

    def __init__(self, backbone: nn.Module, text_input_ids: torch.Tensor, config):
        require_cache_argument(backbone)  # refused before the text pass, which needs the cache
        super().__init__(backbone, text_input_ids, config)
        allow_checkpointing_with_prefix(backbone)
        self.check_runs(backbone, "does not read a key/value prefix through transformers' Cache API ({error}), so "
                                  "SK-Prefix cannot be used with it; use mode='prompt' instead.")

    @torch.no_grad()
    def encode(self, backbone: nn.Module) -> tuple[torch.Tensor, tuple[int, ...]]:
        """(2 * layers, m, kv_heads * head_dim) keys and values, and the (kv_heads, m, head_dim) of one."""
        ids = self.text_input_ids.unsqueeze(0).to(backbone.get_input_embeddings().weight.device)
        return text_key_values(backbone, self.cache_keyword, self._positions(torch.ones_like(ids)), input_ids=ids)

    def make_adapter(self, backbone: nn.Module, representation: torch.Tensor, config) -> nn.Module:
        if uniform(self.shape):
            return super().make_adapter(backbone, representation, config)
        return GroupedAdapter(config.adapter, representation, widths(self.shape), rank=config.adapter_rank)

    def refined_key_values(self, backbone: nn.Module) -> torch.Tensor:
        """The refined keys and values, flat as `text_key_values` gives them: the adapter's output, computed
        once per forward; a mode that makes them with the backbone (the authors' SK-Prefix) overrides this."""
        return self.adapter(self.representation)

    def contribution(self, backbone: nn.Module) -> KeyValuePrefix:
        """The prefix every input reads: (layers, 1, kv_heads, m, head_dim) keys and values (per-layer lists
        where shapes differ)."""
        merged = self.merged if self.merged is not None else kept(self.refined_key_values(backbone), self.shape)
        return KeyValuePrefix(*unkept(merged, self.shape))

    @torch.no_grad()
    def merge(self, backbone: nn.Module) -> None:
        # a copy: not a view of a weight that may train on
        self.merged = kept(self.refined_key_values(backbone), self.shape).detach().clone()

    def inject(self, backbone, input_ids, inputs_embeds, attention_mask, token_type_ids, writable=False):
        return self.prefix_arguments(backbone, self.contribution(backbone), input_ids, inputs_embeds, attention_mask,
                                     token_type_ids, writable)
