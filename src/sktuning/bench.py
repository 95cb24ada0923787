"""`sktune bench`: SK-Tuning against the real baselines, same backbone, data, head, pooling,
optimiser, step budget and seeds; a markdown report and a learning-curve plot per task.

Each (method, learning rate, seed) trains in its own subprocess, so its peak memory (max RSS) is
its own. Learning rates come from a small per-method grid, chosen on the validation split with
seed 0; the test split is read only for the final numbers, at the best validation step.
"""

from __future__ import annotations

import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sktuning.files import atomic_path, atomic_write_text

BASELINES = ["prompt-tuning", "prompt-tuning-text", "prefix-tuning", "prefix-tuning-mlp", "p-tuning"]


@dataclass
class BenchSettings:
    model: str = "smollm2-135m"
    task: str = "rt-polarity"
    steps: int = 120
    batch_size: int = 8
    eval_every: int = 30
    max_train: int = 4000
    max_eval: int = 300
    max_test: int = 600
    max_length: int = 64
    warmup_ratio: float = 0.06


QUICK = dict(steps=24, batch_size=8, eval_every=8, max_train=1000, max_eval=128, max_test=256, max_length=48)
#: the suite of the benchmark issue: four tasks on SmolLM2, one on MiniLM (cheapest first within a phase)
FULL_SUITE = [("smollm2-135m", "rt-polarity"), ("smollm2-135m", "trec"), ("minilm-l6", "rt-polarity"),
              ("smollm2-135m", "tweet-sentiment"), ("smollm2-135m", "brown-pos")]


def format_duration(seconds: float) -> str:
    """'3 h 05 min', '12 min': how long the rest of a suite will take, at the precision it can be known."""
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


# -- one run (in a subprocess) -------------------------------------------------------------------
def run_one(settings: BenchSettings, method: str, lr: float, seed: int) -> dict[str, Any]:
    import torch
    from transformers import get_linear_schedule_with_warmup

    from sktuning.baselines import build_method
    from sktuning.config import SKTuningConfig
    from sktuning.encoding import InputEncoder
    from sktuning.metrics import compute_metrics
    from sktuning.model import tokenize_text
    from sktuning.models import load_backbone, model_path
    from sktuning.tasks import load_task
    from sktuning.trainer import predict_rows

    torch.set_num_threads(2)
    data = load_task(settings.task)
    backbone, tokenizer = load_backbone(settings.model)
    text_ids = tokenize_text(tokenizer, data.default_text)
    config = SKTuningConfig(text=data.default_text, task=data.task, num_labels=max(1, len(data.label_names)),
                            pooling="mean" if tokenizer.cls_token is not None else "last",
                            label_names=data.label_names or None)
    torch.manual_seed(seed)
    model = build_method(method, backbone, text_ids, config, tokenizer_path=model_path(settings.model))
    encoder = InputEncoder(tokenizer, text_ids, data.task, settings.max_length)

    def rows(split: str, limit: int) -> list[dict]:
        dataset = data.splits[split]
        if limit < len(dataset):  # the same subset for every method and seed
            dataset = dataset.shuffle(seed=0).select(range(limit))
        return encoder.encode(dataset, split).to_list()

    train, val, test = rows("train", settings.max_train), rows("validation", settings.max_eval), \
        rows("test", settings.max_test)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * settings.steps),
                                                settings.steps)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []

    def evaluate(split_rows):
        predictions, references, _ = predict_rows(model, encoder, split_rows, 64, config=config)
        return compute_metrics(data.metrics, predictions, references, data.label_names)

    curve, times, best, best_state = [], [], -math.inf, None
    for step in range(1, settings.steps + 1):
        if len(order) < settings.batch_size:
            order += torch.randperm(len(train), generator=generator).tolist()
        batch = encoder.collate([train[i] for i in order[:settings.batch_size]])
        del order[:settings.batch_size]
        batch.pop("word_ids", None)
        model.train()
        started = time.perf_counter()
        loss, _ = model(**batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
        if step % settings.eval_every == 0 or step == settings.steps:
            score = evaluate(val)[data.metrics[0]]
            curve.append((step, score))
            if score > best:
                best, best_state = score, {i: p.detach().clone() for i, p in enumerate(params)}
    if best_state is not None:
        with torch.no_grad():
            for i, p in enumerate(params):
                p.copy_(best_state[i])
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in params)
    return {"method": method, "lr": lr, "seed": seed, "curve": curve, "best_validation": best,
            "test": evaluate(test), "metric": data.metrics[0], "trainable": trainable, "total": total,
            "step_seconds": statistics.median(times),  # the median: robust to a stall of the machine
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _subprocess_run(settings: BenchSettings, method: str, lr: float, seed: int, log: Path) -> dict[str, Any]:
    spec = json.dumps({"settings": asdict(settings), "method": method, "lr": lr, "seed": seed})
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "sktuning.bench", spec], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{method} lr={lr} seed={seed} failed:\n{result.stderr[-3000:]}")
    record = json.loads(result.stdout.strip().splitlines()[-1])
    record.update(settings=asdict(settings), seconds=round(time.perf_counter() - started, 1))
    cut = log.exists() and log.stat().st_size > 0 and not log.read_bytes().endswith(b"\n")
    with log.open("a", encoding="utf-8") as handle:  # every finished run is kept, so a rerun can skip it
        # a line cut short by a crash must not swallow this one too
        handle.write(("\n" if cut else "") + json.dumps(record) + "\n")
    return record


