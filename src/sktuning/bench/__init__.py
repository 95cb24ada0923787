"""`sktune bench`: SK-Tuning against the real baselines, same backbone, data, head, pooling,
optimiser, step budget and seeds; a markdown report and a learning-curve plot per task.

    settings   the methods, their learning-rate grids, the budget, the suite of pairs
    baselines  every method behind the training loop's interface (PEFT's for the baselines)
    runner     one run (a method, a rate, a seed) in its own subprocess, through sktuning's training loop
    suite      the runs of one model-task pair: resumable, in phases, a rate chosen on validation
    stats      summary rows and the verdict on each claim of the paper
    report     the markdown reports and plots

Learning rates come from a small per-method grid, chosen on the validation split with seed 0; the
test split is read only for the final numbers, at the best validation step. Names resolve lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BenchSettings": "sktuning.bench.settings", "FULL_SUITE": "sktuning.bench.settings",
    "QUICK": "sktuning.bench.settings", "METHODS": "sktuning.bench.settings", "LR_GRID": "sktuning.bench.settings",
    "DEFAULT_LR": "sktuning.bench.settings", "format_duration": "sktuning.bench.settings",
    "run_one": "sktuning.bench.runner", "Suite": "sktuning.bench.suite", "PHASES": "sktuning.bench.suite",
    "BASELINES": "sktuning.bench.stats", "CLAIMS": "sktuning.bench.stats", "TEXT_COUNTERPART": "sktuning.bench.stats",
    "write_summary": "sktuning.bench.report",
}

__all__ = ["BASELINES", "CLAIMS", "TEXT_COUNTERPART", "DEFAULT_LR", "FULL_SUITE", "LR_GRID", "METHODS", "PHASES", "QUICK",
           "BenchSettings", "Suite", "format_duration", "run_one", "write_summary"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sktuning.bench' has no attribute {name!r}")
