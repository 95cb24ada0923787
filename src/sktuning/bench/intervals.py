"""How sure a gap is: a 95 % interval for the difference between two methods' mean test scores that
counts both sources of noise, the seeds (the same method trained again lands elsewhere) and the test
set (a finite sample of examples; 600 examples move an accuracy of 0.8 by about +/- 0.03).

- Where every run kept its per-example test predictions, the metric is an accuracy and both sides ran
  the same seeds (the same seed: the same training subset and batches), a **seed-paired crossed
  interval** (`crossed_interval`): seeds and test examples both random, paired on both; its coverage is
  checked by simulation in the tests.
- Where they kept predictions but the seeds differ (or the metric is token accuracy), a **paired
  bootstrap**: each resample draws the test examples (the same draw for both methods, so what the two
  share cancels) and, independently per method, the seeds.
- Otherwise (runs from before predictions were kept, or another metric), a **normal interval**: the
  seed variance of each mean plus a binomial test-set term p(1 - p)/n per method (unpaired, so wider
  than the paired truth), with Welch's degrees of freedom for the seed terms.

`Gap.how` says which one a figure came from.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import math
import statistics
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 4000
#: the metrics a per-example correct / counted pair reproduces exactly
ACCURACIES = ("accuracy", "token_accuracy")
#: the metrics a binomial term describes (macro-F1 approximately); correlations and MCC get none
PROPORTIONS = ("accuracy", "token_accuracy", "macro_f1")


@dataclass(frozen=True)
class Gap:
    """mean(a) - mean(b) over the seeds, its interval, how the interval was made, and whether it could
    count the seed noise of both sides (a side that ran one seed has none to measure)."""

    gap: float
    low: float
    high: float
    how: str
    seeds_counted: bool = True

    def verdict(self, margin: float = 0.0) -> str:
        """"held" when the whole interval lies above `margin`, "did not hold" when it lies below,
        "inconclusive" when it straddles it, or when a side ran one seed (its spread is unknown)."""
        if not self.seeds_counted:
            return "inconclusive"
        if self.low > margin:
            return "held"
        return "did not hold" if self.high < margin else "inconclusive"

    @property
    def bound(self) -> float:
        """The equivalence bound the interval supports: the gap lies within +/- this."""
        return max(abs(self.low), abs(self.high))

    def said(self, margin: float = 0.0) -> str:
        """The verdict as a report states it: an inconclusive gap with the bound it is known within."""
        verdict = self.verdict(margin)
        if verdict == "inconclusive" and self.seeds_counted:
            return f"inconclusive (within ±{self.bound:.3f})"
        return verdict

    def __str__(self) -> str:
        return f"{self.gap:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def gap_interval(a: list[dict], b: list[dict], metric: str, n_test: int, seed: int = 0) -> Gap:
    """The interval for mean(a) - mean(b), the runs' test `metric` (one record per seed)."""
    if all(_has_examples(r, metric) for r in a + b) and _same_examples(a + b):
        shared = {r["seed"] for r in a} & {r["seed"] for r in b}
        if metric == "accuracy" and len(shared) >= 2 and len(shared) == len(a) == len(b):
            return seed_paired_gap(a, b, metric)  # the same seeds: the same subset and batches on both sides
        return paired_bootstrap(a, b, metric, seed=seed)
    return normal_interval([r["test"][metric] for r in a], [r["test"][metric] for r in b], n_test,
                           binomial=metric in PROPORTIONS)


