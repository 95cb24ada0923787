"""Optional dependencies: the core needs torch, transformers and safetensors only; the rest come in
extras (`pip install 'sktuning[data]'`, `[bench]`, `[deepspeed]`), imported where a feature uses them."""

from __future__ import annotations

from sktuning.core.errors import MissingExtra

import importlib
from types import ModuleType

#: each extra and what it installs (pyproject.toml's [project.optional-dependencies])
EXTRAS = {
    "data": "datasets, pandas, scikit-learn, scipy, seqeval, matplotlib: tasks, data files, training, metrics, plots",
    "bench": "peft (and the data extra): `sktune bench` and its baselines, exports to PEFT",
    "tracking": "tensorboard, wandb: sktune train --report-to",
    "cluster": "ray: sktune bench --ray",
    "trl": "trl: SFTTrainer for task='causal-lm'",
    "serve": "fastapi, uvicorn, httpx, prometheus-client, selenium: sktune serve and its tests",
    "quantize": "bitsandbytes: --quantize int8|nf4",
    "deepspeed": "deepspeed: --shard zero3",
}


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if err.name is None or module.split(".")[0] != err.name.split(".")[0]:
            raise  # the module is there, but something it needs is broken: show the real error
        raise MissingExtra(f"{module.split('.')[0]} is not installed; it comes with sktuning's {extra!r} extra "
                          f"({EXTRAS[extra]}): pip install 'sktuning[{extra}]'.") from None
