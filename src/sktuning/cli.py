"""`sktune`: train, evaluate and use SK-Tuning adapters from the command line.

    sktune train                          # SmolLM2-135M + rt-polarity + SK-Prefix, test metrics printed
    sktune train --task trec --mode prompt --adapter linear --steps 400 --output runs/trec
    sktune eval --adapter runs/trec/adapter
    sktune predict --adapter runs/trec/adapter "Who wrote Hamlet?" "How far is the Moon?"
    sktune tasks | sktune models
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("sktuning")

# Default training length (chosen on the rt-polarity validation split; see docs/training.md).
DEFAULT_STEPS = 200
RUN_FILE = "run.json"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
                        format="%(message)s")
    _quiet_libraries()
    previous = _terminate_like_interrupt()
    try:
        return args.handler(args) or 0
    except ValueError as err:
        print(f"sktune {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        how = "terminated" if isinstance(err, Terminated) else "interrupted"
        hint = {"train": "; `--resume` continues from the last checkpoint",
                "bench": "; `sktune bench` again continues with the runs not finished"}.get(args.command, "")
        print(f"sktune {args.command}: {how}{hint}.", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        import torch.distributed

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a scheduler's preemption, torchrun stopping its workers) as an exception.

    Python's default SIGTERM ends the process on the spot: half-written temporary files stay behind
    and a bench's training subprocess runs on, orphaned. Raised instead, it unwinds like Ctrl-C:
    atomic writes delete their temporaries and `subprocess.run` kills its child.
    """


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def _terminate_like_interrupt() -> Any:
    """Install the SIGTERM handler; return the one it replaced (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None  # signal handlers can only be set there
    return signal.signal(signal.SIGTERM, _raise_terminated)


# -- parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sktune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")

    train = sub.add_parser("train", help="train an adapter and report test metrics",
                           description="Train an SK-Tuning adapter and head; writes DIR/adapter and DIR/metrics.json.")
    _add_model_and_data(train)
    group = train.add_argument_group("method")
    group.add_argument("--mode", choices=["prefix", "prompt"], default="prefix")
    group.add_argument("--text", help="semantic text (default: the task's own)")
    group.add_argument("--adapter", default="lowrank", help="embedding, lowrank, linear or scale (default lowrank)")
    group.add_argument("--rank", type=int, default=8, help="rank of the lowrank adapter (default 8)")
    group.add_argument("--pooling", choices=["last", "mean", "cls"],
                       help="sequence pooling (default: last for decoders, mean for encoders)")
    group = train.add_argument_group("training")
    length = group.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help=f"optimiser steps (default {DEFAULT_STEPS})")
    length.add_argument("--epochs", type=float, help="passes over the training set")
    group.add_argument("--batch-size", type=int, default=16)
    group.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    group.add_argument("--weight-decay", type=float, default=0.0)
    group.add_argument("--warmup-ratio", type=float, default=0.06)
    group.add_argument("--eval-every", type=int, default=100, help="evaluate on validation every N steps")
    group.add_argument("--save-every", type=int, default=100, help="checkpoint every N steps")
    group.add_argument("--patience", type=_positive_int, help="stop after N evaluations without improvement")
    group.add_argument("--max-train-examples", type=_positive_int, help="use a seeded subset of the training split")
    group.add_argument("--max-eval-examples", type=_positive_int, help="use a seeded subset of the validation split")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward passes")
    group.add_argument("--gradient-checkpointing", action="store_true",
                       help="recompute the frozen backbone's activations in the backward pass (less memory)")
    group.add_argument("--shard", choices=["fsdp", "zero3"],
                       help="shard the frozen backbone over the processes: PyTorch FSDP2 or DeepSpeed ZeRO-3 "
                            "(accelerate launch with an FSDP or DeepSpeed config chooses by itself)")
    group.add_argument("--deepspeed-config", metavar="JSON",
                       help="DeepSpeed config whose zero_optimization section --shard zero3 uses")
    group = train.add_argument_group("output")
    group.add_argument("--output", help="run folder (default runs/<task>-<mode>-<time>)")
    group.add_argument("--overwrite", action="store_true", help="replace a previous run in --output")
    group.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    group.add_argument("--quiet", action="store_true", help="no progress bar or info logs")
    train.set_defaults(handler=cmd_train)

    evaluate = sub.add_parser("eval", help="evaluate a trained adapter", description="Evaluate an adapter on a split.")
    evaluate.add_argument("--adapter", required=True, help="folder written by sktune train (DIR/adapter)")
    _add_model_and_data(evaluate, model_default=None)
    evaluate.add_argument("--split", default="test", choices=["train", "validation", "test"],
                          help="split of a named task (default test); a file given is evaluated whole")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--output-file", help="metrics JSON (default: beside the adapter)")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(handler=cmd_eval)

    predict = sub.add_parser("predict", help="label new texts", description="Predict labels; writes JSONL.")
    predict.add_argument("--adapter", required=True, help="folder written by sktune train (DIR/adapter)")
    predict.add_argument("--model", help="backbone (default: the one the adapter was trained on)")
    predict.add_argument("--trust-remote-code", action="store_true",
                         help="allow a Hub model to run its own code (off: loading never executes code)")
    predict.add_argument("--device", default="auto", help="cpu, cuda, ... (default: a GPU if any)")
    predict.add_argument("--input", help="file of inputs: .txt (one per line), .csv, .tsv or .jsonl")
    predict.add_argument("--text-column", help="(default: the adapter's, else text)")
    predict.add_argument("--text-pair-column", help="(default: the adapter's)")
    predict.add_argument("texts", nargs="*", help="texts to label (instead of --input)")
    predict.add_argument("--output-file", help="JSONL to write (default: standard output)")
    predict.add_argument("--batch-size", type=int, default=64)
    predict.add_argument("--no-sort", action="store_true", help="batch in input order instead of by length")
    predict.add_argument("--quiet", action="store_true")
    predict.set_defaults(handler=cmd_predict)

    bench = sub.add_parser("bench", help="compare SK-Tuning with the baselines",
                           description="Train every method with the same backbone, data, head, optimiser, steps "
                                       "and seeds; write docs/results/<model>-<task>.md and a learning-curve PNG.")
    bench.add_argument("--quick", action="store_true",
                       help="rt-polarity on SmolLM2, seed 0, default learning rates, small budget (< 15 min)")
    bench.add_argument("--pairs", nargs="+", metavar="MODEL:TASK",
                       help="model:task pairs (default: the full suite, or rt-polarity on SmolLM2 with --quick)")
    bench.add_argument("--methods", nargs="+", help="methods to run (default: all)")
    bench.add_argument("--seeds", nargs="+", type=int, help="seeds (default 0 1 2; 0 with --quick)")
    bench.add_argument("--no-grid", action="store_true", help="skip the learning-rate grid")
    bench.add_argument("--steps", type=int)
    bench.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                       help="other budget settings, e.g. batch_size=8 eval_every=30 max_eval=300 max_test=600")
    bench.add_argument("--output", help="report folder (default docs/results; docs/results/quick with --quick)")
    bench.add_argument("--phases", nargs="+", choices=["first", "grid", "seeds"],
                       help="run only these phases: first (every method once at its default rate), grid (the "
                            "other rates), seeds (the other seeds); default all three, in that order")
    bench.add_argument("--report-only", action="store_true",
                       help="write the reports from the runs finished so far (of an interrupted suite); run nothing")
    bench.set_defaults(handler=cmd_bench)

    tasks = sub.add_parser("tasks", help="list the tasks", description="List bundled and hub tasks.")
    tasks.set_defaults(handler=cmd_tasks)
    models = sub.add_parser("models", help="list the named models", description="List the named offline models.")
    models.set_defaults(handler=cmd_models)
    return parser


def _model_reference(name: str) -> str:
    """How the adapter records its backbone: a local folder as an absolute path, so that `eval` and
    `predict` find it from any directory; a named model or hub id as given."""
    from sktuning.models import MODELS

    return name if name in MODELS or not Path(name).exists() else str(Path(name).resolve())


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value} (leave the option out for no limit)")
    return value


def _add_model_and_data(parser: argparse.ArgumentParser, model_default: str | None = "smollm2-135m") -> None:
    group = parser.add_argument_group("model and data")
    group.add_argument("--model", default=model_default,
                       help="named model (sktune models), Hugging Face id or local folder"
                       + (f" (default {model_default})" if model_default else " (default: the adapter's)"))
    group.add_argument("--task", help="named task (sktune tasks); default rt-polarity when no files are given")
    group.add_argument("--train", help="training file: .csv, .tsv, .jsonl or CoNLL")
    group.add_argument("--validation", help="validation file (default: 10%% of --train)")
    group.add_argument("--test", help="test file")
    adapters = model_default is None  # eval: files are read the way the adapter was trained
    group.add_argument("--text-column", default=None if adapters else "text",
                       help="(default: the adapter's)" if adapters else "(default text)")
    group.add_argument("--text-pair-column", help="(default: the adapter's)" if adapters else None)
    group.add_argument("--label-column", default=None if adapters else "label",
                       help="(default: the adapter's)" if adapters else "(default label)")
    group.add_argument("--label-names", nargs="+", help="labels in id order (default: sorted labels of --train)")
    group.add_argument("--task-type", choices=["sequence-classification", "token-classification", "regression"],
                       help="for files: what the labels are (default: guessed from the file)")
    group.add_argument("--max-length", type=int, default=None if adapters else 128,
                       help="input tokens kept per example (default: " + ("the adapter's)" if adapters else "128)"))
    group.add_argument("--trust-remote-code", action="store_true",
                       help="allow a Hub model to run its own code (off: loading never executes code)")
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: this process's GPU if any)")
    group.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                       help="precision of the frozen backbone's weights (default float32)")


# -- commands --------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from sktuning import distributed as dist
    from sktuning.files import atomic_write_text, strict_json

    dist.init_from_env()  # a no-op unless started by torchrun / accelerate launch
    output, replace = _prepare_output(args)  # every process checks before any process writes
    if args.resume:  # the interrupted run's settings, over today's defaults for anything it predates
        saved = json.loads((output / RUN_FILE).read_text(encoding="utf-8"))
        defaults = vars(build_parser().parse_args(["train"]))
        ignored = sorted(k for k, v in vars(args).items()
                         if k not in ("output", "resume", "quiet", "handler") and v != defaults.get(k))
        if ignored:
            logger.warning("--resume continues with the settings in %s; ignoring %s", output / RUN_FILE,
                           ", ".join("--" + k.replace("_", "-") for k in ignored))
        args = argparse.Namespace(**{**defaults, **saved, "resume": True, "quiet": args.quiet,
                                     "output": str(output)})
    # everything that can fail on bad input happens before the first file is written
    data = _load_data(args)
    plan = _sharding_plan(args)
    device = _device(args.device)
    # to shard, the whole model is read on the CPU, its text encoded, and only then sharded to `device`
    backbone, tokenizer = _load_model(args.model, args.trust_remote_code, "cpu" if plan else device, args.dtype)
    if args.gradient_checkpointing:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    import torch

    from sktuning import SKTuningConfig, get_sk_model
    from sktuning.backbone import max_positions
    from sktuning.encoding import InputEncoder
    from sktuning.trainer import Trainer, TrainingArguments

    config = SKTuningConfig(mode=args.mode, text=args.text or data.default_text, task=data.task,
                            num_labels=max(1, len(data.label_names)), adapter=args.adapter, adapter_rank=args.rank,
                            pooling=args.pooling or _default_pooling(tokenizer),
                            label_names=data.label_names or None)
    torch.manual_seed(args.seed)  # the adapter's and head's initial values come from the seed too
    model = get_sk_model(backbone, tokenizer, config)
    held = None
    if plan:
        from sktuning.sharding import shard_backbone

        held = shard_backbone(model, device, plan)
        logger.info("backbone sharded over %d processes with %s: %s parameters here", dist.world_size(),
                    plan.engine, f"{held:,d}")
    if args.steps is None and args.epochs is None:
        args.steps = DEFAULT_STEPS
    training = TrainingArguments(output_dir=str(output), steps=args.steps if args.epochs is None else None,
                                 epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                                 weight_decay=args.weight_decay, warmup_ratio=args.warmup_ratio,
                                 eval_every=args.eval_every, save_every=args.save_every, patience=args.patience,
                                 seed=args.seed, progress=not args.quiet, bf16=args.bf16)
    limit = max_positions(model.backbone)
    room = limit - model.semantic.num_text_tokens if limit is not None else None
    if room is not None and args.max_length > room:  # the text takes positions too
        logger.info("--max-length %d lowered to %d: the backbone reads %d positions and the text takes %d",
                    args.max_length, room, limit, model.semantic.num_text_tokens)
        args.max_length = room
    encoder = InputEncoder(tokenizer, model.semantic.text_input_ids.tolist(), data.task, args.max_length)
    splits = _encoded_splits(data, encoder, args)
    metadata = {"model": _model_reference(args.model), "task": data.name, "task_source": "files" if args.train else "named",
                "max_length": args.max_length,
                "text_pair_column": args.text_pair_column, "text_column": args.text_column,
                "label_column": args.label_column}
    trainer = Trainer(model, encoder, splits["train"], splits["validation"], data.metrics, data.label_names,
                      training, adapter_metadata=metadata)
    dist.barrier()
    if dist.is_main():
        if replace:  # --overwrite: the previous run goes only now that the new one is known to start
            shutil.rmtree(output)
        output.mkdir(parents=True, exist_ok=True)
        if not args.resume:
            run = {k: v for k, v in vars(args).items() if k not in ("handler", "resume", "quiet", "overwrite")}
            atomic_write_text(output / RUN_FILE, json.dumps(run, indent=2))
    dist.barrier()
    logger.info("%s on %s, SK-%s (%s adapter): %s trainable parameters (%.4f%% of %s)", args.model, data.name,
                args.mode.capitalize(), args.adapter, f"{model.num_trainable_parameters():,d}",
                100 * model.num_trainable_parameters() / model.num_parameters(), f"{model.num_parameters():,d}")
    state = trainer.train(resume=args.resume)
    scores = trainer.evaluate(splits["test"])  # gathered across processes, each example once
    if not dist.is_main():
        return 0
    result = {"task": data.name, "split": "test", "metrics": scores, "model": args.model, "mode": args.mode,
              "adapter": args.adapter, "seed": args.seed, "steps": state.step, "best_step": state.best_step,
              "best_validation": state.best_metric, "trainable_parameters": model.num_trainable_parameters(),
              "total_parameters": model.num_parameters(), "train_seconds": round(state.train_seconds, 2),
              "history": state.history, "processes": dist.world_size(),
              "sharding": plan.engine if plan else None, "backbone_parameters_per_process": held,
              "environment": _environment()}
    model.save_pretrained(output / "adapter", metadata)
    atomic_write_text(output / "metrics.json", strict_json(result, indent=2))
    print(f"test {data.name}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
          + f"  ({state.step} steps, {state.train_seconds:.0f} s training; adapter in {output / 'adapter'})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from sktuning.files import atomic_write_text, strict_json
    from sktuning.trainer import predict_rows
    from sktuning.metrics import compute_metrics

    model, tokenizer, meta = _load_adapter(args)
    config, training = model.sk_config, meta.get("training", {})
    files = list(dict.fromkeys(f for f in (args.test, args.validation, args.train) if f))
    if len(files) > 1:
        raise ValueError("eval scores one file: give it with --test FILE.")
    if not (args.task or files):
        args.task = training.get("task") if training.get("task_source") == "named" else None
        if args.task is None:
            raise ValueError(f"{args.adapter} was trained on files: pass --test FILE (or --task NAME).")
    # read files the way the adapter was trained: its label ids, its task, its columns, its length
    args.label_names = args.label_names or config.label_names
    args.task_type = args.task_type or config.task
    for column, default in (("text_column", "text"), ("text_pair_column", None), ("label_column", "label")):
        setattr(args, column, getattr(args, column) or training.get(column) or default)
    args.max_length = args.max_length or training.get("max_length", 128)
    if files:  # the file is the split: read whole, nothing carved off it
        args.train = args.validation = args.test = files[0]
    data = _load_data(args)
    if data.task != config.task or (config.label_names and data.label_names != config.label_names):
        raise ValueError(f"The adapter predicts {config.task} over {config.label_names or config.num_labels} but "
                         f"{data.name} is {data.task} over {data.label_names}; evaluate it on its own task.")
    encoder = _encoder_for(model, tokenizer, data.task, args.max_length)
    rows = encoder.encode(data.splits[args.split], args.split).to_list()
    predictions, references, _ = predict_rows(model.merge(), encoder, rows, args.batch_size)
    scores = compute_metrics(data.metrics, predictions, references, data.label_names)
    result = {"task": data.name, "split": args.split, "metrics": scores, "adapter": str(args.adapter),
              "examples": len(rows), "environment": _environment()}
    target = Path(args.output_file) if args.output_file else Path(args.adapter).parent / f"eval-{data.name}-{args.split}.json"
    atomic_write_text(target, strict_json(result, indent=2))
    print(f"{args.split} {data.name}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()) + f"  (written to {target})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from sktuning.files import atomic_write_text
    from sktuning.predict import predict

    from sktuning.model import read_adapter_meta

    if not (args.texts or args.input):
        raise ValueError("Nothing to predict: pass texts as arguments or --input FILE.")
    training = read_adapter_meta(args.adapter).get("training", {})
    args.text_column = args.text_column or training.get("text_column") or "text"
    args.text_pair_column = args.text_pair_column or training.get("text_pair_column")
    rows = _read_prediction_inputs(args)  # bad input fails before the model loads
    if args.text_pair_column and "text_pair" not in rows[0]:
        raise ValueError(f"{args.adapter} was trained on text pairs (columns {args.text_column!r} and "
                         f"{args.text_pair_column!r}): give --input a table with both columns.")
    model, tokenizer, meta = _load_adapter(args)
    max_length = training.get("max_length", 128)
    # serving: the adapter's output is a constant
    result = predict(model.merge(), tokenizer, rows, args.batch_size, not args.no_sort, max_length)
    text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in result.records)
    if args.output_file:
        atomic_write_text(args.output_file, text)
    else:
        sys.stdout.write(text)
    logger.info("%d examples in %.2f s (%.1f examples/s)", len(result.records), result.seconds,
                result.examples_per_second)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import dataclasses

    from sktuning.baselines import METHODS
    from sktuning.bench import FULL_SUITE, PHASES, QUICK, BenchSettings, Suite, format_duration, write_summary

    pairs = [tuple(p.split(":", 1)) for p in args.pairs] if args.pairs else (
        [("smollm2-135m", "rt-polarity")] if args.quick else FULL_SUITE)
    if any(len(p) != 2 for p in pairs):
        raise ValueError("--pairs takes MODEL:TASK items, e.g. smollm2-135m:trec.")
    unknown = sorted(set(args.methods or []) - set(METHODS))
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}: choose from {', '.join(METHODS)}.")
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    command = " ".join(["sktune bench", *(a for a in sys.argv[2:] if a != "--report-only")])
    output = Path(args.output or ("docs/results/quick" if args.quick else "docs/results"))

    def suite_of(settings: BenchSettings) -> Suite:
        return Suite(settings, args.methods or METHODS, seeds, grid=not (args.quick or args.no_grid), output=output)

    suites = []
    for model, task in pairs:
        settings = BenchSettings(model=model, task=task, **(QUICK if args.quick else {}))
        if args.steps:
            settings.steps = args.steps
        for item in args.set:
            name, _, value = item.partition("=")
            if name not in BenchSettings.__dataclass_fields__ or name in ("model", "task") or not value:
                raise ValueError(f"--set {item!r}: use NAME=VALUE with NAME one of steps, batch_size, eval_every, "
                                 "max_train, max_eval, max_test, max_length, warmup_ratio.")
            setattr(settings, name, type(getattr(settings, name))(value))
        suites.append(suite_of(settings))
        if suites[-1].ignored:
            logger.warning("%s: %d finished runs had another budget and are not reused.", suites[-1].log,
                           suites[-1].ignored)
    # the summary also covers the suite's other pairs already run in this folder with the same budget
    listed = {(s.settings.model, s.settings.task) for s in suites}
    summarised = suites + [other for other in (suite_of(dataclasses.replace(suites[0].settings, model=m, task=t))
                                               for m, t in FULL_SUITE if (m, t) not in listed) if other.records]
    if not args.report_only:
        left = [suite.seconds_left() for suite in suites]
        runs = sum(len(suite.missing()) for suite in suites)
        seconds, unknown = sum(s for s, _ in left), sum(u for _, u in left)
        print(f"{runs} runs to do: about {format_duration(seconds)} at the median wall time of each method's "
              f"finished runs in {output}" + (f", plus {unknown} runs with none to go by" if unknown else ""),
              flush=True)
    # phase by phase over all pairs: an interrupted suite leaves whole single-seed tables behind
    for phase in [] if args.report_only else [p for p in PHASES if p in (args.phases or PHASES)]:
        for suite in suites:
            suite.run([phase])
            print(f"{suite.settings.model} {suite.settings.task} ({phase} done): report in {suite.report(command)}")
            write_summary(summarised, output, command)
    if args.report_only:
        for suite in suites:
            if suite.records:
                print(f"{suite.settings.model} {suite.settings.task}: report in {suite.report(command)}")
        print(f"summary in {write_summary(summarised, output, command)}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from sktuning.tasks import TASKS

    print(f"{'task':<16} {'kind':<24} {'source':<8} sizes (train/validation/test)  description")
    for spec in TASKS.values():
        sizes = "/".join(f"{spec.sizes[s]:,d}" for s in ("train", "validation", "test")) if spec.sizes else "-"
        print(f"{spec.name:<16} {spec.task:<24} {spec.source:<8} {sizes:<29} {spec.description}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from sktuning.models import MODELS

    print(f"{'model':<14} {'parameters':<11} description")
    for spec in MODELS.values():
        print(f"{spec.name:<14} {spec.parameters:<11} {spec.description}")
    print("Any Hugging Face id or local folder works too (online, or from a local copy).")
    return 0


# -- helpers ---------------------------------------------------------------------------------------
def _prepare_output(args: argparse.Namespace) -> tuple[Path, bool]:
    """The run folder, and whether a previous run in it is to be replaced (--overwrite)."""
    if args.resume:
        if not args.output:
            raise ValueError("--resume needs --output DIR, the folder of the run to continue.")
        output = Path(args.output)
        if not (output / RUN_FILE).is_file():
            raise ValueError(f"{output} holds no run to resume ({RUN_FILE} is missing); start without --resume.")
        return output, False
    if args.output:
        output = Path(args.output)
    else:
        name = args.task or (Path(args.train).stem if args.train else "rt-polarity")
        from sktuning.distributed import broadcast_object

        # one name for every process, even if their clocks read different seconds
        output = Path(broadcast_object(f"runs/{name}-{args.mode}-{time.strftime('%Y%m%d-%H%M%S')}"))
    if output.exists() and any(output.iterdir()):
        if not args.overwrite:
            raise ValueError(f"{output} already holds files of another run; pass --overwrite to replace them, "
                             "--resume to continue it, or choose another --output.")
        return output, True
    return output, False


def _load_data(args: argparse.Namespace):
    from sktuning import tasks

    if args.task and args.train:
        raise ValueError("Give either --task or --train/--validation/--test files, not both.")
    if args.train or args.test:
        return tasks.load_files(args.train or args.test, args.validation, args.test, text_column=args.text_column,
                                text_pair_column=args.text_pair_column, label_column=args.label_column,
                                label_names=args.label_names, task=args.task_type)
    return tasks.load_task(args.task or "rt-polarity")


def _encoded_splits(data, encoder, args: argparse.Namespace) -> dict[str, list[dict]]:
    splits = {}
    for split, limit in (("train", args.max_train_examples), ("validation", args.max_eval_examples), ("test", None)):
        dataset = data.splits[split]
        if limit is not None and limit < len(dataset):
            dataset = dataset.shuffle(seed=args.seed).select(range(limit))
        splits[split] = encoder.encode(dataset, split).to_list()
    return splits


def _load_model(name: str, trust_remote_code: bool = False, device: str = "auto", dtype: str = "float32"):
    import torch

    from sktuning.models import load_backbone

    backbone, tokenizer = load_backbone(name, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code)
    return backbone.to(_device(device)), tokenizer


def _device(device: str) -> str:
    """`auto`: this process's GPU (LOCAL_RANK, as set by the launchers) if there is one, else the CPU."""
    import os

    import torch

    if device == "auto":
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
    return device


