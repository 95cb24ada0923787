"""The benchmark's reports: per pair a markdown table with its learning-curve PNG, and one summary of
the paper's claims over all pairs. Every file is written atomically.
"""

from __future__ import annotations

import platform
from pathlib import Path

from sktuning.core.atomic import atomic_path, atomic_write_text
from sktuning.bench.settings import ABLATIONS, UNRELATED_TEXT
from sktuning.bench.stats import CLAIMS, COMPARABLE, TEXT_COUNTERPART, against_full_training, mean_curve, n_test, ranks
from sktuning.bench.stats import table as stats_table
from sktuning.core.extras import require

RULES = ("Each side's best method is picked on validation (the mean of each run's best validation score over "
         "seeds 1 and 2, whose rate was not chosen on them; seed 0 alone until they ran), never on test. Intervals are 95 % and count both the seeds and the test set's sampling "
         "noise: paired by seed and by test example where both sides ran the same seeds and kept their "
         "per-example predictions (a crossed design: seeds and examples both random, Student t with "
         "Satterthwaite's degrees of freedom), a paired bootstrap where only the examples pair, else a normal interval (seed variance with Welch's degrees of freedom, plus a binomial "
         "term per method); each line says which. A gap is held when its interval lies above zero, did not "
         "hold when it lies below, inconclusive otherwise, with the bound the interval supports (within ±x). Ties "
         "on validation go to fewer trainable parameters, then the first name alphabetically.")


