"""The adapters a server holds: one frozen backbone, any number of merged SK adapters on it.

Each adapter is loaded with `SKModel.from_pretrained` on the served backbone (the checks `predict`
makes: checksums, the backbone it was trained on) and merged into the shared `MultiAdapterModel`, so
adding or removing one never reloads the backbone. A request holds on to the `Served` entry it
named, so an adapter removed while its requests wait in the queue still answers them.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import copy
import threading
from dataclasses import dataclass
from typing import Any

from sktuning.data.encoding import InputEncoder
from sktuning.core.adapter_format import read_adapter_meta
from sktuning.core.model import SKModel
from sktuning.inference.multi_adapter import MultiAdapterModel, ServedAdapter
from sktuning.scale.quantization import quantized_scheme

DEFAULT_MAX_LENGTH = 128  # predict's default, for an adapter folder that records none


class UnknownAdapter(LookupError):
    """A request names an adapter that is not served (404)."""


@dataclass(eq=False)
class Served:
    """One adapter as served: its merged form on the backbone, its encoder, where it came from."""

    name: str
    adapter: ServedAdapter
    encoder: InputEncoder
    max_length: int
    path: str

    @property
    def config(self):
        return self.adapter.config

    def describe(self) -> dict[str, Any]:
        model, config = self.adapter.model, self.adapter.config
        parameters = sum(t.numel() for k, t in model.trainable_state_dict().items() if k != "semantic.text_input_ids")
        return {"name": self.name, "path": self.path, "task": config.task, "mode": config.mode,
                "adapter": config.adapter, "labels": config.label_names, "text": config.text,
                "max_length": self.max_length, "parameters": parameters}


class Registry:
    """The backbone, its tokenizer, and the adapters served on it by name.

    `lock` guards the backbone: the batching worker holds it for each forward, `load` for the text
    pass that merges a new adapter."""

    def __init__(self, backbone, tokenizer):
        self.backbone, self.tokenizer = backbone, tokenizer
        self.multi = MultiAdapterModel(backbone)
        self.served: dict[str, Served] = {}
        self.lock = threading.Lock()

    def load(self, name: str, path: str) -> Served:
        if not name or "/" in name:
            raise UsageError(f"Adapter name {name!r}: give a non-empty name without '/'.")
        if name in self.served:
            raise UsageError(f"An adapter named {name!r} is already served; unload it first.")
        training = read_adapter_meta(path).get("training") or {}
        max_length = training.get("max_length") or DEFAULT_MAX_LENGTH
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise UsageError(f"{path} records max_length {max_length!r}; it must be a whole number >= 1.")
        trained, held = training.get("quantize"), quantized_scheme(self.backbone)
        if trained != held:
            raise UsageError(f"{path} was trained on a backbone held in {trained or 'full precision'}; this server's "
                             f"is in {held or 'full precision'} (as its first adapter was trained): serve it from "
                             "a server of its own, so that its labels are those `sktune predict` gives.")
        # the worker's requests tokenize on the event loop: a copy keeps the fast tokenizer unshared
        tokenizer = copy.deepcopy(self.tokenizer)
        with self.lock:
            if name in self.served:  # a load of the same name that finished while this one read its files
                raise UsageError(f"An adapter named {name!r} is already served; unload it first.")
            model = SKModel.from_pretrained(self.backbone, path, tokenizer=tokenizer).eval()
            self.multi.add(name, model)  # merges: SK-Prefix's text pass runs on the backbone here
            served = Served(name, self.multi.adapters[name], InputEncoder.for_model(model, self.tokenizer, max_length),
                            max_length, str(path))
            self.served[name] = served
        return served

    def unload(self, name: str) -> None:
        """Stop serving `name`; no lock: the worker holds the adapters of queued requests, not names."""
        self.get(name)
        del self.served[name]
        self.multi.remove(name)

    def get(self, name: str) -> Served:
        served = self.served.get(name)
        if served is None:
            raise UnknownAdapter(f"No adapter {name!r}; serving: {', '.join(sorted(self.served)) or 'none'}.")
        return served

    def describe(self, name: str) -> dict[str, Any]:
        return self.get(name).describe()
