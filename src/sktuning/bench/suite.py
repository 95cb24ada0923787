"""The runs of one model-task pair (`Suite`): resumable, planned in phases, a learning rate chosen per
method on validation with the first seed. The numbers are judged in `stats` and written out by `report`.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sktuning.bench import stats
from sktuning.bench.runner import append_record, subprocess_run
from sktuning.bench.settings import (ALL_METHODS, DEFAULT_LR, LR_GRID, MAX_EXTENSIONS, RATE_OF, BenchSettings,
                                     format_duration, next_rate)

logger = logging.getLogger("sktuning")

# -- the suite -----------------------------------------------------------------------------------
#: the order of the work, so that an interrupted suite has the most useful part done: every method
#: once at its default rate (a full single-seed table), then the rest of the grid, then more seeds
PHASES = ("first", "grid", "seeds")
#: how many of a method's latest runs estimate its next ones (`Suite.seconds_left`)
RECENT = 3


@dataclass
class Suite:
    """The runs of one model-task pair, resumable: finished runs live in ``<name>.runs.jsonl``."""

    settings: BenchSettings
    methods: list[str]
    seeds: list[int]
    grid: bool
    output: Path
    done: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    #: method -> the one rate to run it at, chosen elsewhere (the longer budget takes the short one's)
    fixed_rates: dict[str, float] | None = None
    #: finished runs of another budget on the same data (the short one's, for a longer budget): they
    #: estimate a method's time here until one of its runs has finished here
    reference: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    #: how often a grid may grow past each end (the few-shot suite: once)
    extensions: int = MAX_EXTENSIONS

    def __post_init__(self) -> None:
        self.log = self.output / f"{self._name()}.runs.jsonl"
        self.ignored = 0
        self._warned: set[str] = set()
        if self.log.exists():
            for line in self.log.read_text(encoding="utf-8").splitlines():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash: that run is simply done again
                    continue
                if self.settings.same_as(r.get("settings") or {}):  # a run with another budget is not reused
                    self.done[(r["method"], r["lr"], r["seed"])] = r
                else:
                    self.ignored += 1

    def rates(self, method: str) -> list[float]:
        """The method's grid as it stands: the base grid, grown by one rate at an end whenever the rate
        chosen on the finished grid sits at that end (at most `MAX_EXTENSIONS` times per end)."""
        if method in RATE_OF and self.fixed_rates is None:  # no grid of its own: the rate chosen for its base
            base = RATE_OF[method]  # its grid as grown so far: done means final
            grid_done = all((base, lr, self.seeds[0]) in self.done for lr in self.rates(base))
            return [self.chosen_lr(base)] if grid_done else []  # [] until then: it waits
        if self.fixed_rates is not None:
            return [self.fixed_rates[method]] if method in self.fixed_rates else []
        if not self.grid:
            return [DEFAULT_LR[method]]
        rates, grown = sorted(LR_GRID[method]), {"top": 0, "bottom": 0}
        while all((method, lr, self.seeds[0]) in self.done for lr in rates):
            edge = self._edge_of(method, rates)
            if edge is None or grown[edge] == self.extensions:
                break
            grown[edge] += 1
            if edge == "top":
                rates.append(next_rate(rates[-1], up=True))
            else:
                rates.insert(0, next_rate(rates[0], up=False))
        return rates

    def _edge_of(self, method: str, rates: list[float]) -> str | None:
        best = max(rates, key=lambda lr: self.done[(method, lr, self.seeds[0])]["best_validation"])
        return "top" if best == rates[-1] else "bottom" if best == rates[0] else None

    def first_rate(self, method: str) -> float | None:
        if method in RATE_OF or self.fixed_rates is not None:
            return next(iter(self.rates(method)), None)
        return DEFAULT_LR[method]

    def chosen_lr(self, method: str) -> float | None:
        """The rate with the best validation score among the finished seed-0 runs of the grid."""
        tried = [lr for lr in self.rates(method) if (method, lr, self.seeds[0]) in self.done]
        return max(tried, key=lambda lr: self.done[(method, lr, self.seeds[0])]["best_validation"], default=None)

    def grid_edge(self, method: str) -> str | None:
        """"top" or "bottom" when the chosen rate is at that edge of a fully tried grid (grown as far as
        it may be): a rate beyond it might have done better, so the method may be under-tuned."""
        rates = sorted(self.rates(method))
        if len(rates) < 2 or any((method, lr, self.seeds[0]) not in self.done for lr in rates):
            return None
        return self._edge_of(method, rates)

    def planned(self, phase: str) -> list[tuple[str, float, int]]:
        if phase == "first":
            return [(m, self.first_rate(m), self.seeds[0]) for m in self.methods]
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

        Each run is estimated by the median wall time of its method's latest `RECENT` finished runs here
        (a method's runs do the same work, and the latest ran on the machine as it is now: a suite spans
        sessions, whose machines differ in speed), else by its method's runs in `reference` rescaled to
        this budget (`rescaled_seconds`), else by the median of all runs here: a 12-hour suite should say
        so."""
        times: dict[str, list[float]] = {}
        for (method, _, _), record in self.done.items():  # in the order they finished
            if "seconds" in record:  # the earliest runs did not record it
                times.setdefault(method, []).append(record["seconds"])
        anywhere = [t for ts in times.values() for t in ts]
        times = {method: ts[-RECENT:] for method, ts in times.items()}
        rescaled: dict[str, list[float]] = {}
        for (method, _, _), record in self.reference.items():
            if "seconds" in record and "step_seconds" in record:
                rescaled.setdefault(method, []).append(rescaled_seconds(record, self.settings))
        total, unknown = 0.0, 0
        for method, _, _ in self.missing():
            known = times.get(method) or rescaled.get(method) or anywhere
            if known:
                total += statistics.median(known)
            else:
                unknown += 1
        return total, unknown

    def run(self, phases=PHASES, executor=None) -> None:
        """Run the phases' missing runs one after the other, or all that can run at once on `executor`
        (`cluster.RayExecutor`), wave after wave (a finished grid may grow)."""
        self.output.mkdir(parents=True, exist_ok=True)
        for phase in phases:
            while executor is not None and (wave := self._runnable(phase)):
                print(f"[{time.strftime('%H:%M:%S')}] {self._name()} ({phase}): {len(wave)} runs on the cluster",
                      flush=True)
                for key, record in executor.map(self.settings, wave):
                    append_record(self.log, record)
                    self.done[key] = record
            for key in [] if executor is not None else self._pending(phase):
                if key not in self.done:
                    method, lr, seed = key
                    if lr is None and method in RATE_OF:
                        self._waits(method, phase)
                        continue
                    if lr is None:  # the seeds phase needs a rate chosen on seed 0 first
                        raise UsageError(f"{self._name()}: {method} has no finished seed-{self.seeds[0]} run to "
                                         "choose a learning rate from; run the 'first' or 'grid' phase before "
                                         "'seeds'.")
                    plan = self.plan()
                    seconds, unknown = self.seconds_left()
                    left = f", about {format_duration(seconds)} left here" if not unknown else ""
                    print(f"[{time.strftime('%H:%M:%S')}] {self._name()} ({phase}): {method} lr={lr:g} seed={seed} "
                          f"(run {sum(k in self.done for k in plan) + 1} of {len(plan)}{left})", flush=True)
                    self.done[key] = subprocess_run(self.settings, method, lr, seed, self.log)

    def _runnable(self, phase: str) -> list[tuple[str, float, int]]:
        """The phase's missing runs whose rate is known now."""
        keys = []
        for key in dict.fromkeys(self.planned(phase)):
            method, lr, _ = key
            if key in self.done:
                continue
            if lr is None and method in RATE_OF:
                self._waits(method, phase)
                continue
            if lr is None:
                raise UsageError(f"{self._name()}: {method} has no finished seed-{self.seeds[0]} run to choose a "
                                 "learning rate from; run the 'first' or 'grid' phase before 'seeds'.")
            keys.append(key)
        return keys

    def _waits(self, method: str, phase: str) -> None:
        """A method that takes its base's rate waits for the base's grid: later in this phase or the next;
        after the grid phase, a base outside this suite's methods is named so the user can add it."""
        base = RATE_OF[method]
        if (phase == "seeds" or base not in self.methods) and method not in self._warned:
            self._warned.add(method)
            logger.warning("%s: %s waits for the grid of %s to finish (it runs at the rate chosen there); "
                           "run that grid (add %s to --methods), then %s again.", self._name(), method, base, base,
                           method)

    def _pending(self, phase: str):
        """The phase's runs; the grid phase looks again after each run, since a finished grid may grow."""
        seen: set = set()
        while True:
            todo = [key for key in self.planned(phase) if key not in self.done and key not in seen]
            if not todo:
                return
            seen.add(todo[0])
            yield todo[0]

    @property
    def records(self) -> list[dict[str, Any]]:
        """The finished runs at each method's chosen rate: what the report is made of. Every method with
        runs in the log counts, not only those this suite runs, so running one new method adds it to the
        report without dropping the others."""
        reported = [m for m in ALL_METHODS if m in self.methods or any(key[0] == m for key in self.done)]
        rates = {m: self.chosen_lr(m) for m in reported}
        return [self.done[(m, rates[m], s)] for m in reported for s in self.seeds if (m, rates[m], s) in self.done]

    def _name(self) -> str:
        shots = f"-{self.settings.shots}-shot" if self.settings.shots else ""
        return f"{Path(self.settings.model).name}-{self.settings.task}{shots}"  # a local folder: its name

    def name(self) -> str:
        return self._name()

    def table(self) -> tuple[dict[str, list[dict]], dict[str, dict], float | None]:
        """(runs by method, one summary row per method, the best baseline's mean final validation score)."""
        if not self.records:
            raise UsageError(f"{self.log} holds no finished run with these settings; run the suite first.")
        return stats.table(self.records)

    def reference_records(self) -> list[dict[str, Any]]:
        """The other budget's finished runs of this suite's methods at the rates run here, for the seeds
        run here: the same methods at the same rates, so the two budgets' tables can be set side by side."""
        if not self.fixed_rates:
            return []
        keys = [(r["method"], self.fixed_rates.get(r["method"]), r["seed"]) for r in self.records]
        return [self.reference[k] for k in keys if k in self.reference]

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
        """Write <model>-<task>.md and its learning-curve PNG beside the run log."""
        from sktuning.bench.report import write_report

        return write_report(self, command)

    def judged(self) -> tuple[list[stats.Comparison], list[tuple[str, str, str]]]:
        """(the headline comparisons, the paper's claims) on the runs finished so far."""
        by_method, rows, target = self.table()
        return stats.headline(by_method), stats.claims(by_method, rows, target)


def rescaled_seconds(record: dict[str, Any], settings: BenchSettings) -> float:
    """A finished run's wall time moved to another budget: its training steps at its median step time,
    the rest (loading, evaluation, test) spread over the examples it scored. The new budget scores its
    evaluations' examples and at most `max_test` test examples, counted as many as the run had (the
    split's size is not known without loading it), so a budget that raises `max_test` past the
    run's is underestimated by the extra test examples."""
    ran = record["settings"]
    training = ran["steps"] * record["step_seconds"]
    tested = len(record["test_references"]) if record.get("test_references") is not None else ran["max_test"]
    scored = (ran["steps"] // ran["eval_every"]) * ran["max_eval"] + tested
    per_example = max(record["seconds"] - training, 0.0) / max(scored, 1)
    scoring = (settings.steps // settings.eval_every) * settings.max_eval + min(settings.max_test, tested)
    return settings.steps * record["step_seconds"] + per_example * scoring
