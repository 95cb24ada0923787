"""Key/value prefixes through transformers' Cache API: what every mode that hands the backbone a
fixed prefix needs (SK-Prefix always, SK-Prompt once merged on a causal decoder).

- `text_key_values`: one pass of the frozen model over a text -> its keys and values, (2 * layers, m,
  kv_heads * head_dim); with gradients to the text's embeddings where they train (the authors' SK-Prefix);
- `unflatten_key_values`: back to (2, layers, 1, kv_heads, m, head_dim);
- where keys and values differ in shape between layers or from each other (latent attention, per-layer
  head sizes), the text's entries lie side by side, (1, m, sum of widths), with one (kv_heads, m, head_dim)
  per entry, and unflatten to per-layer lists: every consumer zips keys and values layer by layer;
- `KeyValuePrefix`: a mode's contribution when it reaches the backbone as such a prefix;
- `key_value_cache`: the one builder of a cache from per-layer keys and values, read-only or writable;
- `prefix_inputs`: the backbone arguments that put a `KeyValuePrefix` before every input, expanded (not
  copied) to the batch;
- `run_with_prefix`: the backbone call that checks every layer read its prefix.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError, brief

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, LinearAttentionCacheLayerMixin
from transformers.modeling_layers import GradientCheckpointingLayer

from sktuning.core.backbone import cache_argument, eval_mode, num_layers


class PrefixLayer(DynamicLayer):
    """A cache layer that prepends a fixed prefix and stores nothing.

    Because `update` has no side effect, a layer may run twice (gradient checkpointing replays it
    in the backward pass) and still see the same keys and values.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.keys, self.values = keys, values
        self.device = keys.device
        self.is_initialized = True
        self.used = False

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        self.used = True
        # the layer's own device and dtype: a backbone split over devices (device_map) or run under autocast
        keys = torch.cat([self.keys.to(key_states.device, key_states.dtype), key_states], dim=-2)
        values = torch.cat([self.values.to(value_states.device, value_states.dtype), value_states], dim=-2)
        return keys, values


def require_cache_argument(backbone: nn.Module) -> str:
    argument = cache_argument(backbone)
    if argument is None:
        raise UsageError(f"{type(backbone).__name__} takes no key/value cache, so SK-Prefix cannot inject "
                         "the text into its layers; use mode='prompt' instead.")
    return argument


def allow_checkpointing_with_prefix(backbone: nn.Module) -> None:
    """The prefix cache is read-only, so replaying a layer under gradient checkpointing is safe;
    transformers' documented switch for such caches keeps the layers from dropping it."""
    for module in backbone.modules():
        if isinstance(module, GradientCheckpointingLayer):
            module._can_checkpoint_with_cache = True


@dataclass(frozen=True)
class KeyValuePrefix:
    """What a mode contributes when the text reaches the backbone as keys and values before every input's:
    layer i's `keys[i]` and `values[i]`, (1, kv_heads, m, head_dim) each; a stacked (layers, 1, kv_heads,
    m, head_dim) tensor where every layer has one shape, per-layer lists where shapes differ."""

    keys: torch.Tensor | Sequence[torch.Tensor]
    values: torch.Tensor | Sequence[torch.Tensor]

    @property
    def length(self) -> int:
        """The prefix's positions, m."""
        return self.keys[0].shape[-2]

    @property
    def stacked(self) -> bool:
        """Whether every layer's keys and values have one shape, stacked into one tensor each."""
        return isinstance(self.keys, torch.Tensor)


def key_value_cache(keys, values, writable: bool = False) -> Cache:
    """The cache that holds layer i's keys[i] and values[i], (batch, heads, m, head_dim) each.

    Read-only (`PrefixLayer`s) unless `writable`: layers replayed under gradient checkpointing see the same
    prefix, and nothing the forward computes is kept. `writable`: an ordinary DynamicCache that decoding
    extends (and PEFT's prefix initialiser reads)."""
    if not writable:
        return Cache(layers=[PrefixLayer(k, v) for k, v in zip(keys, values)])
    cache = DynamicCache()
    for layer, (k, v) in enumerate(zip(keys, values)):
        cache.update(k, v, layer)
    return cache


