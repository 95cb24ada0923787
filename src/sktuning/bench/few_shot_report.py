"""The few-shot suite's report (docs/few-shot-plan.md): per pair and K, every method's test accuracy at
the pre-registered steps, the pre-registered comparisons with seed-paired intervals, and a plot of
accuracy against K and against step. Nothing here is chosen on test: the rates were chosen on the K-shot
validation sets, the reported step is the last pre-registered one.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from sktuning.bench.intervals import Gap, seed_paired_gap
from sktuning.bench.settings import FEW_SHOT_METHODS

#: the SK arm every comparison starts from, fixed before the runs: the default SK-Prefix with the
#: label-word head and the task's own text
PRIMARY = "sk-prefix-lowrank-lw"
#: the plan's primary comparisons (the first four below): their family of four is judged at the Bonferroni
#: level 1 - 0.05 / 4, on the primary pair at K = 16
PRIMARY_COUNT, FAMILY_LEVEL = 4, 1 - 0.05 / 4
#: (a, b, what a - b measures), in the plan's order
COMPARISONS = [
    (PRIMARY, "zero-shot", "what training adds to the zero-shot start (step 0 of the primary arm)"),
    (PRIMARY, "sk-prefix-lowrank", "the label-word head against a random head (SK-Prefix)"),
    ("sk-prompt-lowrank-lw", "sk-prompt-lowrank", "the label-word head against a random head (SK-Prompt)"),
    (PRIMARY, "sk-prefix-unrelated-lw", "the task text against a fluent unrelated text"),
    (PRIMARY, "sk-prefix-random-ids-lw", "the task text against random vocabulary ids"),
    (PRIMARY, "full-ft-lw", "against full fine-tuning with the label-word head (LM-BFF's prompt-based fine-tuning)"),
    (PRIMARY, "lora", "against LoRA"),
    (PRIMARY, "prompt-tuning-text", "against PEFT prompt tuning from the text"),
    (PRIMARY, "prefix-tuning-text", "against PEFT prefix tuning from the text's keys and values"),
    (PRIMARY, "head-only", "against a linear probe"),
    (PRIMARY, "full-ft", "against full fine-tuning with a random head"),
]


def final_step(record: dict[str, Any]) -> str:
    return str(max(int(s) for s in record["test_at_steps"]))


def at_step(record: dict[str, Any], step: str) -> dict[str, Any]:
    """The record as it stood at `step`: its test metrics and predictions there, for `seed_paired_gap`."""
    there = record["test_at_steps"][step]
    return {"seed": record["seed"], "test": there["test"], "test_predictions": there["test_predictions"],
            "test_references": record["test_references"]}


def runs_by_method(suite) -> dict[str, list[dict[str, Any]]]:
    """Each method's runs at its chosen rate, and "zero-shot": the primary arm's step 0 (scored on the first
    seed; with its adapters at the identity it is the same model for every seed)."""
    by_method: dict[str, list[dict]] = {}
    for record in suite.records:
        if record.get("test_at_steps"):
            by_method.setdefault(record["method"], []).append(record)
    order = {m: i for i, m in enumerate(FEW_SHOT_METHODS)}
    by_method = dict(sorted(by_method.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))
    start = [r for r in by_method.get(PRIMARY, []) if "0" in r["test_at_steps"]]
    if start:  # paired with each seed of the primary arm
        by_method["zero-shot"] = [{"seed": r["seed"], "test_references": r["test_references"],
                                   "test_at_steps": {"0": start[0]["test_at_steps"]["0"]}} for r in by_method[PRIMARY]]
    return by_method


def comparison(by_method: dict[str, list[dict]], a: str, b: str, level: float = 0.95) -> Gap | None:
    if len(by_method.get(a, [])) < 2 or len(by_method.get(b, [])) < 2:
        return None
    left = [at_step(r, final_step(r)) for r in by_method[a]]
    right = [at_step(r, "0") if b == "zero-shot" else at_step(r, final_step(r)) for r in by_method[b]]
    return seed_paired_gap(left, right, level=level)


def verdict(gap: Gap) -> str:
    """"ahead" / "behind" when the interval excludes 0, else the equivalence bound the data support."""
    if gap.low > 0:
        return "ahead"
    if gap.high < 0:
        return "behind"
    return f"within ±{max(abs(gap.low), abs(gap.high)):.3f}"


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.mean(values):.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")


def pair_section(suites: list) -> list[str]:
    """One pair's tables (one per K) and comparisons."""
    first = suites[0].settings
    lines = [f"## {Path(first.model).name} on {first.task}", ""]
    for suite in sorted(suites, key=lambda s: s.settings.shots):
        s = suite.settings
        by_method = runs_by_method(suite)
        steps = [str(x) for x in sorted(s.test_steps or [])]
        plan = suite.plan()
        done = sum(key in suite.done for key in plan)
        lines += [f"### K = {s.shots} per class ({s.steps} steps of batch {s.batch_size}, validation every "
                  f"{s.eval_every} steps on the K-shot validation set)", "",
                  f"Runs done: {done} of the {len(plan)} planned so far (seeds {suite.seeds[0]}-{suite.seeds[-1]}; "
                  "a grid that grows adds runs).", "",
                  "| method | rate | seeds | " + " | ".join(f"test at step {x}" for x in steps) + " |",
                  "|---|---:|---:|" + "---:|" * len(steps)]
        for method, runs in by_method.items():
            if method == "zero-shot":
                continue
            cells = [_mean_sd([r["test_at_steps"][x]["test"]["accuracy"] for r in runs if x in r["test_at_steps"]])
                     for x in steps]
            lines.append(f"| {method} | {runs[0]['lr']:g} | {len(runs)} | " + " | ".join(cells) + " |")
        lines += ["", "Mean ± standard deviation over seeds (step 0: the first seed only). Comparisons at the last "
                      "step, paired by seed (each seed's K-shot sample and batches) and by test example:", "",
                  "| comparison | a - b [95 % interval] | verdict | primary: at the family level (98.75 %) |",
                  "|---|---:|---|---|"]
        for i, (a, b, what) in enumerate(COMPARISONS):
            gap = comparison(by_method, a, b)
            if gap is None:
                continue
            family = ""
            if i < PRIMARY_COUNT:
                wide = comparison(by_method, a, b, FAMILY_LEVEL)
                family = f"{wide} {verdict(wide)}"
            lines.append(f"| {a} - {b}: {what} | {gap} | {verdict(gap)} | {family} |")
        lines.append("")
    return lines


