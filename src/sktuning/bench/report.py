"""The benchmark's reports: per pair a markdown table with its learning-curve PNG, and one summary of
the paper's claims over all pairs. Every file is written atomically.
"""

from __future__ import annotations

import platform
from pathlib import Path

from sktuning.atomic import atomic_path, atomic_write_text
from sktuning.bench.stats import CLAIMS, COUNTERPARTS, claims, like_for_like, mark, mean_curve, noise
from sktuning.extras import require

def write_report(suite, command: str) -> Path:
    """A `Suite`'s <model>-<task>.md (table, claims, like for like) and its learning-curve PNG."""
    matplotlib = require("matplotlib", "bench")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    import transformers

    name, s = suite.name(), suite.settings
    by_method, rows, target = suite.table()
    metric = next(iter(by_method.values()))[0]["metric"]
    figure, axis = plt.subplots(figsize=(9, 5.5))
    axis.set_prop_cycle(color=plt.cm.tab20.colors)  # 16 methods: no colour used twice
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
    lines = [f"# {name}", "", f"Command: `{command}`", "",
             f"Machine: {platform.machine()}, 2 CPU threads; python {platform.python_version()}, torch "
             f"{torch.__version__}, transformers {transformers.__version__}; seeds {suite.seeds}; "
             f"{s.steps} steps of batch {s.batch_size}, {s.max_train} training / {s.max_eval} validation / "
             f"{s.max_test} test examples, inputs cut to {s.max_length} tokens; "
             f"{len(suite.done)} runs done, {sum(timed) / 60:.0f} min of run time"
             + (f" ({len(suite.done) - len(timed)} earlier runs kept no time)" if len(timed) < len(suite.done)
                else "") + ".", ""]
    if missing:
        counts = sorted({len(v) for v in by_method.values()})
        seeds_done = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
        lines += [f"**Partial: {len(missing)} of {len(suite.plan())} planned runs are still to do** "
                  f"({', '.join(sorted({m for m, _, _ in missing}))}). Seeds done per method: {seeds_done} of "
                  f"{len(suite.seeds)}; a learning rate is the best of the rates tried so far. Rerunning the "
                  "command resumes.", ""]
    lines += [f"![learning curves]({name}.png)", "",
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
    lines += ["", "## The paper's claims, on this task", ""]
    lines += [f"- {claim}: **{verdict}** ({detail})." for claim, verdict, detail in claims(rows)]
    pairs = like_for_like(rows)
    if pairs:
        lines += ["", "## Like for like", "",
                  "The first claim takes the best of every SK variant against the best of five baselines, so "
                  "the choice alone favours SK. Here each SK kind meets only the baselines that put their "
                  "vectors in the same place (test metric, mean ± sd over the seeds done):", ""]
        lines += [f"- {kind}: best {ours} {r_ours['mean']:.3f} ± {fmt(r_ours['std'], '.3f')} vs best {theirs} "
                  f"{r_theirs['mean']:.3f} ± {fmt(r_theirs['std'], '.3f')}: **{gap:+.3f}**{noise(gap, spread)}."
                  for kind, ours, r_ours, theirs, r_theirs, gap, spread in pairs]
    path = suite.output / f"{name}.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def write_summary(suites: list, output: Path, command: str) -> Path:
    """One table for all pairs: did each claim of the paper hold, and on how complete a run."""
    lines = ["# The paper's claims, per task", "",
             f"The full suite: `sktune bench`; this file was last written by `{command}`. Each task's report, "
             "beside this file, has its table, learning curves, machine, versions and seeds.", "",
             "| model / task | runs done | " + " | ".join(CLAIMS) + " | like for like: "
             + " / ".join(f"{kind} vs {', '.join(rivals)}" for kind, rivals in COUNTERPARTS.items()) + " |",
             "|---|---:|" + "---|" * (len(CLAIMS) + 1)]
    for suite in suites:
        if not suite.records:
            continue
        _, rows, _ = suite.table()
        verdicts = {claim: (f"**{verdict}**" if verdict == "did not hold" else verdict) + f" ({detail})"
                    for claim, verdict, detail in claims(rows)}
        plan = suite.plan()
        lines.append(f"| [{suite.name()}]({suite.name()}.md) | {len(plan) - len(suite.missing())} of {len(plan)} | "
                     + " | ".join(verdicts.get(claim, "—") for claim in CLAIMS) + " | "
                     + " / ".join(f"{gap:+.3f}{mark(gap, spread)}" for *_, gap, spread in like_for_like(rows))
                     + " |")
    if any(suite.missing() for suite in suites if suite.records):
        lines += ["", "Where fewer runs are done than planned, the verdicts are provisional: until the grid is "
                  "done every method runs at its default learning rate (which does not suit all of them), and "
                  "until seeds 1 and 2 are done there is no spread to tell a real gap from noise. Rerunning the "
                  "command continues the suite where it stopped."]
    lines += ["", "Like for like: the best SK-Prompt minus the best of its input-level counterparts, and the best "
              "SK-Prefix minus the best prefix tuning, in test metric; * marks a gap within one standard deviation, "
              "† a gap measured on one seed (no spread yet)."]
    path = output / "summary.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