def _sharding_plan(args: argparse.Namespace):
    """--shard, or the FSDP / DeepSpeed config of `accelerate launch`, whose checkpointing and bf16 count."""
    import dataclasses
    import os

    from sktuning.sharding import ShardingPlan, plan_from_env

    plan = plan_from_env()
    if plan is None and getattr(args, "sharding_plan", None):  # --resume: the plan the run started with
        plan = ShardingPlan(**args.sharding_plan)
    elif plan is None and args.shard:
        plan = ShardingPlan(args.shard)
        if args.deepspeed_config:
            if args.shard != "zero3":
                raise ValueError("--deepspeed-config goes with --shard zero3.")
            try:
                plan.zero_optimization = json.loads(Path(args.deepspeed_config).read_text())["zero_optimization"]
            except (OSError, ValueError, KeyError) as err:
                raise ValueError(f"--deepspeed-config {args.deepspeed_config}: a JSON file with a "
                                 f"zero_optimization section is needed ({err}).") from None
    if plan is not None:
        args.shard, args.sharding_plan = plan.engine, dataclasses.asdict(plan)  # kept in run.json for --resume
        args.gradient_checkpointing = args.gradient_checkpointing or plan.activation_checkpointing
    precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if precision == "bf16":
        args.bf16 = True
    elif precision == "fp16":
        raise ValueError("fp16 mixed precision is not supported for training (no loss scaling): use bf16.")
    return plan