def text_key_values(backbone: nn.Module, argument: str, positions: dict, grad: bool = False,
                    **text) -> tuple[torch.Tensor, tuple]:
    """One pass of the frozen backbone over the text (ids or embeddings) -> its keys and values, read
    off the cache. `grad`: let gradients flow back to the text's embeddings (the authors' SK-Prefix).

    Returns (2 * layers, m, kv_heads * head_dim) in fp32 and the (kv_heads, m, head_dim) shape; where
    entries differ in shape, (1, m, sum of widths) and each entry's shape (`unflatten_key_values`).
    """
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        return _text_key_values(backbone, argument, positions, **text)


def _text_key_values(backbone: nn.Module, argument: str, positions: dict, **text) -> tuple[torch.Tensor, tuple]:
    layers = num_layers(backbone)
    first = next(iter(text.values()))
    cache = DynamicCache(config=backbone.config)
    name = type(backbone).__name__
    recurrent = [i for i, layer in enumerate(cache.layers) if isinstance(layer, LinearAttentionCacheLayerMixin)]
    if recurrent:
        raise UsageError(f"{name} keeps a recurrent (state-space or linear-attention) state in layer(s) {recurrent}, "
                         "which a key/value prefix cannot hold, so SK-Prefix cannot be used with it; use "
                         "mode='prompt' instead.")
    mask = torch.ones(first.shape[:2], dtype=torch.long, device=first.device)
    with eval_mode(backbone):
        try:
            backbone(**text, attention_mask=mask, use_cache=True, **{argument: cache}, **positions)
        except (ValueError, TypeError, AttributeError, NotImplementedError) as err:
            raise UsageError(f"{name} does not fill transformers' DynamicCache for the text ({brief(err)}), "
                             "so SK-Prefix cannot be used with it; use mode='prompt' instead.") from err
    filled = [layer for layer in cache.layers if getattr(layer, "keys", None) is not None and layer.keys.numel() > 0]
    if len(filled) != layers:
        raise UsageError(f"{type(backbone).__name__} filled {len(filled)} of {layers} layers of a key/value "
                         "cache for the text, so SK-Prefix cannot be used with it; use mode='prompt' instead.")
    entries = [layer.keys for layer in filled] + [layer.values for layer in filled]
    shapes = {tuple(t.shape) for t in entries}
    tokens = sorted({shape[2] for shape in shapes})
    if tokens != [first.shape[1]]:
        raise UsageError(f"{type(backbone).__name__} cached {tokens[0] if len(tokens) == 1 else tokens} positions "
                         f"for a text of {first.shape[1]} tokens; use mode='prompt' instead.")
    device = first.device  # layers may live on several devices (device_map); the adapter lives on one
    if len(shapes) != 1:  # each entry (1, heads, m, head_dim) -> (1, m, heads * head_dim), side by side
        flat = [t.to(device).transpose(1, 2).reshape(1, first.shape[1], -1) for t in entries]
        return torch.cat(flat, dim=-1).float(), tuple(tuple(t.shape[1:]) for t in entries)
    _, heads, tokens, head_dim = shapes.pop()
    keys = torch.stack([layer.keys[0].to(device) for layer in filled])      # (layers, heads, m, head_dim)
    values = torch.stack([layer.values[0].to(device) for layer in filled])
    kv = torch.stack([keys, values])                               # (2, layers, heads, m, head_dim)
    return kv.permute(0, 1, 3, 2, 4).reshape(2 * layers, tokens, heads * head_dim).float(), (heads, tokens, head_dim)


def uniform(shape: tuple) -> bool:
    """Whether `text_key_values` gave one (heads, m, head_dim) for every entry, or one per entry."""
    return isinstance(shape[0], int)


def widths(shape: tuple) -> list[int]:
    """Each entry's flattened width (heads * head_dim), keys of every layer then values: differing shapes."""
    return [heads * head_dim for heads, _, head_dim in shape]


