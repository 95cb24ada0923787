"""The authors' SK-Prefix, as their code (Kowsher/SKTuning, e.g. `mistralSKT.py`) parametrises it:
the text's *input embeddings* train, initialised from the word embeddings, and the frozen backbone
re-reads them at every step to make each layer's prefix keys and values; the frozen model itself is
the reparametrisation. `adapter="authors-linear"` adds their shared Linear(head_dim, head_dim) over
the keys and values of every head and layer.

What sktuning's default SK-Prefix does instead is read the text once and refine the frozen keys and
values with a small adapter (`sktuning.core.prefix`). Here, as there, the text pass runs once per forward
at batch size 1 (never once per example) and its result is broadcast to the batch; it runs with the
backbone in eval mode, so dropout is off and activation checkpointing (which drops caches) leaves it
alone. At initialisation the embeddings are the word embeddings and the map is the identity, so the
model is the backbone reading `text + input`, as every SK model starts.
"""

from __future__ import annotations

import torch
from torch import nn

from sktuning.core.errors import UsageError
from sktuning.core.kv_prefix import text_key_values, uniform
from sktuning.core.prefix import SemanticPrefix


class ReencodedText(nn.Module):
    """The trainable part: the text's embeddings (m, d) and, optionally, the per-head map."""

    def __init__(self, embeddings: torch.Tensor, head_dim: int | None = None):
        super().__init__()
        self.embeddings = nn.Parameter(embeddings.detach().clone().float())
        self.head_map = None
        if head_dim is not None:
            self.head_map = nn.Linear(head_dim, head_dim)
            with torch.no_grad():
                self.head_map.weight.copy_(torch.eye(head_dim))
                self.head_map.bias.zero_()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def versions(self) -> tuple:
        """Changes whenever a parameter is written in place (an optimiser step, a load) or moved."""
        return tuple((p._version, p.data_ptr(), p.device, p.dtype) for p in self.parameters())


def _memo_key(adapter: ReencodedText, backbone: nn.Module) -> tuple:
    """What the text pass's result depends on besides the frozen weights: the trained parameters, the
    backbone's dtype and device, and autocast."""
    weight = backbone.get_input_embeddings().weight
    return (adapter.versions(), weight.dtype, weight.device, torch.is_autocast_enabled(weight.device.type))


class AuthorsPrefix(SemanticPrefix):
    def make_adapter(self, backbone: nn.Module, representation: torch.Tensor, config) -> nn.Module:
        if not uniform(self.shape):  # its per-head map and re-read prefix assume one shape for every layer
            raise UsageError(f"{type(backbone).__name__} caches keys/values of differing shapes in its layers, which "
                             f"the authors' SK-Prefix (adapter={config.adapter!r}) does not take; use sktuning's "
                             "SK-Prefix (adapter='lowrank', 'linear', 'scale' or 'embedding') or mode='prompt'.")
        ids = self.text_input_ids.to(backbone.get_input_embeddings().weight.device)
        with torch.no_grad():  # through the embedding module: some scale or add to the looked-up rows
            words = backbone.get_input_embeddings()(ids)
        head_dim = self.shape[2] if config.adapter == "authors-linear" else None
        self._memo: tuple | None = None
        return ReencodedText(words, head_dim)

    def refined_key_values(self, backbone: nn.Module) -> torch.Tensor:
        """(2 * layers, m, heads * head_dim): the trained embeddings read by the frozen backbone."""
        key = _memo_key(self.adapter, backbone)
        if not torch.is_grad_enabled() and self._memo is not None and self._memo[0] == key:
            return self._memo[1]  # evaluation: the text pass is the same until a parameter changes
        dtype = backbone.get_input_embeddings().weight.dtype
        embeds = self.adapter.embeddings.unsqueeze(0).to(dtype)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        positions = self._positions(mask)
        kv = side_output_pass(backbone, embeds, lambda x: text_key_values(
            backbone, self.cache_keyword, positions, grad=True, inputs_embeds=x)[0])
        if self.adapter.head_map is not None:
            heads, tokens, head_dim = self.shape
            kv = self.adapter.head_map(kv.view(-1, tokens, heads, head_dim)).view(kv.shape)
        self._memo = None if torch.is_grad_enabled() else (key, kv)
        return kv

    def train(self, mode: bool = True):
        self._memo = None  # parameters written outside autograd's count (a broadcast's p.data) start afresh
        return super().train(mode)


class _OnBackward(torch.autograd.Function):
    """The identity; calls `action()` when the gradient passes through, on the way back."""

    @staticmethod
    def forward(ctx, action, x):
        ctx.action = action
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.action()
        return None, grad


def side_output_pass(backbone: nn.Module, inputs: torch.Tensor, run) -> torch.Tensor:
    """`run(inputs)`: a pass of the backbone whose result leaves its layers other than through their
    outputs (the keys and values the authors' SK-Prefix reads off the cache), such that its backward
    finds FSDP's sharded weights gathered. FSDP gathers a layer's weights in the backward only for a
    gradient that arrives through that layer's output; here the gradient arrives through the cache, so
    the weights are gathered explicitly when it does, and given back once it has reached `inputs`. The
    cost: for that stretch of the backward every layer is whole on every process at once (the
    embeddings, which the text pass does not use, stay sharded), so the memory FSDP saves returns for
    the text's backward; the text is a few tokens, its activations are small, the weights are not.
    (DeepSpeed ZeRO-3 keeps its own account of which weights are gathered, which explicit gathering
    upsets: `check_shardable` refuses that combination.)"""
    from torch.distributed.fsdp import FSDPModule

    embeddings = backbone.get_input_embeddings()
    units = [m for m in backbone.modules() if isinstance(m, FSDPModule) and m is not embeddings]
    if not (torch.is_grad_enabled() and units):
        return run(inputs)

    def gather() -> None:
        for unit in units:
            unit.unshard()

    def give_back() -> None:
        for unit in units:
            unit.reshard()

    return _OnBackward.apply(gather, run(_OnBackward.apply(give_back, inputs)))