# -- the suite -----------------------------------------------------------------------------------
#: the order of the work, so that an interrupted suite has the most useful part done: every method
#: once at its default rate (a full single-seed table), then the rest of the grid, then more seeds
PHASES = ("first", "grid", "seeds")


@dataclass
class Suite:
    """The runs of one model-task pair, resumable: finished runs live in ``<name>.runs.jsonl``."""

    settings: BenchSettings
    methods: list[str]
    seeds: list[int]
    grid: bool
    output: Path
    done: dict[tuple, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log = self.output / f"{self._name()}.runs.jsonl"
        self.ignored = 0
        if self.log.exists():
            for line in self.log.read_text(encoding="utf-8").splitlines():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash: that run is simply done again
                    continue
                if r.get("settings") == asdict(self.settings):  # a run with another budget is not reused
                    self.done[(r["method"], r["lr"], r["seed"])] = r
                else:
                    self.ignored += 1

    def rates(self, method: str) -> list[float]:
        from sktuning.baselines import DEFAULT_LR, LR_GRID

        return LR_GRID[method] if self.grid else [DEFAULT_LR[method]]

    def chosen_lr(self, method: str) -> float | None:
        """The rate with the best validation score among the finished seed-0 runs of the grid."""
        tried = [lr for lr in self.rates(method) if (method, lr, self.seeds[0]) in self.done]
        return max(tried, key=lambda lr: self.done[(method, lr, self.seeds[0])]["best_validation"], default=None)

    def grid_edge(self, method: str) -> str | None:
        """"top" or "bottom" when the chosen rate is at that edge of a fully tried grid: a rate beyond
        it might have done better, so the method may be under-tuned."""
        rates, chosen = sorted(self.rates(method)), self.chosen_lr(method)
        if len(rates) < 2 or any((method, lr, self.seeds[0]) not in self.done for lr in rates):
            return None
        return "top" if chosen == rates[-1] else "bottom" if chosen == rates[0] else None

    def planned(self, phase: str) -> list[tuple[str, float, int]]:
        from sktuning.baselines import DEFAULT_LR

        if phase == "first":
            return [(m, DEFAULT_LR[m], self.seeds[0]) for m in self.methods]
        if phase == "grid":
            return [(m, lr, self.seeds[0]) for m in self.methods for lr in self.rates(m)]
        return [(m, self.chosen_lr(m), seed) for m in self.methods for seed in self.seeds[1:]]

    def plan(self) -> list[tuple[str, float | None, int]]:
        """Every run of the suite (the seeds at each method's rate as chosen so far)."""
        return self.planned("grid") + [(m, self.chosen_lr(m), s) for m in self.methods for s in self.seeds[1:]]

    def missing(self) -> list[tuple[str, float | None, int]]:
        return [key for key in self.plan() if key not in self.done]

    def seconds_left(self) -> tuple[float, int]:
        """(estimated seconds, runs with nothing to estimate them by) for the runs still missing.

        Each run is estimated by the median wall time of its method's finished runs here (a method's
        runs do the same work), else by the median of all of them: a 12-hour suite should say so."""
        times: dict[str, list[float]] = {}
        for (method, _, _), record in self.done.items():
            if "seconds" in record:  # the earliest runs did not record it
                times.setdefault(method, []).append(record["seconds"])
        anywhere = [t for ts in times.values() for t in ts]
        total, unknown = 0.0, 0
        for method, _, _ in self.missing():
            if method in times or anywhere:
                total += statistics.median(times.get(method) or anywhere)
            else:
                unknown += 1
        return total, unknown

    def run(self, phases=PHASES) -> None:
        self.output.mkdir(parents=True, exist_ok=True)
        for phase in phases:
            for key in self.planned(phase):
                if key not in self.done:
                    method, lr, seed = key
                    if lr is None:  # the seeds phase needs a rate chosen on seed 0 first
                        raise ValueError(f"{self._name()}: {method} has no finished seed-{self.seeds[0]} run to "
                                         "choose a learning rate from; run the 'first' or 'grid' phase before "
                                         "'seeds'.")
                    plan = self.plan()
                    print(f"[{time.strftime('%H:%M:%S')}] {self._name()} ({phase}): {method} lr={lr:g} seed={seed} "
                          f"(run {sum(k in self.done for k in plan) + 1} of {len(plan)})", flush=True)
                    self.done[key] = _subprocess_run(self.settings, method, lr, seed, self.log)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The finished runs at each method's chosen rate: what the report is made of."""
        rates = {m: self.chosen_lr(m) for m in self.methods}
        return [self.done[(m, rates[m], s)] for m in self.methods for s in self.seeds if (m, rates[m], s) in self.done]

    def _name(self) -> str:
        return f"{Path(self.settings.model).name}-{self.settings.task}"  # a local folder: its name

    def table(self) -> tuple[dict[str, list[dict]], dict[str, dict], float | None]:
        """(runs by method, one summary row per method, the best baseline's mean final validation score)."""
        by_method: dict[str, list[dict]] = {}
        for r in self.records:
            by_method.setdefault(r["method"], []).append(r)
        if not self.records:
            raise ValueError(f"{self.log} holds no finished run with these settings; run the suite first.")
        metric = self.records[0]["metric"]
        finals = [_mean_curve(by_method[m])[-1][1] for m in by_method if m in BASELINES]
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
                "to_target": _steps_to(_mean_curve(runs), target)}
        return by_method, rows, target

    def step_time_spread(self) -> tuple[str, float, float] | None:
        """(method, fastest, slowest step time) over every finished run of the method whose runs differ most.

        Runs of one method do the same work per step at any rate or seed, so their spread is the machine's:
        the suite runs across sessions, on machines whose speed is not the same."""
        times: dict[str, list[float]] = {}
        for (method, _, _), record in self.done.items():
            times.setdefault(method, []).append(record["step_seconds"])
        spread = [(m, min(t), max(t)) for m, t in times.items() if len(t) > 1]
        return max(spread, key=lambda m_lo_hi: m_lo_hi[2] / m_lo_hi[1], default=None)

    def report(self, command: str) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import torch
        import transformers

        name, s = self._name(), self.settings
        by_method, rows, target = self.table()
        metric = next(iter(by_method.values()))[0]["metric"]
        figure, axis = plt.subplots(figsize=(9, 5.5))
        axis.set_prop_cycle(color=plt.cm.tab20.colors)  # 16 methods: no colour used twice
        for method, runs in by_method.items():
            steps, mean = zip(*_mean_curve(runs))
            axis.plot(steps, mean, label=method, linewidth=2.2 if method.startswith("sk-") else 1.2,
                      linestyle="-" if method.startswith("sk-") else "--")
        axis.set(xlabel="training step", ylabel=f"validation {metric}", title=f"{name} (mean of seeds {self.seeds})")
        axis.legend(fontsize=7, ncol=2)
        axis.grid(alpha=0.3)
        figure.tight_layout()
        with atomic_path(self.output / f"{name}.png") as tmp:
            figure.savefig(tmp, dpi=110, format="png")
        plt.close(figure)

        fmt = lambda v, f="": "—" if v is None else format(v, f)  # noqa: E731
        timed = [r["seconds"] for r in self.done.values() if "seconds" in r]
        missing = self.missing()
        lines = [f"# {name}", "", f"Command: `{command}`", "",
                 f"Machine: {platform.machine()}, 2 CPU threads; python {platform.python_version()}, torch "
                 f"{torch.__version__}, transformers {transformers.__version__}; seeds {self.seeds}; "
                 f"{s.steps} steps of batch {s.batch_size}, {s.max_train} training / {s.max_eval} validation / "
                 f"{s.max_test} test examples, inputs cut to {s.max_length} tokens; "
                 f"{len(self.done)} runs done, {sum(timed) / 60:.0f} min of run time"
                 + (f" ({len(self.done) - len(timed)} earlier runs kept no time)" if len(timed) < len(self.done)
                    else "") + ".", ""]
        if missing:
            counts = sorted({len(v) for v in by_method.values()})
            seeds_done = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
            lines += [f"**Partial: {len(missing)} of {len(self.plan())} planned runs are still to do** "
                      f"({', '.join(sorted({m for m, _, _ in missing}))}). Seeds done per method: {seeds_done} of "
                      f"{len(self.seeds)}; a learning rate is the best of the rates tried so far. Rerunning the "
                      "command resumes.", ""]
        lines += [f"![learning curves]({name}.png)", "",
                  f"| method | test {metric} (mean ± sd) | seeds | trainable | % of model | lr | step (s) | peak RSS "
                  f"(MiB) | steps to 95% of own best | steps to best baseline's final val ({fmt(target, '.3f')}) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        edges = {m: f" ({edge})" for m in rows if (edge := self.grid_edge(m))}
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
        spread = self.step_time_spread()
        if spread and spread[2] > 1.2 * spread[1]:
            method, fastest, slowest = spread
            lines[-1] += (f" Runs of one method, which do the same work per step at any rate or seed, took up to "
                          f"{slowest / fastest:.1f}x as long as each other ({method}: {fastest:.2f} to {slowest:.2f} s): "
                          "the machine's speed varied between runs, and the suite runs over several sessions. So this "
                          "column ranks the methods only roughly; `python benchmarks/overhead.py` times them side by "
                          "side in one process.")
        lines += ["", "## The paper's claims, on this task", ""]
        lines += [f"- {claim}: **{verdict}** ({detail})." for claim, verdict, detail in self.claims(rows)]
        pairs = self.like_for_like(rows)
        if pairs:
            lines += ["", "## Like for like", "",
                      "The first claim takes the best of every SK variant against the best of five baselines, so "
                      "the choice alone favours SK. Here each SK kind meets only the baselines that put their "
                      "vectors in the same place (test metric, mean ± sd over the seeds done):", ""]
            lines += [f"- {kind}: best {ours} {r_ours['mean']:.3f} ± {fmt(r_ours['std'], '.3f')} vs best {theirs} "
                      f"{r_theirs['mean']:.3f} ± {fmt(r_theirs['std'], '.3f')}: **{gap:+.3f}**{_noise(gap, spread)}."
                      for kind, ours, r_ours, theirs, r_theirs, gap, spread in pairs]
        path = self.output / f"{name}.md"
        atomic_write_text(path, "\n".join(lines) + "\n")
        return path

    @staticmethod
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

    @staticmethod
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
                        f"{base[best_base]['mean']:.3f}: {gap:+.3f}{_noise(gap, spread)}"))
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


