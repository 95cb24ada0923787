"""Sharing a trained adapter and getting backbones: the Hub (`hub`: upload with a model card), exports
to PEFT and vLLM (`export`), and the named offline backbones (`zoo`). Names resolve lazily."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"push_to_hub": "sktuning.sharing.hub", "load_backbone": "sktuning.sharing.zoo"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sktuning.sharing' has no attribute {name!r}")