def unflatten_key_values(kv: torch.Tensor, shape: tuple):
    """(2 * layers, m, heads * head_dim) -> (2, layers, 1, heads, m, head_dim). Where shapes differ,
    (1, m, sum of widths) -> (keys, values), per-layer lists of (1, heads, m, head_dim)."""
    if not uniform(shape):
        parts = [part.view(1, tokens, heads, head_dim).transpose(1, 2)
                 for part, (heads, tokens, head_dim) in zip(kv.split(widths(shape), dim=-1), shape)]
        return parts[:len(parts) // 2], parts[len(parts) // 2:]
    heads, tokens, head_dim = shape
    return kv.view(2, -1, 1, tokens, heads, head_dim).transpose(3, 4)


def kept(kv: torch.Tensor, shape: tuple) -> torch.Tensor:
    """What merge() keeps of a flat prefix: unflattened where one shape serves all, else the flat tensor
    itself (a buffer cannot hold per-layer lists); `unkept` reads either back as keys and values."""
    return unflatten_key_values(kv, shape) if uniform(shape) else kv


def unkept(merged: torch.Tensor, shape: tuple):
    return merged if uniform(shape) else unflatten_key_values(merged, shape)


def prefix_inputs(prefix: KeyValuePrefix, argument, input_ids, inputs_embeds, attention_mask, token_type_ids,
                  positions, writable=False, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Backbone arguments that put `prefix` before every input, under the backbone's cache keyword `argument`.

    `writable` gives a cache that generation can extend, in the backbone's `dtype`; otherwise it is
    read-only, which training under gradient checkpointing needs (`key_value_cache`).
    """
    batch = (input_ids if input_ids is not None else inputs_embeds).shape[0]
    tokens = prefix.length

    def batched(t: torch.Tensor) -> torch.Tensor:  # expanded, not copied
        return (t.to(dtype or t.dtype) if writable else t).expand(batch, -1, -1, -1)

    cache = key_value_cache([batched(k) for k in prefix.keys], [batched(v) for v in prefix.values], writable)
    full_mask = torch.cat([attention_mask.new_ones(batch, tokens), attention_mask], dim=1)
    kwargs = {"attention_mask": full_mask, argument: cache, "use_cache": True}
    if input_ids is not None:
        kwargs["input_ids"] = input_ids
    else:
        kwargs["inputs_embeds"] = inputs_embeds
    kwargs.update({k: v[:, tokens:] for k, v in positions(full_mask).items()})
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    return kwargs


def run_with_prefix(backbone: nn.Module, backbone_kwargs: dict, argument: str, **kwargs):
    """Call the backbone and check that every layer really read its prefix."""
    with _layers_keep_cache_under_checkpointing(backbone):
        out = backbone(**backbone_kwargs, **kwargs)
    cache = backbone_kwargs[argument]
    unused = [i for i, layer in enumerate(cache.layers) if not getattr(layer, "used", True)]
    if unused:
        raise RuntimeError(f"{type(backbone).__name__} ignored the SK-Prefix keys/values in layer(s) {unused}, "
                           "so the text was not read; use mode='prompt' with this backbone.")
    return out


@contextmanager
def _layers_keep_cache_under_checkpointing(backbone: nn.Module) -> Iterator[None]:
    """Keep the read-only prefix cache alive while the backbone checkpoints its layers.

    Checkpointed layers are transformers' `GradientCheckpointingLayer`s; they keep a cache that
    declares itself safe to replay (`_can_checkpoint_with_cache`). Some models also drop the cache
    one level up, in the loop over layers, when their own `gradient_checkpointing` flag is set;
    that flag does no checkpointing itself, so it is lowered for the duration of the call.
    Reentrant checkpointing is refused: every checkpointed layer would backpropagate through the
    shared adapter again.
    """
    flagged = [m for m in backbone.modules() if getattr(m, "gradient_checkpointing", False) is True]
    layers = [m for m in flagged if isinstance(m, GradientCheckpointingLayer)]
    if torch.is_grad_enabled() and any(
            m.training and getattr(getattr(m, "_gradient_checkpointing_func", None), "keywords", {}).get("use_reentrant")
            for m in layers):
        raise UsageError("SK-Prefix cannot train under reentrant activation checkpointing (every checkpointed "
                         "layer would backpropagate through the shared adapter again); enable it with "
                         "gradient_checkpointing_kwargs={'use_reentrant': False}, the transformers default.")
    lowered = [m for m in flagged if not isinstance(m, GradientCheckpointingLayer)]
    for module in lowered:
        module.gradient_checkpointing = False
    try:
        yield
    finally:
        for module in lowered:
            module.gradient_checkpointing = True
