"""The benchmark's statistics: a summary row per method, the headline comparisons (SK against its
text-initialised counterpart) and a verdict on each claim of the paper.

Rules, written once here and stated in every report:

- Each side's best method is picked on **validation** (the mean over seeds 1 and 2 of each run's
  best validation score; seed 0's is the best of its grid, so it would favour methods that tried more
  rates; seed 0 alone until the others ran), never on test. Ties go to the method with fewer trainable
  parameters, then to the first name in alphabetical order: never to the order of a list.
- A gap is "held" only when its 95 % interval (`intervals.gap_interval`: seeds and test-set noise)
  lies above zero, "did not hold" when it lies below, "inconclusive" otherwise.
- Steps (claim 2): per seed, the first evaluated step at which the validation score reaches the mark
  (the picked baseline's final validation score, averaged over its seeds). "held" when every SK seed
  gets there before every baseline seed, "did not hold" when no SK seed is faster than the slowest
  baseline seed, "inconclusive" when the seeds' steps overlap, there is no mark, or a side ran one seed.
- Parameters (claim 3): the best SK method (on validation) with fewer parameters than LoRA is
  "comparable" when the interval of its gap to LoRA lies above -0.01, not when it lies below.
- Ablations (`settings.ABLATIONS`) are reported, never picked as "the best SK".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from sktuning.bench.intervals import Gap, gap_interval
from sktuning.bench.settings import ABLATIONS

BASELINES = ["prompt-tuning", "prompt-tuning-text", "prefix-tuning", "prefix-tuning-text", "prefix-tuning-mlp",
             "p-tuning"]
#: each SK mode and PEFT's method that starts from the same text in the same place
TEXT_COUNTERPART = {"prefix": "prefix-tuning-text", "prompt": "prompt-tuning-text"}

CLAIMS = ("Higher accuracy than prompt / prefix / P-tuning",
          "Fewer steps to the same accuracy (the best baseline's final validation score)",
          "Fewer parameters than LoRA at comparable accuracy (within 1 point)")
COMPARABLE = 0.01  # claim 3's "within 1 point"


@dataclass(frozen=True)
class Comparison:
    """One line of the headline: `ours` against `theirs`, the gap in test metric with its interval."""

    question: str
    ours: str
    theirs: str
    gap: Gap


def is_sk(method: str) -> bool:
    return method.startswith("sk-") and method not in ABLATIONS


def table(records: list[dict]) -> tuple[dict[str, list[dict]], dict[str, dict], float | None]:
    """(runs by method, one summary row per method, the mark of claim 2: the validation-picked
    baseline's mean final validation score)."""
    by_method: dict[str, list[dict]] = {}
    for r in records:
        by_method.setdefault(r["method"], []).append(r)
    metric = records[0]["metric"]
    base = pick_on_validation(by_method, BASELINES)
    target = mean_curve(by_method[base])[-1][1] if base else None
    target = None if target is not None and math.isnan(target) else target  # NaN (constant predictions): no mark

    rows = {}
    for method, runs in by_method.items():
        tests = [r["test"][metric] for r in runs]
        own = [_steps_to(r["curve"], _near_best(r["curve"])) for r in runs]
        rows[method] = {
            "mean": statistics.mean(tests), "seeds": len(runs),
            "std": statistics.stdev(tests) if len(tests) > 1 else None,  # one seed has no spread
            "validation": validation_score(runs),
            "trainable": runs[0]["trainable"], "share": 100 * runs[0]["trainable"] / runs[0]["total"],
            "step": statistics.mean(r["step_seconds"] for r in runs),
            "memory": max(r["peak_rss_mib"] for r in runs), "lr": runs[0]["lr"],
            "to95": None if None in own else statistics.mean(own),
            # on the seed-mean curve, as the mark is: the picked baseline reaches it by its last step
            "to_target": _steps_to(mean_curve(runs), target)}
    return by_method, rows, target


def validation_score(runs: list[dict]) -> float:
    """The mean over seeds of each run's best validation score (NaN and unset count as -inf), over the
    seeds other than the first where there are any: the first seed's score is the best of its method's
    learning-rate grid, which would favour the methods that tried more rates."""
    first = min(r["seed"] for r in runs)
    runs = [r for r in runs if r["seed"] != first] or runs
    scores = [r["best_validation"] for r in runs]
    return statistics.mean(s if s is not None and s == s else -math.inf for s in scores)


def pick_on_validation(by_method: dict[str, list[dict]], candidates) -> str | None:
    """The candidate with the best validation score, or None when none has runs; a tie goes to the
    candidate with fewer trainable parameters, then to the first name alphabetically."""
    present = [m for m in candidates if by_method.get(m)]
    return min(present, key=lambda m: (-validation_score(by_method[m]), by_method[m][0]["trainable"], m),
               default=None)


def n_test(runs: list[dict]) -> int:
    """Test examples a run was scored on (older records: the budget's cap)."""
    record = runs[0]
    if record.get("test_references") is not None:
        return len(record["test_references"])
    return record["settings"]["max_test"]


def compare(by_method: dict[str, list[dict]], question: str, ours: str | None, theirs: str | None) -> Comparison | None:
    if not ours or not theirs or not by_method.get(ours) or not by_method.get(theirs):
        return None
    a, b = by_method[ours], by_method[theirs]
    metric = a[0]["metric"]
    return Comparison(question, ours, theirs, gap_interval(a, b, metric, min(n_test(a), n_test(b))))


def headline(by_method: dict[str, list[dict]]) -> list[Comparison]:
    """SK against PEFT's method that starts from the same text, then the ablations."""
    out = []
    for mode, rival in TEXT_COUNTERPART.items():
        kind = f"SK-{mode.capitalize()}"
        others = [m for m in by_method if m.startswith(f"sk-{mode}-") and is_sk(m) and m != f"sk-{mode}-embedding"]
        best = pick_on_validation(by_method, others)
        out += [compare(by_method, f"default {kind} (lowrank) vs {rival}", f"sk-{mode}-lowrank", rival),
                compare(by_method, f"best {kind} other than embedding (on validation) vs {rival}", best, rival),
                compare(by_method, f"{kind} embedding vs {rival}: one parametrisation, two implementations "
                                   "(should agree)", f"sk-{mode}-embedding", rival)]
    out += [compare(by_method, "ablation: the adapter trained vs frozen at the identity", "sk-prefix-lowrank",
                    "sk-prefix-frozen"),
            compare(by_method, "ablation: the task's text vs an unrelated text of the same length",
                    "sk-prefix-lowrank", "sk-prefix-unrelated")]
    return [c for c in out if c is not None]


def claims(by_method: dict[str, list[dict]], rows: dict[str, dict], target: float | None) -> list[tuple[str, str, str]]:
    """(claim, verdict, the numbers behind it) for each claim of the paper these runs can test."""
    best_sk = pick_on_validation(by_method, [m for m in by_method if is_sk(m)])
    best_base = pick_on_validation(by_method, BASELINES)
    out = []
    if best_sk and best_base:
        c = compare(by_method, CLAIMS[0], best_sk, best_base)
        out.append((CLAIMS[0], c.gap.verdict(), f"best SK on validation {best_sk} {rows[best_sk]['mean']:.3f} vs "
                    f"best baseline on validation {best_base} {rows[best_base]['mean']:.3f}: {c.gap} ({c.gap.how})"))
        sk_steps = [_steps_to(r["curve"], target) for r in by_method[best_sk]]
        base_steps = [_steps_to(r["curve"], target) for r in by_method[best_base]]
        testable = target is not None and min(len(sk_steps), len(base_steps)) > 1  # a mark, and a spread
        out.append((CLAIMS[1], steps_verdict(sk_steps, base_steps) if testable else "inconclusive",
                    f"mark {_fmt(target)}; per seed, {best_sk}: {_steps(sk_steps)}; {best_base}: {_steps(base_steps)}"))
    if "lora" in by_method:
        fewer = [m for m in by_method if is_sk(m) and rows[m]["trainable"] < rows["lora"]["trainable"]]
        candidate = pick_on_validation(by_method, fewer)
        if candidate:
            c = compare(by_method, CLAIMS[2], candidate, "lora")
            out.append((CLAIMS[2], c.gap.verdict(margin=-COMPARABLE),
                        f"{candidate} {rows[candidate]['mean']:.3f} with {rows[candidate]['trainable']:,d} parameters "
                        f"vs LoRA {rows['lora']['mean']:.3f} with {rows['lora']['trainable']:,d}: {c.gap}, held if "
                        f"above -{COMPARABLE} ({c.gap.how})"))
    return out


def ranks(rows: dict[str, dict]) -> dict[str, int]:
    """Each method's place by mean test metric, 1 for the best (ties share the better place)."""
    means = sorted((r["mean"] for r in rows.values()), reverse=True)
    return {m: means.index(r["mean"]) + 1 for m, r in rows.items()}


def against_full_training(by_method: dict[str, list[dict]]) -> list[Comparison]:
    """The best SK method (on validation) against LoRA and full fine-tuning: do they catch up with more steps?"""
    best_sk = pick_on_validation(by_method, [m for m in by_method if is_sk(m)])
    out = [compare(by_method, f"best SK on validation vs {rival}", best_sk, rival) for rival in ("lora", "full-ft")]
    return [c for c in out if c is not None]


def steps_verdict(sk: list[int | None], base: list[int | None]) -> str:
    """Per-seed steps to the mark (None: never): every SK seed first -> held; no SK seed before the
    slowest baseline seed -> did not hold; overlapping -> inconclusive."""
    never = math.inf
    sk_, base_ = [never if s is None else s for s in sk], [never if s is None else s for s in base]
    if max(sk_) < min(base_):
        return "held"
    return "did not hold" if min(sk_) >= max(base_) else "inconclusive"


def mean_curve(runs: list[dict]) -> list[tuple[int, float]]:
    """(step, validation score averaged over the seeds) at each evaluated step (every seed evaluates alike)."""
    return [(step, statistics.mean(r["curve"][i][1] for r in runs)) for i, (step, _) in enumerate(runs[0]["curve"])]


def _steps_to(curve: list[tuple[int, float]], goal: float | None) -> int | None:
    """The first evaluated step whose score reaches `goal` (NaN never does), else None."""
    return next((step for step, score in curve if goal is not None and score >= goal), None)


def _near_best(curve: list[tuple[int, float]]) -> float | None:
    """Within 5% of the curve's best score: 95% of it, and right for a negative best (e.g. MCC) too."""
    best = max((score for _, score in curve if score == score), default=None)
    return None if best is None else best - 0.05 * abs(best)


def _steps(steps: list[int | None]) -> str:
    return ", ".join("never" if s is None else str(s) for s in steps)


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"