def paired_bootstrap(a: list[dict], b: list[dict], metric: str = "accuracy", resamples: int = RESAMPLES,
                     seed: int = 0) -> Gap:
    """Examples drawn once per resample for both methods; each method's seeds drawn on their own, their
    deviations from the method's mean first widened by sqrt(k / (k - 1)), so that k resampled seeds
    carry the unbiased seed variance (a plain bootstrap of 3 seeds would carry two thirds of it)."""
    correct_a, counted = _per_example(a, metric)
    correct_b, _ = _per_example(b, metric)
    n = counted.size
    point = float((correct_a.sum(1) / counted.sum()).mean() - (correct_b.sum(1) / counted.sum()).mean())
    rng = np.random.default_rng(seed)
    gaps = np.empty(resamples)
    for i in range(resamples):
        weight = np.bincount(rng.integers(0, n, n), minlength=n)  # how often each example was drawn
        total = counted @ weight
        gaps[i] = _seed_resample(correct_a @ weight / total, rng) - _seed_resample(correct_b @ weight / total, rng)
    low, high = np.quantile(gaps, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    complete = len(a) > 1 and len(b) > 1
    return Gap(point, float(low), float(high),
               f"paired bootstrap over {n} test examples and {len(a)} + {len(b)} seeds"
               + ("" if complete else " (one seed on a side: its seed noise is not counted)"), complete)


def _seed_resample(scores: np.ndarray, rng: np.random.Generator) -> float:
    k = len(scores)
    if k < 2:
        return float(scores[0])
    mean = scores.mean()
    widened = mean + (scores - mean) * math.sqrt(k / (k - 1))
    return float(widened[rng.integers(0, k, k)].mean())


def normal_interval(a: list[float], b: list[float], n_test: int, binomial: bool = True) -> Gap:
    """Seed variance of each mean plus (for a proportion) a binomial test-set term per method, with
    Welch-Satterthwaite degrees of freedom (the binomial terms counted as known: infinite df)."""
    from scipy import stats

    gap = statistics.mean(a) - statistics.mean(b)
    seed_terms = [(statistics.variance(s) / len(s), len(s) - 1) for s in (a, b) if len(s) > 1]
    clip = lambda p: min(max(p, 0.0), 1.0)  # noqa: E731
    test_terms = [clip(p) * (1 - clip(p)) / n_test for p in (statistics.mean(a), statistics.mean(b))] if binomial \
        else []
    variance = sum(v for v, _ in seed_terms) + sum(test_terms)
    informative = [(v, d) for v, d in seed_terms if v > 0]
    if informative:
        df = variance ** 2 / sum(v * v / d for v, d in informative)
        quantile, seeds = float(stats.t.ppf((1 + LEVEL) / 2, df)), f"seed variance (Welch, {df:.1f} df)"
    else:
        quantile, seeds = float(stats.norm.ppf((1 + LEVEL) / 2)), "no seed spread"
    complete = len(a) > 1 and len(b) > 1
    if not complete:
        seeds += "; one seed on a side: its seed noise is not counted"
    test = f"binomial test noise (n = {n_test})" if binomial else "no test-noise term (not a proportion)"
    half = quantile * math.sqrt(variance)
    return Gap(gap, gap - half, gap + half, f"normal: {seeds} + {test}", complete)


def _has_examples(record: dict, metric: str) -> bool:
    return (metric in ACCURACIES and record.get("test_predictions") is not None
            and record.get("test_references") is not None)


def _same_examples(records: list[dict]) -> bool:
    first = records[0]["test_references"]
    return all(r["test_references"] == first for r in records)


def _per_example(records: list[dict], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(correct, counted): per seed and example, the correct predictions (of a sentence's words, for
    token accuracy) and, per example, how many were scored."""
    references = records[0]["test_references"]
    if metric == "token_accuracy":  # one list per sentence
        counted = np.array([len(ref) for ref in references], dtype=float)
        correct = np.array([[sum(p == t for p, t in zip(pred, ref)) for pred, ref in zip(r["test_predictions"],
                                                                                         references)]
                            for r in records], dtype=float)
    else:
        counted = np.ones(len(references))
        correct = np.array([[float(p == t) for p, t in zip(r["test_predictions"], references)] for r in records])
    return correct, counted


def crossed_interval(delta: np.ndarray, level: float = LEVEL) -> tuple[float, float, float, float]:
    """(mean, low, high, degrees of freedom) for the mean of per-seed, per-example differences `delta`
    (seeds x examples), counting both as random samples: the seeds (another training run) and the test
    examples (another test set). Two-way crossed design without replication: the variance of the grand
    mean is (MS_seeds + MS_examples - MS_residual) / (S N), with Satterthwaite's degrees of freedom and
    a Student t quantile. Its coverage is checked by simulation in tests/test_bench_stats.py."""
    from scipy import stats

    seeds, examples = delta.shape
    mean = float(delta.mean())
    if seeds < 2:
        raise UsageError("A seed-paired interval needs at least 2 seeds on both sides.")
    by_seed, by_example = delta.mean(1), delta.mean(0)
    ms_seed = examples * float(((by_seed - mean) ** 2).sum()) / (seeds - 1)
    ms_example = seeds * float(((by_example - mean) ** 2).sum()) / (examples - 1)
    residual = delta - by_seed[:, None] - by_example[None, :] + mean
    ms_residual = float((residual ** 2).sum()) / ((seeds - 1) * (examples - 1))
    terms = [(ms_seed, seeds - 1), (ms_example, examples - 1), (-ms_residual, (seeds - 1) * (examples - 1))]
    total = sum(ms for ms, _ in terms)
    if total <= 0:  # the residual outweighs both effects: fall back to the seeds' and examples' own terms
        terms, total = terms[:2], ms_seed + ms_example
    if total == 0:
        return mean, mean, mean, math.inf
    df = total ** 2 / sum(ms * ms / d for ms, d in terms)
    half = float(stats.t.ppf((1 + level) / 2, df)) * math.sqrt(total / (seeds * examples))
    return mean, mean - half, mean + half, df


def seed_paired_gap(a: list[dict], b: list[dict], metric: str = "accuracy", predictions: str = "test_predictions",
                    level: float = LEVEL) -> Gap:
    """mean(a) - mean(b) where run s of `a` and of `b` share seed s (the same data sample and batches)
    and every run kept its per-example predictions on the same test examples (`crossed_interval`)."""
    if metric not in ACCURACIES:
        raise UsageError(f"A seed-paired interval needs per-example correctness: {metric} is not an accuracy.")
    by_seed = {r["seed"]: r for r in b}
    pairs = [(r, by_seed[r["seed"]]) for r in a if r["seed"] in by_seed]
    if len(pairs) < 2:
        raise UsageError(f"A seed-paired interval needs at least 2 shared seeds, got {len(pairs)}.")
    references = pairs[0][0]["test_references"]
    delta = np.array([[float(p == t) - float(q == t) for p, q, t in zip(x[predictions], y[predictions], references)]
                      for x, y in pairs])
    mean, low, high, df = crossed_interval(delta, level)
    return Gap(mean, low, high, f"seed-paired: {len(pairs)} seeds x {delta.shape[1]} test examples, crossed "
                                f"variance, t with {df:.1f} df")
