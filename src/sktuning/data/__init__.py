"""Data: every task in one shape (`schema`), from bundled corpora (`bundled`), the Hub (`hub`) or your
own files (`user_files`), listed by name in `registry`, split by `splits`, tokenized by `encoding`.

Only `encoding` is light (inference uses it); the rest need the `data` extra and load it when used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TaskData": "sktuning.data.schema",
    "TaskSpec": "sktuning.data.schema",
    "NAMED_TASKS": "sktuning.data.registry",
    "load_task": "sktuning.data.registry",
    "load_files": "sktuning.data.user_files",
    "read_table": "sktuning.data.user_files",
    "InputEncoder": "sktuning.data.encoding",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sktuning.data' has no attribute {name!r}")
