"""sktuning: Semantic Knowledge Tuning (SK-Prompt, SK-Prefix) for any Hugging Face model.

The public names resolve lazily (PEP 562): `import sktuning` loads nothing heavy, and
`from sktuning import SKModel` loads torch, transformers and safetensors only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # also in sktuning/core/version.py, which modules import (tests/test_layout.py checks both agree)

#: public name -> the module that defines it
_EXPORTS = {
    "ADAPTERS": "sktuning.core.adapters",
    "build_adapter": "sktuning.core.adapters",
    "SKTuningConfig": "sktuning.core.config",
    "SKModel": "sktuning.core.model",
    "SKModelOutput": "sktuning.core.model",
    "get_sk_model": "sktuning.core.model",
    "Predictions": "sktuning.inference.prediction",
    "predict": "sktuning.inference.prediction",
}

__all__ = ["ADAPTERS", "Predictions", "SKModel", "SKModelOutput", "SKTuningConfig", "build_adapter", "get_sk_model",
           "predict", "__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ does this on first use
    from sktuning.core.adapters import ADAPTERS, build_adapter
    from sktuning.core.config import SKTuningConfig
    from sktuning.core.model import SKModel, SKModelOutput, get_sk_model
    from sktuning.inference.prediction import Predictions, predict


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # resolved once
        return value
    raise AttributeError(f"module 'sktuning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
