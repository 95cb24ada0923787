"""Seeded, stratified splits: the fixed splits of bundled tasks and the parts carved from a user's file."""

from __future__ import annotations

from sktuning.core.errors import UsageError

from typing import Sequence

import numpy as np

from sktuning.data.schema import SEED
from sktuning.core.extras import require


def split_off(indices: np.ndarray, size: int, labels: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    """Split `size` rows off `indices` (seed 0), stratified by `labels` where every class can give one."""
    stratify = None
    if labels is not None:
        values = np.asarray(labels)[indices]
        _, counts = np.unique(values, return_counts=True)
        if counts.min() >= 2 and len(counts) <= min(size, len(indices) - size):
            stratify = values
    train_test_split = require("sklearn.model_selection", "data").train_test_split
    rest, part = train_test_split(indices, test_size=size, stratify=stratify, random_state=SEED)
    return np.sort(rest), np.sort(part)


def fixed_splits(labels: Sequence, test: int, validation: int, train: int | None = None) -> dict[str, np.ndarray]:
    """Stratified test, then validation, then (optionally) a stratified subsample of the rest as train."""
    rest, test_idx = split_off(np.arange(len(labels)), test, labels)
    rest, validation_idx = split_off(rest, validation, labels)
    if train is not None and train < len(rest):
        _, rest = split_off(rest, train, labels)
    return {"train": rest, "validation": validation_idx, "test": test_idx}


def carve(columns: dict[str, list], size_share: float, labels: list | None) -> tuple[dict[str, list], dict[str, list]]:
    n = len(next(iter(columns.values())))
    size = max(1, round(size_share * n))
    if n - size < 1:
        raise UsageError(f"The training file has only {n} row(s): too few to carve a validation or test split "
                         "from; give validation and test files, or more data.")
    rest, part = split_off(np.arange(n), size, labels)
    return ({k: [v[i] for i in rest] for k, v in columns.items()},
            {k: [v[i] for i in part] for k, v in columns.items()})