def _default_pooling(tokenizer) -> str:
    return "mean" if getattr(tokenizer, "cls_token", None) is not None else "last"


def _load_adapter(args: argparse.Namespace):
    from sktuning import SKModel

    from sktuning.model import read_adapter_meta

    meta = read_adapter_meta(args.adapter)
    model_name = args.model or meta.get("training", {}).get("model")
    if not model_name:
        raise ValueError(f"{args.adapter} does not record its backbone; pass --model.")
    backbone, tokenizer = _load_model(model_name, getattr(args, "trust_remote_code", False),
                                      getattr(args, "device", "auto"), getattr(args, "dtype", "float32"))
    return SKModel.from_pretrained(backbone, args.adapter, tokenizer=tokenizer), tokenizer, meta


def _encoder_for(model, tokenizer, task: str, max_length: int):
    from sktuning.encoding import InputEncoder

    return InputEncoder(tokenizer, model.semantic.text_input_ids.tolist(), task, max_length)


def _read_prediction_inputs(args: argparse.Namespace) -> list[dict[str, str]]:
    if args.input and args.texts:
        raise ValueError("Give texts either as arguments or with --input, not both.")
    if args.texts:
        if not all(t.strip() for t in args.texts):
            raise ValueError("An empty text was given to predict; remove it.")
        return [{"text": t} for t in args.texts]
    if not args.input:
        raise ValueError("Nothing to predict: pass texts as arguments or --input FILE.")
    path = Path(args.input)
    if not path.is_file():
        raise ValueError(f"Input file {path} does not exist.")
    if path.suffix == ".txt":
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        rows = [{"text": line} for line in lines if line]
    else:
        from sktuning.tasks import read_table

        rows = read_table(path, args.text_column, args.text_pair_column)
    if not rows:
        raise ValueError(f"{path} holds no inputs.")
    empty = [i + 1 for i, row in enumerate(rows) if not str(row.get("text", "")).strip()]
    if empty:
        raise ValueError(f"{path}: input(s) {empty[:10]} are empty; remove them.")
    return rows


def _environment() -> dict[str, Any]:
    import platform

    import torch
    import transformers

    from sktuning import __version__

    return {"sktuning": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}


def _quiet_libraries() -> None:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import datasets
        import transformers

        transformers.logging.set_verbosity_error()
        datasets.logging.set_verbosity_error()
        datasets.disable_progress_bars()
    except ImportError:
        pass


if __name__ == "__main__":
    sys.exit(main())
