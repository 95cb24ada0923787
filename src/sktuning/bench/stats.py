"""The benchmark's statistics: a summary row per method, and a verdict on each claim of the paper.

A verdict is "held", "did not hold", or "inconclusive" where a gap in test metric is within one standard
deviation over the seeds: a lead smaller than the noise is not a lead.
"""

from __future__ import annotations

import statistics

BASELINES = ["prompt-tuning", "prompt-tuning-text", "prefix-tuning", "prefix-tuning-mlp", "p-tuning"]

COUNTERPARTS = {"SK-Prompt": ["prompt-tuning", "prompt-tuning-text", "p-tuning"],  # the input embeddings
                "SK-Prefix": ["prefix-tuning", "prefix-tuning-mlp"]}  # every layer's keys and values

CLAIMS = ("Higher accuracy than prompt / prefix / P-tuning",
          "Fewer steps to the same accuracy (the best baseline's final validation score)",
          "Fewer parameters than LoRA at comparable accuracy (within 1 point)")


def table(records: list[dict]) -> tuple[dict[str, list[dict]], dict[str, dict], float | None]:
    """(runs by method, one summary row per method, the best baseline's mean final validation score)."""
    by_method: dict[str, list[dict]] = {}
    for r in records:
        by_method.setdefault(r["method"], []).append(r)
    metric = records[0]["metric"]
    finals = [mean_curve(by_method[m])[-1][1] for m in by_method if m in BASELINES]
    target = max((f for f in finals if f == f), default=None)  # NaN (constant predictions) is no mark

    rows = {}
    for method, runs in by_method.items():
        tests = [r["test"][metric] for r in runs]
        own = [_steps_to(r["curve"], _near_best(r["curve"])) for r in runs]
        rows[method] = {
            "mean": statistics.mean(tests), "seeds": len(runs),
            "std": statistics.stdev(tests) if len(tests) > 1 else None,  # one seed has no spread
            "trainable": runs[0]["trainable"], "share": 100 * runs[0]["trainable"] / runs[0]["total"],
            "step": statistics.mean(r["step_seconds"] for r in runs),
            "memory": max(r["peak_rss_mib"] for r in runs), "lr": runs[0]["lr"],
            "to95": None if None in own else statistics.mean(own),
            # on the seed-mean curve, as the mark is: the best baseline reaches it by its last step
            "to_target": _steps_to(mean_curve(runs), target)}
    return by_method, rows, target


def like_for_like(rows: dict[str, dict]) -> list[tuple]:
    """(kind, best SK method, its row, best counterpart, its row, gap, spread) per SK kind."""
    out = []
    for kind, rivals in COUNTERPARTS.items():
        ours = {m: r for m, r in rows.items() if m.startswith(kind.lower() + "-")}
        theirs = {m: rows[m] for m in rivals if m in rows}
        if ours and theirs:
            best_ours, best_theirs, gap, spread = _best_against_best(ours, theirs)
            out.append((kind, best_ours, ours[best_ours], best_theirs, theirs[best_theirs], gap, spread))
    return out

def claims(rows: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(claim, verdict, the numbers behind it) for each claim of the paper these rows can test.

    The verdict is "held", "did not hold", or "inconclusive" where a gap in test metric is within one
    standard deviation: a lead smaller than the noise is not a lead."""
    sk = {m: r for m, r in rows.items() if m.startswith("sk-")}
    base = {m: r for m, r in rows.items() if m in BASELINES}
    out = []
    if sk and base:
        best_sk, best_base, gap, spread = _best_against_best(sk, base)
        tie = spread is not None and abs(gap) <= spread
        out.append((CLAIMS[0], "inconclusive" if tie else _held(gap > 0),
                    f"best SK {best_sk} {sk[best_sk]['mean']:.3f} vs best of those {best_base} "
                    f"{base[best_base]['mean']:.3f}: {gap:+.3f}{noise(gap, spread)}"))
        fast_sk = min((r["to_target"] for r in sk.values() if r["to_target"] is not None), default=None)
        fast_base = min((r["to_target"] for r in base.values() if r["to_target"] is not None), default=None)
        out.append((CLAIMS[1], _held(fast_sk is not None and (fast_base is None or fast_sk < fast_base)),
                    f"SK: {_steps(fast_sk)}, baselines: {_steps(fast_base)}"))
    if sk and "lora" in rows:
        lora = rows["lora"]
        close = [m for m, r in sk.items() if r["mean"] >= lora["mean"] - 0.01 and r["trainable"] < lora["trainable"]]
        out.append((CLAIMS[2], _held(bool(close)), f"LoRA {lora['mean']:.3f} with {lora['trainable']:,d} parameters; "
                    + (", ".join(f"{m} {sk[m]['mean']:.3f} with {sk[m]['trainable']:,d}" for m in close)
                       or "no SK variant within 1 point with fewer parameters")))
    return out


def _held(held: bool) -> str:
    return "held" if held else "did not hold"


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


def _steps(step: float | None) -> str:
    return "never" if step is None else f"{step:.0f} steps"


def _best_against_best(ours: dict[str, dict], theirs: dict[str, dict]) -> tuple[str, str, float, float | None]:
    """The best method of each side, the gap in mean, and the larger standard deviation of the two
    (None when a side ran one seed: no spread to judge the gap by)."""
    best_ours = max(ours, key=lambda m: ours[m]["mean"])
    best_theirs = max(theirs, key=lambda m: theirs[m]["mean"])
    gap = ours[best_ours]["mean"] - theirs[best_theirs]["mean"]
    spreads = (ours[best_ours]["std"], theirs[best_theirs]["std"])
    return best_ours, best_theirs, gap, None if None in spreads else max(spreads)


def noise(gap: float, spread: float | None) -> str:
    """What the spread says about a gap, for the reports."""
    if spread is None:
        return " (one seed: no spread to judge it by)"
    return f" (within one sd, {spread:.3f})" if abs(gap) <= spread else ""


#: each SK kind and the baselines that put their trainable vectors in the same place


def mark(gap: float, spread: float | None) -> str:
    return "†" if spread is None else "*" if abs(gap) <= spread else ""