def write_few_shot_report(suites: list, output: Path, command: str) -> Path:
    """few-shot.md (and few-shot-<model>-<task>.png per pair) in `output` from the runs finished so far."""
    from sktuning.core.atomic import atomic_write_text

    by_pair: dict[tuple, list] = {}
    for suite in suites:
        if suite.records:
            by_pair.setdefault((suite.settings.model, suite.settings.task), []).append(suite)
    lines = ["# Few-shot results", "", "The plan these runs follow, written before the first of them: "
             "[few-shot-plan.md](../../few-shot-plan.md). Reproduce with:", "", "```", command, "```", ""]
    records = [r for suite in suites for r in suite.records]
    if records:
        r = records[-1]
        lines += [f"Machine: {r.get('cpu')}, {r.get('threads')} threads, {r.get('dtype')}; code {(r.get('code') or {}).get('commit', '?')[:10]}.", ""]
    for pair_suites in by_pair.values():
        lines += pair_section(pair_suites)
        plot_pair(pair_suites, output)
    output.mkdir(parents=True, exist_ok=True)
    path = output / "few-shot.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def plot_pair(suites: list, output: Path) -> Path:
    """Accuracy at the last step against K, and against step for each K, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = sorted(suites, key=lambda s: s.settings.shots)
    figure, axes = plt.subplots(1, 1 + len(suites), figsize=(5 * (1 + len(suites)), 4), squeeze=False)
    by_k = [(s.settings.shots, runs_by_method(s)) for s in suites]
    methods = sorted({m for _, by in by_k for m in by if m != "zero-shot"})
    for method in methods:
        points = [(k, statistics.mean(at_step(r, final_step(r))["test"]["accuracy"] for r in by[method]))
                  for k, by in by_k if by.get(method)]
        axes[0][0].plot([k for k, _ in points], [a for _, a in points], marker="o", label=method)
        for ax, (k, by) in zip(axes[0][1:], by_k):
            runs = by.get(method, [])
            steps = sorted({int(x) for r in runs for x in r["test_at_steps"]})
            means = [statistics.mean(r["test_at_steps"][str(x)]["test"]["accuracy"] for r in runs
                                     if str(x) in r["test_at_steps"]) for x in steps]
            ax.plot(steps, means, marker="o", label=method)
            ax.set(title=f"K = {k}", xlabel="step", ylabel="test accuracy")
    axes[0][0].set(xscale="log", xlabel="K (examples per class)", ylabel="test accuracy at the last step",
                   title=f"{Path(suites[0].settings.model).name} {suites[0].settings.task}")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    path = output / f"few-shot-{Path(suites[0].settings.model).name}-{suites[0].settings.task}.png"
    output.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
