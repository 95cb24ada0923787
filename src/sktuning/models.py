"""Deprecated: the named backbones moved to `sktuning.zoo` (the name collided with `sktuning.model`).

`from sktuning.models import load_backbone` keeps working with a DeprecationWarning.
"""

from __future__ import annotations

import warnings

from sktuning.zoo import MODELS, ModelSpec, load_backbone, model_path, sktuning_home

__all__ = ["MODELS", "ModelSpec", "load_backbone", "model_path", "sktuning_home"]

warnings.warn("sktuning.models is deprecated: import from sktuning.zoo (load_backbone, MODELS).",
              DeprecationWarning, stacklevel=2)
