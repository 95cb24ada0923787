"""Adapters: the small trainable maps that refine what the frozen backbone made of the text.

Every adapter works on a stack of groups at once, `(groups, tokens, dim) -> (groups, tokens, dim)`:
one group for SK-Prompt (the text's input embeddings), `2 * num_layers` groups for SK-Prefix
(each layer's keys and values, heads flattened into `dim`). One batched matmul then serves all
layers instead of a Python loop over sixty small modules.

Every adapter starts at the identity, so an untrained SK model behaves exactly as if the text
were literally prepended to the input.

    >>> import torch
    >>> x = torch.randn(4, 7, 16)
    >>> adapter = build_adapter("lowrank", x, rank=2)
    >>> torch.equal(adapter(x), x), adapter.num_parameters()
    (True, 256)
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import math

import torch
from torch import nn


class Adapter(nn.Module):
    """Base class; `init` is the frozen representation the adapter will be applied to."""

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class EmbeddingAdapter(Adapter):
    """The representation itself is the trainable tensor. For SK-Prompt that is PEFT prompt tuning started
    from the text's word embeddings; for SK-Prefix, prefix tuning started from the text's keys and values
    (the authors' own SK-Prefix trains the text's input embeddings instead: `sktuning.core.authors_prefix`)."""

    def __init__(self, init: torch.Tensor, **_):
        super().__init__()
        self.weight = nn.Parameter(init.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight


class LowRankAdapter(Adapter):
    """x + (x A) B per group; B starts at zero, so the adapter starts at the identity."""

    def __init__(self, init: torch.Tensor, rank: int = 8, **_):
        super().__init__()
        groups, _, dim = init.shape
        self.down = nn.Parameter(torch.randn(groups, dim, rank) / math.sqrt(dim))
        self.up = nn.Parameter(torch.zeros(groups, rank, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.bmm(torch.bmm(x, self.down), self.up)


class LinearAdapter(Adapter):
    """x W + b per group, with a full square W initialised to the identity."""

    def __init__(self, init: torch.Tensor, **_):
        super().__init__()
        groups, _, dim = init.shape
        self.weight = nn.Parameter(torch.eye(dim).repeat(groups, 1, 1))
        self.bias = nn.Parameter(torch.zeros(groups, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class ScaleAdapter(Adapter):
    """x * g + b per group and channel: the cheapest adapter (2 * dim parameters a group)."""

    def __init__(self, init: torch.Tensor, **_):
        super().__init__()
        groups, _, dim = init.shape
        self.scale = nn.Parameter(torch.ones(groups, 1, dim))
        self.shift = nn.Parameter(torch.zeros(groups, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, x, self.scale)


class GroupedAdapter(Adapter):
    """Entries of several widths side by side, (1, tokens, sum of widths): SK-Prefix on a model whose layers'
    keys and values differ in shape. Entries of one width are stacked into the groups of one adapter of
    `kind` (`width_<w>`: the `build_adapter` adapter of that width's entries, in entry order), so each
    entry is refined as it would be in a stack of one shape; the output lies side by side again."""

    def __init__(self, kind: str, init: torch.Tensor, widths: list[int], rank: int = 8):
        super().__init__()
        self.widths = list(widths)
        parts = init.split(self.widths, dim=-1)
        self.adapters = nn.ModuleDict({f"width_{w}": build_adapter(kind, torch.cat(
            [p for p, pw in zip(parts, self.widths) if pw == w]), rank) for w in dict.fromkeys(self.widths)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.split(self.widths, dim=-1)
        out: list[torch.Tensor | None] = [None] * len(parts)
        for name, adapter in self.adapters.items():
            where = [i for i, w in enumerate(self.widths) if f"width_{w}" == name]
            for i, refined in zip(where, adapter(torch.cat([parts[i] for i in where]))):
                out[i] = refined.unsqueeze(0)
        return torch.cat(out, dim=-1)


ADAPTERS: dict[str, type[Adapter]] = {
    "embedding": EmbeddingAdapter,
    "lowrank": LowRankAdapter,
    "linear": LinearAdapter,
    "scale": ScaleAdapter,
}


def build_adapter(kind: str, init: torch.Tensor, rank: int = 8) -> Adapter:
    """Build the adapter `kind` for a frozen representation `init` of shape (groups, tokens, dim)."""
    if kind not in ADAPTERS:
        raise UsageError(f"Unknown adapter {kind!r}: choose one of {', '.join(map(repr, ADAPTERS))}.")
    if init.dim() != 3:
        raise UsageError(f"Adapters take a (groups, tokens, dim) representation, got shape {tuple(init.shape)}.")
    return ADAPTERS[kind](init, rank=rank)
