"""The benchmark's runs as Ray tasks, so a suite of hundreds of independent runs spreads over a
cluster (`sktune bench --ray ADDRESS`).

Each run is one task with one CPU (or GPU) reserved; the task starts the same subprocess as a local
run (`runner.run_in_subprocess`), in a fresh worker process (`max_calls=1`), so its record, test
metrics included, is the one a local run writes. A task whose worker dies (a crashed or killed
process, a lost node) is retried once by Ray (`max_retries=1`); a run that fails on its own error is
reported, not retried. The driver appends each record to the run log as it arrives. Every node
needs sktuning and the models and data installed, as for a local run.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

from sktuning.bench.settings import BenchSettings
from sktuning.core.extras import require

#: for tests: a path; the first task to see it missing creates it and kills its own worker
CRASH_ONCE = "SKTUNING_BENCH_CRASH_ONCE"


def _task(settings: dict[str, Any], method: str, lr: float, seed: int) -> dict[str, Any]:
    from sktuning.bench.runner import run_in_subprocess

    marker = os.environ.get(CRASH_ONCE)
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # the worker dies mid-task, as a crashed or killed one does
    return run_in_subprocess(BenchSettings(**settings), method, lr, seed)


class RayExecutor:
    """Runs (method, lr, seed) keys of one budget on a Ray cluster, yielding records as they finish."""

    def __init__(self, address: str, gpus_per_run: float = 0.0):
        self.ray = require("ray", "cluster")
        if not self.ray.is_initialized():
            self.ray.init(address=address, runtime_env={"env_vars": _forwarded_env()}, log_to_driver=False)
        self.remote = self.ray.remote(num_cpus=1, num_gpus=gpus_per_run, max_retries=1, max_calls=1)(_task)

    def map(self, settings: BenchSettings, keys: Iterable[tuple[str, float, int]]) -> Iterator[tuple[tuple, dict]]:
        from dataclasses import asdict

        pending = {self.remote.remote(asdict(settings), *key): key for key in keys}
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            key = pending.pop(done[0])
            yield key, self.ray.get(done[0])


def _forwarded_env() -> dict[str, str]:
    """What a task needs of the driver's environment: where the models and data live, test hooks."""
    names = ("SKTUNING_HOME", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "PYTHONPATH", CRASH_ONCE)
    return {name: os.environ[name] for name in names if name in os.environ}