def write_report(suite, command: str) -> Path:
    """A `Suite`'s <model>-<task>.md (SK against its text-initialised rival, the claims, every method) and its
    learning-curve PNG."""
    matplotlib = require("matplotlib", "data")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    import transformers

    name, s = suite.name(), suite.settings
    by_method, rows, target = suite.table()
    metric = next(iter(by_method.values()))[0]["metric"]
    figure, axis = plt.subplots(figsize=(9, 5.5))
    axis.set_prop_cycle(color=plt.cm.tab20.colors + plt.cm.tab20b.colors)  # 20 methods: no colour used twice
    for method, runs in by_method.items():
        steps, mean = zip(*mean_curve(runs))
        axis.plot(steps, mean, label=method, linewidth=2.2 if method.startswith("sk-") else 1.2,
                  linestyle="-" if method.startswith("sk-") else "--")
    axis.set(xlabel="training step", ylabel=f"validation {metric}", title=f"{name} (mean of seeds {suite.seeds})")
    axis.legend(fontsize=7, ncol=2)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(suite.output / f"{name}.png") as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)

    fmt = lambda v, f="": "—" if v is None else format(v, f)  # noqa: E731
    timed = [r["seconds"] for r in suite.done.values() if "seconds" in r]
    missing = suite.missing()
    threads = "/".join(str(t) for t in sorted({r["threads"] for r in suite.done.values() if r.get("threads")}))
    lines = [f"# {name}", "", f"Command: `{command}`", "",
             f"Machine: {platform.machine()}, {threads or 'unrecorded'} CPU threads; python {platform.python_version()}, torch "
             f"{torch.__version__}, transformers {transformers.__version__}; seeds {suite.seeds}; "
             f"{s.steps} steps of batch {s.batch_size}, {s.max_train} training / {s.max_eval} validation / "
             f"{s.max_test} test examples, inputs cut to {s.max_length} tokens; "
             f"{len(suite.done)} runs done, {sum(timed) / 60:.0f} min of run time"
             + (f" ({len(suite.done) - len(timed)} earlier runs kept no time)" if len(timed) < len(suite.done)
                else "") + ".", ""]
    if suite.fixed_rates is not None:
        lines += ["Learning rates: each method runs at the rate its default-budget grid (120 steps) chose on "
                  "validation, not tuned again for this budget.", ""]
    if missing:
        counts = sorted({len(v) for v in by_method.values()})
        seeds_done = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
        lines += [f"**Partial: {len(missing)} of {len(suite.plan())} planned runs are still to do** "
                  f"({', '.join(sorted({m for m, _, _ in missing}))}). Seeds done per method: {seeds_done} of "
                  f"{len(suite.seeds)}" + ("" if suite.fixed_rates is not None else
                                             "; a learning rate is the best of the rates tried so far")
                  + ". Rerunning the command resumes.", ""]
    headline, claims = suite.judged()
    lines += headline_lines(headline, metric, rows)
    lines += ["## The paper's claims, on this task", ""]
    lines += [f"- {claim}: **{verdict}** ({detail})." for claim, verdict, detail in claims]
    lines += ["", f"Steps: per seed, the first evaluated step (every {s.eval_every}) at which the validation "
              "score reaches the mark; held when every SK seed gets there before every baseline seed, did not "
              "hold when none is faster than the slowest baseline seed, inconclusive when they overlap. "
              f"Parameters: comparable when the interval of the gap to LoRA lies above -{COMPARABLE}.", ""]
    lines += budget_lines(suite, by_method, rows, metric)
    lines += ["## Every method", "", f"![learning curves]({name}.png)", "",
              f"| method | test {metric} (mean ± sd) | seeds | trainable | % of model | lr | step (s) | peak RSS "
              f"(MiB) | steps to 95% of own best | steps to best baseline's final val ({fmt(target, '.3f')}) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    edges = {m: f" ({edge})" for m in rows if (edge := suite.grid_edge(m))}
    for method, r in sorted(rows.items(), key=lambda kv: -kv[1]["mean"]):
        lines.append(f"| {method} | {r['mean']:.3f} ± {fmt(r['std'], '.3f')} | {r['seeds']} | "
                     f"{r['trainable']:,d} | {r['share']:.3f} | {r['lr']:g}{edges.get(method, '')} | {r['step']:.2f} | "
                     f"{r['memory']:.0f} | {fmt(r['to95'], '.0f')} | {fmt(r['to_target'], '.0f')} |")
    lines += ["", "Steps to 95% of own best: the first evaluated step at which a seed's validation score came "
              "within 5% of that seed's best, averaged over the seeds. Steps to the best baseline's final "
              "validation score: the first evaluated step at which the method's validation score, averaged "
              "over its seeds, reached the final score of the best of prompt, prefix and P-tuning, averaged the "
              "same way (so that baseline reaches it by its last step at the latest); — where never. "
              "Standard deviations are over seeds (— with one seed)."
              + (f" A rate marked (top) or (bottom) is at that edge of the method's grid, so a rate beyond it "
                 f"might have done better: {len(edges)} of {len(rows)} methods here." if edges else ""),
              "", "Peak RSS is the training process's; it includes the harness's copies of the trainable "
              "parameters at each new best validation score (up to two at once), which matters only for full "
              "fine-tuning (about 0.5 GiB a copy on SmolLM2-135M).",
              "", "Step time is the median over a run's steps, averaged over the method's runs at its chosen rate."]
    spread = suite.step_time_spread()
    if spread and spread[2] > 1.2 * spread[1]:
        method, fastest, slowest = spread
        lines[-1] += (f" Runs of one method, which do the same work per step at any rate or seed, took up to "
                      f"{slowest / fastest:.1f}x as long as each other ({method}: {fastest:.2f} to {slowest:.2f} s): "
                      "the machine's speed varied between runs, and the suite runs over several sessions. So this "
                      "column ranks the methods only roughly; `python benchmarks/overhead.py` times them side by "
                      "side in one process.")
    if any(m in rows for m in ABLATIONS):
        lines += ["", f"Ablations ({', '.join(ABLATIONS)}) are never picked as the best SK method. The unrelated "
                  f"text is the first tokens of: \"{UNRELATED_TEXT}\" (as many as the task's text has)."]
    path = suite.output / f"{name}.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def budget_lines(suite, long_by: dict, rows: dict, metric: str) -> list[str]:
    """For a budget run at another budget's rates (`Suite.reference`): each method's score and place at
    both budgets, and whether LoRA and full fine-tuning catch up with the best SK method."""
    reference = suite.reference_records()
    if not reference:
        return []
    short_by, short_rows, _ = stats_table(reference)
    steps = reference[0]["settings"]["steps"]
    n_short = n_test(reference)
    shared = {m: r for m, r in rows.items() if m in short_rows}
    before, after = ranks({m: short_rows[m] for m in shared}), ranks(shared)
    s = suite.settings
    lines = [f"## Against the {steps}-step budget", "",
             f"The same methods at the same learning rates and seeds: test {metric} after {steps} steps (on "
             f"{n_short} test examples) and after {s.steps} (on {n_test(next(iter(long_by.values())))}), and each "
             "method's place among these methods at each budget.", "",
             f"| method | lr | {steps} steps: test (mean ± sd, seeds) | place | {s.steps} steps | place | change |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    fmt_row = lambda r: f"{r['mean']:.3f} ± " + ("—" if r["std"] is None else f"{r['std']:.3f}") + f" ({r['seeds']})"  # noqa: E731
    for method in sorted(shared, key=lambda m: after[m]):
        lines.append(f"| {method} | {rows[method]['lr']:g} | {fmt_row(short_rows[method])} | {before[method]} | "
                     f"{fmt_row(rows[method])} | {after[method]} | {rows[method]['mean'] - short_rows[method]['mean']:+.3f} |")
    moved = [m for m in shared if before[m] != after[m]]
    lines += ["", "The order of the methods " + ("is the same at both budgets." if not moved else
              "changed: " + ", ".join(f"{m} {before[m]} -> {after[m]}" for m in sorted(moved, key=after.get)) + "."),
              "", f"Do LoRA and full fine-tuning catch up? The best SK method on validation against each, at both "
              "budgets (gap in test metric, SK side minus rival, 95 % interval):", ""]
    for label, by_method in ((f"{steps} steps", short_by), (f"{s.steps} steps", long_by)):
        for c in against_full_training(by_method):
            lines.append(f"- {label}: {c.ours} vs {c.theirs}: {c.gap}, {c.gap.said()} ({c.gap.how}).")
    return lines + [""]


def headline_lines(comparisons, metric: str, rows: dict) -> list[str]:
    """The report's lead: SK against PEFT's method that starts from the same text, with intervals."""
    lines = ["## SK against its text-initialised counterpart", "",
             "PEFT can start prompt tuning from the text's word embeddings and prefix tuning from the text's "
             "keys and values: the question is whether SK's adapter beats that, not random initialisation.", "",
             f"| comparison | ours: test {metric} | theirs | gap [95 % interval] | verdict | interval |",
             "|---|---|---|---|---|---|"]
    for c in comparisons:
        ours, theirs = rows[c.ours], rows[c.theirs]
        lines.append(f"| {c.question} | {c.ours} {ours['mean']:.3f} | {c.theirs} {theirs['mean']:.3f} | "
                     f"{c.gap} | {c.gap.said()} | {c.gap.how} |")
    if not comparisons:
        lines.append("| (no pair of these methods has finished runs yet) | | | | | |")
    return lines + ["", RULES, ""]


def verdict_table(judged: list, questions: list[str]) -> list[str]:
    """What held, what did not and what is inconclusive: one row per question, one column per pair."""
    names = [suite.name() for suite, *_ in judged]
    lines = ["## In one table", "", "Gap in test metric, SK side minus rival; the verdict by its 95 % interval.", "",
             "| question | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for question in questions:
        cells = []
        for _, headline, _ in judged:
            found = next((c for c in headline if c.question == question), None)
            cells.append(f"{_verdict(found.gap.said())} ({found.gap.gap:+.3f})" if found else "—")
        lines.append(f"| {question} | " + " | ".join(cells) + " |")
    for claim in CLAIMS:
        cells = [next((_verdict(v) for c, v, _ in claims if c == claim), "—") for *_, claims in judged]
        lines.append(f"| paper: {claim} | " + " | ".join(cells) + " |")
    return lines


def _verdict(verdict: str) -> str:
    return verdict if verdict.startswith("inconclusive") else f"**{verdict}**"


def write_summary(suites: list, output: Path, command: str) -> Path:
    """One file for all pairs: first SK against its text-initialised counterpart, then the paper's claims."""
    judged = [(suite, *suite.judged()) for suite in suites if suite.records]
    questions = [q for mode, rival in TEXT_COUNTERPART.items()
                 for q in (f"default SK-{mode.capitalize()} (lowrank) vs {rival}",
                           f"best SK-{mode.capitalize()} other than embedding (on validation) vs {rival}")]
    # the one table also asks whether LoRA and full fine-tuning are ahead of the best SK method
    full = [(suite, headline + against_full_training(suite.table()[0]), claims) for suite, headline, claims in judged]
    rivals = [f"best SK on validation vs {rival}" for rival in ("lora", "full-ft")]
    lines = ["# SK-Tuning against its rivals, per task", "",
             f"The full suite: `sktune bench`; this file was last written by `{command}`. Each task's report, "
             "beside this file, has its tables, learning curves, machine, versions and seeds.", "",
             *verdict_table(full, questions + rivals), "",
             "## SK against its text-initialised counterpart", "",
             "Gap in test metric [95 % interval] and verdict; — where a side has no finished runs.", "",
             "| model / task | " + " | ".join(questions) + " |", "|---|" + "---|" * len(questions)]
    for suite, headline, _ in judged:
        found = {c.question: c for c in headline}
        lines.append(f"| [{suite.name()}]({suite.name()}.md) | " + " | ".join(
            f"{found[q].ours}: {found[q].gap} {found[q].gap.said()}" if q in found else "—" for q in questions)
            + " |")
    lines += ["", "## The paper's claims", "", "| model / task | runs done | " + " | ".join(CLAIMS) + " |",
              "|---|---:|" + "---|" * len(CLAIMS)]
    for suite, _, claims in judged:
        verdicts = {claim: (f"**{verdict}**" if verdict == "did not hold" else verdict) + f" ({detail})"
                    for claim, verdict, detail in claims}
        plan = suite.plan()
        lines.append(f"| [{suite.name()}]({suite.name()}.md) | {len(plan) - len(suite.missing())} of {len(plan)} | "
                     + " | ".join(verdicts.get(claim, "—") for claim in CLAIMS) + " |")
    if any(suite.missing() for suite, *_ in judged):
        lines += ["", "Where fewer runs are done than planned, the verdicts are provisional: until the grid is "
                  "done a method runs at the best of the rates tried so far, and until seeds 1 and 2 are done the "
                  "intervals count no seed variance. Rerunning the command continues the suite where it stopped."]
    lines += ["", RULES]
    path = output / "summary.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