def _mean_curve(runs: list[dict]) -> list[tuple[int, float]]:
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


def _noise(gap: float, spread: float | None) -> str:
    """What the spread says about a gap, for the reports."""
    if spread is None:
        return " (one seed: no spread to judge it by)"
    return f" (within one sd, {spread:.3f})" if abs(gap) <= spread else ""


#: each SK kind and the baselines that put their trainable vectors in the same place
COUNTERPARTS = {"SK-Prompt": ["prompt-tuning", "prompt-tuning-text", "p-tuning"],  # the input embeddings
                "SK-Prefix": ["prefix-tuning", "prefix-tuning-mlp"]}  # every layer's keys and values

CLAIMS = ("Higher accuracy than prompt / prefix / P-tuning",
          "Fewer steps to the same accuracy (the best baseline's final validation score)",
          "Fewer parameters than LoRA at comparable accuracy (within 1 point)")


def _mark(gap: float, spread: float | None) -> str:
    return "†" if spread is None else "*" if abs(gap) <= spread else ""


def write_summary(suites: list[Suite], output: Path, command: str) -> Path:
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
                    for claim, verdict, detail in suite.claims(rows)}
        plan = suite.plan()
        lines.append(f"| [{suite._name()}]({suite._name()}.md) | {len(plan) - len(suite.missing())} of {len(plan)} | "
                     + " | ".join(verdicts.get(claim, "—") for claim in CLAIMS) + " | "
                     + " / ".join(f"{gap:+.3f}{_mark(gap, spread)}" for *_, gap, spread in suite.like_for_like(rows))
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


if __name__ == "__main__":  # one run, for Suite's subprocesses
    import warnings

    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    import datasets

    datasets.disable_progress_bars()
    spec = json.loads(sys.argv[1])
    print(json.dumps(run_one(BenchSettings(**spec["settings"]), spec["method"], spec["lr"], spec["seed"])))
