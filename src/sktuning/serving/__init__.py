"""`sktune serve`: many SK adapters on one frozen backbone over HTTP (the `serve` extra).

    registry  the backbone, the adapters served on it by name, each with its own input encoder
    batching  a bounded queue and one worker that runs queued requests, of any adapters, as mixed
              batches through `sktuning.inference.multi_adapter` (one backbone forward per batch)
    metrics   Prometheus counters, gauges and histograms for GET /metrics
    app       the FastAPI routes, 4xx JSON errors, 503 when the queue is full, the page at GET /

Names resolve lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Registry": "sktuning.serving.registry", "Batcher": "sktuning.serving.batching",
            "create_app": "sktuning.serving.app"}

__all__ = ["Batcher", "Registry", "create_app"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sktuning.serving' has no attribute {name!r}")
