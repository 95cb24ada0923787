"""Deprecated: the training loop moved to `sktuning.training` (`Trainer`, `TrainingArguments`), and
`predict_rows` to `sktuning.prediction`, where inference lives."""

from __future__ import annotations

import warnings

from sktuning.prediction import predict_rows
from sktuning.training.checkpoints import load_adapter_tensors
from sktuning.training.loop import Trainer, TrainingArguments, TrainState

__all__ = ["TrainState", "Trainer", "TrainingArguments", "load_adapter_tensors", "predict_rows"]

warnings.warn("sktuning.trainer is deprecated: import from sktuning.training (and predict_rows from "
              "sktuning.prediction).", DeprecationWarning, stacklevel=2)
