"""The interface every SK-Tuning mode implements: semantic text in, its contribution (prompt vectors or
a key/value prefix) out, joined to every input as backbone arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sktuning.core.adapters import build_adapter
from sktuning.core.backbone import accepts, cache_argument, eval_mode, position_ids_from_mask, position_offset
from sktuning.core.config import SKTuningConfig
from sktuning.core.errors import BACKBONE_REFUSALS, UsageError, brief
from sktuning.core.kv_prefix import KeyValuePrefix, prefix_inputs, run_with_prefix
from sktuning.core.padding import gather_positions, restore_positions, right_aligned


@dataclass(frozen=True)
class PromptVectors:
    """What SK-Prompt contributes while it stays vectors: (1, m, d), put before every input's embeddings."""

    vectors: torch.Tensor


class SemanticText(nn.Module):
    """Holds the text's token ids, its frozen representation and the adapter that refines it.

    A mode computes the frozen representation once, at construction (a buffer, never recomputed
    per step), and at every forward runs the adapter once at batch size 1 and broadcasts it.
    """

    #: leading positions of the backbone's output that belong to the text, not to the input
    virtual_positions: int = 0
    #: whether the text reaches the backbone as a key/value prefix (SK-Prefix, SK-Prompt merged on a decoder)
    joins_as_prefix: bool = False

    def __init__(self, backbone: nn.Module, text_input_ids: torch.Tensor, config: SKTuningConfig):
        super().__init__()
        #: the keyword the backbone takes a key/value cache under; None where it takes none
        self.cache_keyword = cache_argument(backbone)
        self.register_buffer("text_input_ids", text_input_ids.detach().clone().long(), persistent=True)
        self.position_offset = position_offset(backbone)
        self.takes_position_ids = accepts(backbone, "position_ids")
        representation, self.shape = self.encode(backbone)
        self.register_buffer("representation", representation, persistent=False)
        self.register_buffer("merged", None, persistent=False)  # the adapter's output, frozen by merge()
        self.adapter = self.make_adapter(backbone, representation, config)

    def make_adapter(self, backbone: nn.Module, representation: torch.Tensor, config: SKTuningConfig) -> nn.Module:
        """What trains: by default an adapter of the frozen representation (`sktuning.core.adapters`)."""
        return build_adapter(config.adapter, representation, rank=config.adapter_rank)

    @property
    def num_text_tokens(self) -> int:
        return int(self.text_input_ids.numel())

    def encode(self, backbone: nn.Module) -> tuple[torch.Tensor, tuple[int, ...]]:
        """The frozen representation of the text, (groups, tokens, dim) in fp32, and the mode's own
        shape of it (what the adapter's output unflattens to)."""
        raise NotImplementedError

    def contribution(self, backbone: nn.Module) -> PromptVectors | KeyValuePrefix:
        """What the refined text adds to every input, as the backbone reads it: the one source for the
        forward, generation, many adapters on one backbone and export. It takes the backbone because a
        mode may need it to make its contribution (the authors' SK-Prefix re-reads its text with it)."""
        raise NotImplementedError

    def inject(self, backbone: nn.Module, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
               attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None,
               writable: bool = False) -> dict[str, Any]:
        """Keyword arguments for `backbone(...)` that join the contribution to every input.

        `writable`: generation's prefill, where the backbone must get a cache it can extend.
        """
        raise NotImplementedError

    def prefix_arguments(self, backbone: nn.Module, prefix: KeyValuePrefix, input_ids, inputs_embeds,
                         attention_mask, token_type_ids, writable: bool) -> dict[str, Any]:
        """`inject` for a contribution that is a key/value prefix (`sktuning.core.kv_prefix.prefix_inputs`)."""
        return prefix_inputs(prefix, self.cache_keyword, input_ids, inputs_embeds, attention_mask, token_type_ids,
                             self._positions, writable, backbone.get_input_embeddings().weight.dtype)

    def merge(self, backbone: nn.Module) -> None:
        """Precompute the adapter's output, a constant once training is over."""
        raise NotImplementedError

    def unmerge(self) -> None:
        self.merged = None

    def forward(self, backbone: nn.Module, input_ids, inputs_embeds, attention_mask, token_type_ids, **kwargs):
        """Run the backbone on the inputs with the refined text joined to them; a left-padded batch runs
        right-padded so no padding sits between the text and the input (`sktuning.core.padding`)."""
        order = right_aligned(attention_mask)
        if order is not None:
            input_ids, inputs_embeds, attention_mask, token_type_ids = (
                gather_positions(t, order) for t in (input_ids, inputs_embeds, attention_mask, token_type_ids))
        backbone_kwargs = self.inject(backbone, input_ids, inputs_embeds, attention_mask, token_type_ids)
        if self.joins_as_prefix:
            out = run_with_prefix(backbone, backbone_kwargs, self.cache_keyword, **kwargs)
        else:
            out = backbone(**backbone_kwargs, **kwargs)
        return out if order is None else restore_positions(out, order, self.virtual_positions)

    @torch.no_grad()
    def check_runs(self, backbone: nn.Module, refusal: str) -> None:
        """A padded batch of two short inputs through the mode now, so that an architecture that cannot
        take the text this way is refused at construction, quoting what it said, not at the first step.
        `refusal` completes "<Backbone> ..." and names the other mode."""
        ids = self.text_input_ids[:1].repeat(2, 2).to(backbone.get_input_embeddings().weight.device)
        mask = torch.tensor([[1, 1], [1, 0]], device=ids.device)
        with eval_mode(backbone):
            try:
                self.forward(backbone, ids, None, mask, None)
            except UsageError:
                raise
            except BACKBONE_REFUSALS as err:
                raise UsageError(f"{type(backbone).__name__} {refusal.format(error=brief(err))}") from err

    def _positions(self, full_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.takes_position_ids:  # e.g. ALiBi models derive positions from the mask themselves
            return {}
        return {"position_ids": position_ids_from_mask(full_mask, self.position_offset)}

