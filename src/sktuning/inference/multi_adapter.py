"""Many SK adapters on one frozen backbone, in one batch: each row of a batch belongs to an adapter of
its own, and the backbone runs once.

Merged, every SK adapter on a causal decoder is a constant key/value prefix (SK-Prefix always,
SK-Prompt because its prompt cannot see the input after it; see `SKModel.merge`). A mixed batch
stacks each row's prefix into one per-layer cache, shorter prefixes padded on the left and masked,
so every row's prefix ends right before its input; positions count real tokens, so each row's input
gets the positions it gets alone. After the backbone, each row goes through its own adapter's head
(or the backbone's LM head). On an encoder, where SK-Prompt stays prepended vectors, rows are grouped
by adapter and each group runs on its own.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sktuning.core import backbone as bb
from sktuning.core.config import SKTuningConfig
from sktuning.core.generation import decode_after_prefill, decoding_preamble
from sktuning.core.kv_prefix import KeyValuePrefix, key_value_cache, run_with_prefix
from sktuning.core.model import SKModel
from sktuning.core.tasks import TASKS, task_of


@dataclass(eq=False)  # identity: a server tells adapters apart by object
class ServedAdapter:
    """A merged adapter: its config, its model (head, rules) and, on a decoder, its prefix."""

    config: SKTuningConfig
    model: SKModel
    keys: list[torch.Tensor] | None    # per layer (heads, m, head_dim), None when not a key/value prefix
    values: list[torch.Tensor] | None


class MultiAdapterModel(nn.Module):
    """One frozen backbone and any number of merged SK adapters, added and removed by name."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = bb.base_model_of(backbone)
        self.adapters: dict[str, ServedAdapter] = {}
        self.offset = bb.position_offset(self.backbone)
        self.takes_positions = bb.accepts(self.backbone, "position_ids")
        self.cache_keyword = bb.cache_argument(self.backbone)

    def add(self, name: str, model: SKModel) -> None:
        """Serve `model` (built on this backbone) as `name`; it is merged, and nothing is reloaded."""
        if model.backbone is not self.backbone:
            raise UsageError(f"Adapter {name!r} is built on another backbone object; build it on this one "
                             "(SKModel.from_pretrained(multi.backbone, folder)), so the weights are shared.")
        if model.template_input_ids.numel():
            raise UsageError(f"Adapter {name!r} appends an answer template to every input, which the multi-adapter "
                             "model (and `sktune serve`) does not do; serve it on its own with SKModel "
                             "(predict()), or train it without answer_template.")
        model.eval().merge()
        contribution = model.semantic.contribution(self.backbone)
        keys = values = None
        if isinstance(contribution, KeyValuePrefix):  # merged: SK-Prefix, SK-Prompt on a decoder
            # per layer (heads, m, head_dim)
            keys, values = ([kv[0] for kv in part] for part in (contribution.keys, contribution.values))
        self.adapters[name] = ServedAdapter(model.sk_config, model, keys, values)

    def remove(self, name: str) -> None:
        if name not in self.adapters:
            raise KeyError(f"No adapter {name!r}; serving: {', '.join(sorted(self.adapters)) or 'none'}.")
        del self.adapters[name]

    def resolve(self, adapters: list[str | ServedAdapter]) -> list[ServedAdapter]:
        """Adapters by name (or already resolved: a server holds on to the adapter a request named, so
        removing it by name does not fail a request already queued)."""
        unknown = sorted({a for a in adapters if isinstance(a, str)} - set(self.adapters))
        if unknown:
            raise KeyError(f"Unknown adapter(s) {unknown}; serving: {', '.join(sorted(self.adapters)) or 'none'}.")
        return [self.adapters[a] if isinstance(a, str) else a for a in adapters]

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, adapters: list[str | ServedAdapter],
                token_type_ids: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Each row's logits, as its adapter's merged model gives them alone (a list: heads differ)."""
        served = self.resolve(adapters)
        if len(served) != input_ids.shape[0]:
            raise UsageError(f"{len(served)} adapters for a batch of {input_ids.shape[0]} rows.")
        if any(a.keys is None for a in served):  # prompt vectors (an encoder): one forward per adapter
            return self._grouped(input_ids, attention_mask, served, token_type_ids)
        hidden = self._prefixed_forward(input_ids, attention_mask, served)
        out: list[torch.Tensor | None] = [None] * len(served)
        for adapter, rows in _rows_by_adapter(served).items():  # one head call per adapter, not per row
            for j, logits in zip(rows, self._head(adapter, hidden[rows], attention_mask[rows])):
                out[j] = logits
        return out

    def _stacked_prefix(self, served: list[ServedAdapter]) -> tuple[list, list, torch.Tensor]:
        """Every row's prefix keys and values, per layer (rows, heads, longest, head_dim) (layers may
        differ in shape), padded on the left so that each ends right before its input, and the prefix
        part of the attention mask. Each distinct adapter is padded once; rows gather theirs."""
        dtype = self.backbone.get_input_embeddings().weight.dtype
        distinct = list(_rows_by_adapter(served))
        longest = max(a.keys[0].shape[-2] for a in distinct)
        position = {id(a): j for j, a in enumerate(distinct)}
        index = torch.tensor([position[id(a)] for a in served], device=distinct[0].keys[0].device)

        def stacked(part: str, layer: int) -> torch.Tensor:
            tensors = [getattr(a, part)[layer] for a in distinct]
            return torch.stack([torch.nn.functional.pad(t.to(dtype), (0, 0, longest - t.shape[-2], 0))
                                for t in tensors]).index_select(0, index)

        keys = [stacked("keys", layer) for layer in range(len(distinct[0].keys))]
        values = [stacked("values", layer) for layer in range(len(distinct[0].values))]
        lengths = torch.tensor([a.keys[0].shape[-2] for a in served], device=index.device)
        prefix_mask = (torch.arange(longest, device=index.device) >= longest - lengths[:, None]).long()
        return keys, values, prefix_mask

    def _prefixed_forward(self, input_ids, attention_mask, served: list[ServedAdapter]) -> torch.Tensor:
        keys, values, prefix_mask = self._stacked_prefix(served)
        longest = prefix_mask.shape[1]
        prefix_mask = prefix_mask.to(attention_mask)
        full_mask = torch.cat([prefix_mask, attention_mask], dim=1)
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": full_mask,
                                  self.cache_keyword: key_value_cache(keys, values), "use_cache": True}
        if self.takes_positions:
            kwargs["position_ids"] = bb.position_ids_from_mask(full_mask, self.offset)[:, longest:]
        return run_with_prefix(self.backbone, kwargs, self.cache_keyword).last_hidden_state

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, adapters: list[str | ServedAdapter],
                 max_new_tokens: int = 20, do_sample: bool = False, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 eos_token_id: int | list[int] | None = None, pad_token_id: int | None = None) -> torch.Tensor:
        """Decode a left-padded batch of `causal-lm` adapters' rows together: each row writes what its
        adapter's `SKModel.generate` writes alone (greedy), its prefix read once in the prefill; a row
        that wrote `eos_token_id` is filled with `pad_token_id` after it, and decoding stops when all have."""
        served = self.resolve(adapters)
        if any(not task_of(a.config).generates or a.keys is None for a in served):
            writers = ", ".join(t.name for t in TASKS if t.generates)
            raise UsageError(f"generate() takes {writers} adapters served as key/value prefixes only.")
        attention_mask, eos = decoding_preamble([a.model for a in dict.fromkeys(served)], input_ids, attention_mask,
                                                max_new_tokens, do_sample, temperature, top_k, eos_token_id)
        keys, values, prefix_mask = self._stacked_prefix(served)
        longest, prefix_mask = prefix_mask.shape[1], prefix_mask.to(attention_mask)
        cache = key_value_cache(keys, values, writable=True)
        mask = torch.cat([prefix_mask, attention_mask], dim=1)
        argument = self.cache_keyword
        step = {"input_ids": input_ids, "attention_mask": mask, argument: cache, "use_cache": True}
        position = bb.position_ids_from_mask(mask, self.offset)
        if self.takes_positions:
            step["position_ids"] = position[:, longest:]
        head = served[0].model.lm_head  # the backbone's own LM head, shared by every causal-lm adapter
        logits = head(self.backbone(**step).last_hidden_state[:, -1]).float()
        new_tokens = decode_after_prefill(self.backbone, head, logits, mask, position[:, -1:], cache, argument,
                                          self.takes_positions, max_new_tokens, do_sample, temperature, top_k,
                                          eos, pad_token_id, generator)
        return torch.cat([input_ids, new_tokens], dim=1)

    @staticmethod
    def _head(adapter: ServedAdapter, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        model = adapter.model
        return model.lm_head(hidden) if model.lm_head is not None else model.head(hidden, mask)

    def _grouped(self, input_ids, attention_mask, served: list[ServedAdapter],
                 token_type_ids: torch.Tensor | None) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(served)
        for adapter, rows in _rows_by_adapter(served).items():
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids[rows]}
            logits = adapter.model(input_ids=input_ids[rows], attention_mask=attention_mask[rows], **extra).logits
            for j, i in enumerate(rows):
                out[i] = logits[j]
        return out


def _rows_by_adapter(served: list[ServedAdapter]) -> dict[ServedAdapter, list[int]]:
    """Each distinct adapter (in order of its first row) and the rows that are its."""
    rows: dict[ServedAdapter, list[int]] = {}
    for i, adapter in enumerate(served):
        rows.setdefault(adapter, []).append(i)
    return rows
