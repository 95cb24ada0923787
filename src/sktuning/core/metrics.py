"""Task metrics, from well-kept libraries: scikit-learn, SciPy and seqeval."""

from __future__ import annotations

from sktuning.core.errors import UsageError

from typing import Sequence

import numpy as np

from sktuning.core.extras import require

METRICS = ("accuracy", "macro_f1", "mcc", "pearson", "spearman", "seqeval_f1", "token_accuracy")


def compute_metrics(names: Sequence[str], predictions: Sequence, references: Sequence,
                    label_names: Sequence[str] | None = None) -> dict[str, float]:
    """Sequence tasks take flat predictions and references; token tasks take one list per sentence."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UsageError(f"Unknown metric(s) {unknown}: choose from {', '.join(METRICS)}.")
    if len(predictions) != len(references):
        raise UsageError(f"{len(predictions)} predictions for {len(references)} references.")
    results: dict[str, float] = {}
    for name in names:
        results[name] = float(_METRIC_FUNCTIONS[name](predictions, references, label_names))
    return results


def _accuracy(p, r, _):
    return require("sklearn.metrics", "data").accuracy_score(r, p)


def _macro_f1(p, r, _):
    return require("sklearn.metrics", "data").f1_score(r, p, average="macro", zero_division=0)


def _mcc(p, r, _):
    return require("sklearn.metrics", "data").matthews_corrcoef(r, p)


def _pearson(p, r, _):
    return require("scipy.stats", "data").pearsonr(np.asarray(p, dtype=float).ravel(), np.asarray(r, dtype=float).ravel())[0]


def _spearman(p, r, _):
    return require("scipy.stats", "data").spearmanr(np.asarray(p, dtype=float).ravel(), np.asarray(r, dtype=float).ravel())[0]


def _seqeval_f1(p, r, label_names):
    f1_score = require("seqeval.metrics", "data").f1_score
    if label_names is None:
        raise UsageError("seqeval_f1 needs the tag names (e.g. B-PER, I-PER, O).")
    as_tags = lambda rows: [[label_names[i] for i in row] for row in rows]  # noqa: E731
    return f1_score(as_tags(r), as_tags(p))


def _token_accuracy(p, r, _):
    flat_p = [t for row in p for t in row]
    flat_r = [t for row in r for t in row]
    return _accuracy(flat_p, flat_r, None)


_METRIC_FUNCTIONS = {"accuracy": _accuracy, "macro_f1": _macro_f1, "mcc": _mcc, "pearson": _pearson,
                     "spearman": _spearman, "seqeval_f1": _seqeval_f1, "token_accuracy": _token_accuracy}
