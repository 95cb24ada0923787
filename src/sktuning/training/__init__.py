"""Training: the one run pipeline (`pipeline.build_run`), the one loop (`loop`), its checkpoints
(`checkpoints`) and the typed run records (`spec`).

Names resolve lazily, so that `sktuning.training.spec` (read by the CLI before anything heavy) loads no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Trainer": "sktuning.training.loop", "TrainingArguments": "sktuning.training.loop",
            "TrainState": "sktuning.training.loop", "RunSpec": "sktuning.training.spec",
            "AdapterRecord": "sktuning.training.spec", "Run": "sktuning.training.pipeline",
            "build_run": "sktuning.training.pipeline"}

__all__ = ["AdapterRecord", "Run", "RunSpec", "TrainState", "Trainer", "TrainingArguments", "build_run"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sktuning.training' has no attribute {name!r}")
