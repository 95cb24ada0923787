"""`sktune bench`: train every method with the same backbone, data, head, optimiser, steps and seeds;
write docs/results/<model>-<task>.md, a learning-curve PNG and the summary of the paper's claims."""

from __future__ import annotations

from sktuning.core.errors import UsageError

import argparse
import logging
import sys
from pathlib import Path

from sktuning.bench.settings import (ALL_METHODS, FEW_SHOT_METHODS, FEW_SHOT_PAIRS, FEW_SHOT_SEEDS, METHODS,
                                     NOT_APPLICABLE, OWN_DATA, QUICK_METHODS)
from sktuning.cli.options import FILE_TASK_TYPES, positive_int

logger = logging.getLogger("sktuning")


def add_parser(sub) -> None:
    bench = sub.add_parser("bench", help="compare SK-Tuning with the baselines",
                           description="Train every method with the same backbone, data, head, optimiser, steps "
                                       "and seeds; write docs/results/<model>-<task>.md and a learning-curve PNG.")
    bench.add_argument("--quick", action="store_true",
                       help="rt-polarity on SmolLM2, seed 0, default learning rates, small budget (< 15 min)")
    bench.add_argument("--pairs", nargs="+", metavar="MODEL:TASK",
                       help="model:task pairs (default: the full suite, or rt-polarity on SmolLM2 with --quick)")
    data = bench.add_argument_group("your own data (instead of --pairs): the options of sktune train")
    data.add_argument("--model", help="named model, Hugging Face id or local folder (default smollm2-135m)")
    data.add_argument("--task", help="named task (default rt-polarity when no files are given)")
    data.add_argument("--train", help="training file: .csv, .tsv, .jsonl or CoNLL")
    data.add_argument("--validation", help="validation file (default: 10%% of --train)")
    data.add_argument("--test", help="test file (default: 10%% of --train)")
    data.add_argument("--text-column")
    data.add_argument("--text-pair-column")
    data.add_argument("--label-column")
    data.add_argument("--label-names", nargs="+")
    data.add_argument("--task-type", choices=FILE_TASK_TYPES)
    bench.add_argument("--shots", nargs="+", type=positive_int, metavar="K",
                       help="the few-shot suite (docs/few-shot-plan.md): K training and K validation examples per "
                            "class, drawn per seed, the whole test split scored at pre-registered steps; default "
                            "pairs " + ", ".join(f"{m}:{t}" for m, t in FEW_SHOT_PAIRS) + ", seeds 0-9, methods "
                            + ", ".join(FEW_SHOT_METHODS) + " (output docs/results/few-shot)")
    bench.add_argument("--methods", nargs="+", metavar="METHOD",
                       help="methods to run (default: all): " + ", ".join(METHODS))
    bench.add_argument("--seeds", nargs="+", type=int, help="seeds (default 0 1 2; 0 with --quick)")
    bench.add_argument("--no-grid", action="store_true", help="skip the learning-rate grid")
    bench.add_argument("--steps", type=positive_int)
    bench.add_argument("--group-by-length", action="store_true",
                       help="length-grouped training batches, as sktune train uses (less padding, faster); the "
                            "committed suites trained without, so their new runs must too to stay comparable")
    bench.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                       help="other budget settings, e.g. batch_size=8 eval_every=30 max_eval=300 max_test=600")
    bench.add_argument("--output", help="report folder (default docs/results; docs/results/quick with --quick)")
    bench.add_argument("--phases", nargs="+", choices=["first", "grid", "seeds"],
                       help="run only these phases: first (every method once at its default rate), grid (the "
                            "other rates), seeds (the other seeds); default all three, in that order")
    bench.add_argument("--rates-from", metavar="DIR",
                       help="run each method once per seed at the learning rate the default-budget suite in DIR "
                            "chose on validation (for a longer budget: --steps 480 --output docs/results/long)")
    bench.add_argument("--ray", metavar="ADDRESS",
                       help="run the runs as Ray tasks on the cluster at ADDRESS (e.g. auto, or host:6379), one "
                            "CPU each; records and test metrics are those of a local run")
    bench.add_argument("--ray-gpus-per-run", type=float, default=0.0, help="GPUs each Ray task reserves (default 0)")
    bench.add_argument("--report-only", action="store_true",
                       help="write the reports from the runs finished so far (of an interrupted suite); run nothing")
    bench.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from sktuning.bench import FULL_SUITE, PHASES, QUICK, BenchSettings, Suite, format_duration, write_summary
    from sktuning.bench.settings import few_shot_settings
    from sktuning.bench.suite import RECENT
    from sktuning.cli.common import quiet_libraries

    own = {k: getattr(args, k) for k in OWN_DATA if getattr(args, k) is not None}
    if args.shots and (args.quick or args.rates_from or args.ray):
        raise UsageError("--shots runs the few-shot suite, with its own budget and rates: leave out --quick, "
                         "--rates-from and --ray.")
    if args.pairs and (own or args.model or args.task):
        raise UsageError("Give --pairs, or --model with --task or your own files, not both.")
    if own and args.task:
        raise UsageError("Give either --task or --train/--validation/--test files, not both.")
    if own and not (args.train or args.test):
        raise UsageError("Your own data needs --train (and optionally --validation, --test) or --test.")
    if own:  # the report is named after the training file
        pairs = [(args.model or "smollm2-135m", Path(args.train or args.test).stem)]
    elif args.model or args.task:
        pairs = [(args.model or "smollm2-135m", args.task or "rt-polarity")]
    else:
        pairs = [tuple(p.split(":", 1)) for p in args.pairs] if args.pairs else (
            [("smollm2-135m", "rt-polarity")] if args.quick else FEW_SHOT_PAIRS if args.shots else FULL_SUITE)
    if any(len(p) != 2 for p in pairs):
        raise UsageError("--pairs takes MODEL:TASK items, e.g. smollm2-135m:trec.")
    for method in set(args.methods or []) & set(NOT_APPLICABLE):
        raise UsageError(f"{method}: {NOT_APPLICABLE[method]}")
    unknown = sorted(set(args.methods or []) - set(ALL_METHODS))
    if unknown:
        raise UsageError(f"Unknown method(s) {unknown}: choose from {', '.join(ALL_METHODS)}.")
    seeds = args.seeds or ([0] if args.quick else FEW_SHOT_SEEDS if args.shots else [0, 1, 2])
    command = " ".join(["sktune bench", *(a for a in sys.argv[2:] if a != "--report-only")])
    output = Path(args.output or ("docs/results/quick" if args.quick else "docs/results/few-shot" if args.shots
                                  else "docs/results"))
    quiet_libraries()

    def suite_of(settings: BenchSettings) -> Suite:
        if settings.shots:  # a grid grown at most once per end: 32 validation examples choose its rate
            return Suite(settings, args.methods or FEW_SHOT_METHODS, seeds, grid=not args.no_grid, output=output,
                         extensions=1)
        suite = Suite(settings, args.methods or (QUICK_METHODS if args.quick else METHODS), seeds,
                      grid=not (args.quick or args.no_grid), output=output)
        if args.rates_from:  # the rates the default budget chose; its runs estimate this budget's times
            short = default_budget_in(Path(args.rates_from), settings)
            suite.fixed_rates, suite.reference = rates_chosen_in(short), short.done
        return suite

    def default_budget_in(folder: Path, settings: BenchSettings) -> Suite:
        mine = {k: getattr(settings, k) for k in OWN_DATA}  # the same data, the default budget
        return Suite(BenchSettings(model=settings.model, task=settings.task, **mine), METHODS, [0], grid=True,
                     output=folder)

    def rates_chosen_in(short: Suite) -> dict[str, float]:
        chosen = {m: short.chosen_lr(m) for m in args.methods or METHODS}
        missing = sorted(m for m, lr in chosen.items() if lr is None)
        if missing:
            raise UsageError(f"--rates-from {short.output}: no finished default-budget runs of {', '.join(missing)} "
                             f"for {short.settings.model}:{short.settings.task} to take a learning rate from; run "
                             "`sktune bench` there first, or leave those methods out with --methods.")
        return chosen

    suites = []
    for (model, task), shots in ((pair, k) for pair in pairs for k in args.shots or [None]):
        settings = few_shot_settings(model, task, shots, args.steps) if shots else \
            BenchSettings(model=model, task=task, **(QUICK if args.quick else {}), **own)
        if shots and own:
            settings = dataclasses.replace(settings, **own)
        if args.steps and not shots:
            settings.steps = args.steps
        if args.group_by_length:
            settings.group_by_length = True
        for item in args.set:
            name, _, value = item.partition("=")
            if name not in BenchSettings.__dataclass_fields__ or name in ("model", "task", *OWN_DATA) or not value:
                raise UsageError(f"--set {item!r}: use NAME=VALUE with NAME one of steps, batch_size, eval_every, "
                                 "max_train, max_eval, max_test, max_length, warmup_ratio.")
            switch = "bool" in str(BenchSettings.__dataclass_fields__[name].type)
            setattr(settings, name, _setting(getattr(settings, name), value, item, switch))
        suites.append(suite_of(settings))
        if suites[-1].ignored:
            logger.warning("%s: %d finished runs had another budget and are not reused.", suites[-1].log,
                           suites[-1].ignored)
    # the summary also covers the suite's other pairs already run in this folder with the same budget
    listed = {(s.settings.model, s.settings.task) for s in suites}
    summarised = [] if args.shots else \
        suites + [other for other in (suite_of(dataclasses.replace(suites[0].settings, model=m, task=t))
                                      for m, t in FULL_SUITE if (m, t) not in listed) if other.records]
    if not args.report_only:
        left = [suite.seconds_left() for suite in suites]
        runs = sum(len(suite.missing()) for suite in suites)
        seconds, unknown = sum(s for s, _ in left), sum(u for _, u in left)
        print(f"{runs} runs to do: about {format_duration(seconds)} at the median wall time of each method's "
              f"latest {RECENT} finished runs in {output}" + (f", plus {unknown} runs with none to go by" if unknown else ""),
              flush=True)
    # phase by phase over all pairs: an interrupted suite leaves whole single-seed tables behind
    executor = None
    if args.ray and not args.report_only:
        from sktuning.bench.cluster import RayExecutor

        executor = RayExecutor(args.ray, args.ray_gpus_per_run)
    for phase in [] if args.report_only else [p for p in PHASES if p in (args.phases or PHASES)]:
        for suite in suites:
            suite.run([phase], executor)
            if args.shots:
                print(f"{suite.name()} ({phase} done): report in {write_few_shot_report(suites, output, command)}")
                continue
            print(f"{suite.settings.model} {suite.settings.task} ({phase} done): report in {suite.report(command)}")
            write_summary(summarised, output, command)
    if args.report_only and args.shots:
        print(f"report in {write_few_shot_report(suites, output, command)}")
    elif args.report_only:
        for suite in suites:
            if suite.records:
                print(f"{suite.settings.model} {suite.settings.task}: report in {suite.report(command)}")
        print(f"summary in {write_summary(summarised, output, command)}")
    return 0


def write_few_shot_report(suites, output: Path, command: str) -> Path:
    from sktuning.bench.few_shot_report import write_few_shot_report as write

    return write(suites, output, command)


def _setting(current, value: str, item: str, switch: bool = False) -> bool | int | float:
    """A --set value of the setting's own kind: true/false for a switch (bool("false") would be True), a
    whole number or a decimal otherwise (either for a setting that is unset now)."""
    if switch or isinstance(current, bool):
        if value.lower() in ("true", "1", "yes", "on"):
            return True
        if value.lower() in ("false", "0", "no", "off"):
            return False
        raise UsageError(f"--set {item!r}: the value must be true or false.")
    kinds = (type(current),) if isinstance(current, (int, float)) else (int, float)
    for kind in kinds:
        try:
            return kind(value)
        except ValueError:
            pass
    raise UsageError(f"--set {item!r}: the value must be {'a whole number' if kinds == (int,) else 'a number'}.")
