"""`sktune train`: train an adapter and head; writes DIR/run.json, DIR/adapter, DIR/metrics.json.

Every option is checked (`RunSpec`) before anything heavy loads; the data are read before the model;
nothing is written until the run is known to start.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import argparse
import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path

from sktuning.cli.options import add_model_and_data, default, positive_float, positive_int
from sktuning.core.config import ADAPTER_KINDS, HEADS, MODES, POOLINGS
from sktuning.training.spec import (DEFAULT_STEPS, REPORT_TO, SHARD_ENGINES, AdapterRecord, RunSpec,
                                    check_label_words_mapping)

logger = logging.getLogger("sktuning")

RUN_FILE = "run.json"
#: options that steer this invocation and are not part of the run's record
_INVOCATION = ("resume", "overwrite", "quiet")


def add_parser(sub) -> None:
    parser = sub.add_parser("train", help="train an adapter and report test metrics",
                            description="Train an SK-Tuning adapter and head; writes DIR/adapter and DIR/metrics.json.",
                            argument_default=argparse.SUPPRESS)
    add_model_and_data(parser)
    group = parser.add_argument_group("method")
    group.add_argument("--mode", choices=MODES, help=f"(default {default('mode')})")
    group.add_argument("--text", help="semantic text (default: the task's own)")
    group.add_argument("--adapter", choices=ADAPTER_KINDS, help=f"(default {default('adapter')})")
    group.add_argument("--rank", type=positive_int, help=f"rank of the lowrank adapter (default {default('rank')})")
    group.add_argument("--pooling", choices=POOLINGS, help="sequence pooling (default: last for decoders, mean for "
                                                           "encoders)")
    group.add_argument("--head", choices=HEADS, help="linear (default), or label-words: class c starts as the "
                                                     "backbone's score of label c's words (its LM head's logit on "
                                                     "a decoder) after the answer template")
    group.add_argument("--label-words", action="append", type=label_words_option, metavar="LABEL=WORD[,WORD...]",
                       help="words of one label, repeatable (default: the task's own, else the label's name)")
    group.add_argument("--label-words-file", metavar="JSON",
                       help='a JSON object of label name -> words, e.g. {"rotten": ["negative"]}; --label-words '
                            "given too take precedence")
    group.add_argument("--answer-template", metavar="TEXT",
                       help="text appended after every input (label-words default: the task's own, else ' Answer:')")
    group = parser.add_argument_group("training")
    length = group.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, help=f"optimiser steps (default {DEFAULT_STEPS})")
    length.add_argument("--epochs", type=positive_float, help="passes over the training set")
    group.add_argument("--batch-size", type=positive_int, help=f"(default {default('batch_size')})")
    group.add_argument("--lr", type=positive_float, help=f"peak learning rate (default {default('lr')})")
    group.add_argument("--weight-decay", type=float, help=f"(default {default('weight_decay')})")
    group.add_argument("--warmup-ratio", type=float, help=f"(default {default('warmup_ratio')})")
    group.add_argument("--eval-every", type=positive_int, help="evaluate on validation every N steps (default 100)")
    group.add_argument("--save-every", type=positive_int, help="checkpoint every N steps (default 100)")
    group.add_argument("--patience", type=positive_int, help="stop after N evaluations without improvement")
    group.add_argument("--group-by-length", action=argparse.BooleanOptionalAction,
                       help="batch rows of similar length together, in a random order of batches (default on: "
                            "less padding, the same data per epoch)")
    group.add_argument("--max-train-examples", type=positive_int, help="use a seeded subset of the training split")
    group.add_argument("--max-eval-examples", type=positive_int, help="use a seeded subset of the validation split")
    group.add_argument("--shots", type=positive_int, metavar="K",
                       help="few-shot: K training and K validation examples per class, drawn per --subset-seed; "
                            "the test split stays whole")
    group.add_argument("--shots-validation", action=argparse.BooleanOptionalAction,
                       help="with --shots: a K-per-class validation set (default on); off: none, no early stopping")
    group.add_argument("--subset-seed", type=int, help="seed of the subsets and shots (default: --seed)")
    group.add_argument("--seed", type=int, help="(default 0)")
    group.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward passes")
    group.add_argument("--threads", type=positive_int, help="torch's CPU threads (default: torch's choice, one per "
                                                            "core)")
    group.add_argument("--gradient-checkpointing", action="store_true",
                       help="recompute the frozen backbone's activations in the backward pass (less memory)")
    group.add_argument("--shard", choices=SHARD_ENGINES,
                       help="shard the frozen backbone over the processes: PyTorch FSDP2 or DeepSpeed ZeRO-3 "
                            "(accelerate launch with an FSDP or DeepSpeed config chooses by itself)")
    group.add_argument("--deepspeed-config", metavar="JSON",
                       help="DeepSpeed config whose zero_optimization section --shard zero3 uses")
    group = parser.add_argument_group("output")
    group.add_argument("--output", help="run folder (default runs/<task>-<mode>-<time>)")
    group.add_argument("--overwrite", action="store_true", help="replace a previous run in --output")
    group.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    group.add_argument("--quiet", action="store_true", help="no progress bar or info logs")
    group.add_argument("--report-to", choices=REPORT_TO, help="also send loss, learning rate, examples per second "
                                                              "and validation metrics to TensorBoard (DIR/tensorboard)"
                                                              " or Weights & Biases (offline, DIR/wandb); default none")
    parser.set_defaults(handler=run)


def label_words_option(text: str) -> tuple[str, list[str]]:
    """LABEL=WORD[,WORD...] -> (label, words)."""
    label, sep, words = text.partition("=")
    words_list = [w.strip() for w in words.split(",")]
    if not sep or not label.strip() or not all(words_list):
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL=WORD[,WORD...] (e.g. fresh=positive,good)")
    return label.strip(), words_list


def spec_from_args(args: argparse.Namespace) -> tuple[RunSpec, set[str]]:
    """The run the options describe (checked), and which options were given."""
    fields = {f.name for f in dataclasses.fields(RunSpec)}
    given = {k: v for k, v in vars(args).items() if k in fields}
    words = label_words_from(getattr(args, "label_words_file", None), given.pop("label_words", None))
    if words is not None:
        given["label_words"] = words
    return RunSpec(**given), set(given)


def label_words_from(path: str | None, options: list[tuple[str, list[str]]] | None) -> dict[str, list[str]] | None:
    """--label-words-file's mapping, with each --label-words LABEL=WORDS over it; None when neither is given."""
    words: dict[str, list[str]] = {}
    if path is not None:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UsageError(f"--label-words-file {path}: not a readable JSON file ({err}).") from None
        words = check_label_words_mapping(data, f"--label-words-file {path}")
    seen: set[str] = set()
    for label, label_words in options or []:
        if label in seen:
            raise UsageError(f"--label-words gives label {label!r} twice; give all its words at once "
                             f"({label}=WORD,WORD).")
        seen.add(label)
        words[label] = label_words
    return words or None


def run(args: argparse.Namespace) -> int:
    spec, given = spec_from_args(args)  # bad options fail here, before torch loads
    return train(spec, given, *(getattr(args, name, False) for name in _INVOCATION))


def train(spec: RunSpec, given: set[str], resume: bool = False, overwrite: bool = False, quiet: bool = False) -> int:
    """`sktune train` for a checked spec: the run pipeline (`sktuning.training.pipeline`), and the run's files."""
    from sktuning.cli.common import environment, model_reference, quiet_libraries

    quiet_libraries()
    from sktuning.scale import distributed as dist
    from sktuning.core.atomic import atomic_write_text, strict_json
    from sktuning.scale.runtime import device_for
    from sktuning.training.pipeline import build_run, check_run, load_run_data

    dist.init_from_env()  # a no-op unless started by torchrun / accelerate launch
    output, replace = prepare_output(spec, resume, overwrite)  # every process checks before any process writes
    if resume:  # the interrupted run's settings, over today's defaults for anything it predates
        ignored = sorted(given - {"output"})
        if ignored:
            logger.warning("--resume continues with the settings in %s; ignoring %s", output / RUN_FILE,
                           ", ".join("--" + k.replace("_", "-") for k in ignored))
        spec = RunSpec.read(output / RUN_FILE).replace(output=str(output))
    # everything that can fail on bad input happens before the first file is written
    data = load_run_data(spec)
    check_run(spec, data)
    spec, plan = with_sharding_plan(spec)
    device = device_for(spec.device)
    held = None

    def make_model(backbone, tokenizer, config):
        """An SKModel, its backbone sharded to `device` under a plan (read whole on the CPU until then)."""
        nonlocal held
        from sktuning.core.model import get_sk_model

        model = get_sk_model(backbone, tokenizer, config)
        if plan:
            from sktuning.scale.sharding import shard_backbone

            held = shard_backbone(model, device, plan)
            logger.info("backbone sharded over %d processes with %s: %s parameters here", dist.world_size(),
                        plan.engine, f"{held:,d}")
        return model

    record = AdapterRecord(model=model_reference(spec.model), task=data.name,
                           task_source="files" if spec.train else "named", text_column=spec.text_column,
                           text_pair_column=spec.text_pair_column, label_column=spec.label_column,
                           quantize=spec.quantize)
    built = build_run(spec, data, make_model, device="cpu" if plan else device, output=str(output),
                      progress=not quiet, record=record)
    model, splits, trainer, record = built.model, built.rows, built.trainer, built.record
    if built.spec.max_length < spec.max_length:  # the text takes positions too
        logger.info("--max-length %d lowered to %d: the backbone reads %d positions and the text (and answer "
                    "template) take %d", spec.max_length, built.spec.max_length,
                    model.input_room + model.reserved_tokens, model.reserved_tokens)
    spec = built.spec
    from sktuning.training.tracking import plot_curves

    dist.barrier()
    if dist.is_main():
        if replace:  # --overwrite: the previous run goes only now that the new one is known to start
            shutil.rmtree(output)
        output.mkdir(parents=True, exist_ok=True)
        if not resume:
            atomic_write_text(output / RUN_FILE, spec.to_json())
    dist.barrier()
    logger.info("%s on %s, SK-%s (%s adapter): %s trainable parameters (%.4f%% of %s)", spec.model, data.name,
                spec.mode.capitalize(), spec.adapter, f"{model.num_trainable_parameters():,d}",
                100 * model.num_trainable_parameters() / model.num_parameters(), f"{model.num_parameters():,d}")
    state = trainer.train(resume=resume)
    scores = trainer.evaluate(splits["test"])  # gathered across processes, each example once
    if not dist.is_main():
        return 0
    result = {"task": data.name, "split": "test", "metrics": scores, "model": spec.model, "mode": spec.mode,
              "adapter": spec.adapter, "seed": spec.seed, "steps": state.step, "best_step": state.best_step,
              "best_validation": state.best_metric, "trainable_parameters": model.num_trainable_parameters(),
              "total_parameters": model.num_parameters(), "train_seconds": round(state.train_seconds, 2),
              "train_examples": len(splits["train"]), "validation_examples": len(splits["validation"]),
              "history": state.history, "losses": state.losses, "loss_seconds": state.loss_seconds,
              "processes": dist.world_size(),
              "sharding": plan.engine if plan else None, "backbone_parameters_per_process": held,
              "environment": environment()}
    model.save_pretrained(output / "adapter", record.to_dict())
    atomic_write_text(output / "metrics.json", strict_json(result, indent=2))
    if state.losses:
        plot_curves(state, data.metrics[0], output / "curves.png")
    print(f"test {data.name}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
          + f"  ({state.step} steps, {state.train_seconds:.0f} s training; adapter in {output / 'adapter'})")
    return 0


def prepare_output(spec: RunSpec, resume: bool, overwrite: bool) -> tuple[Path, bool]:
    """The run folder, and whether a previous run in it is to be replaced (--overwrite)."""
    if resume:
        if not spec.output:
            raise UsageError("--resume needs --output DIR, the folder of the run to continue.")
        output = Path(spec.output)
        if not (output / RUN_FILE).is_file():
            raise UsageError(f"{output} holds no run to resume ({RUN_FILE} is missing); start without --resume.")
        return output, False
    if spec.output:
        output = Path(spec.output)
    else:
        name = spec.task or (Path(spec.train).stem if spec.train else "rt-polarity")
        from sktuning.scale.distributed import broadcast_object

        # one name for every process, even if their clocks read different seconds
        output = Path(broadcast_object(f"runs/{name}-{spec.mode}-{time.strftime('%Y%m%d-%H%M%S')}"))
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise UsageError(f"{output} already holds files of another run; pass --overwrite to replace them, "
                             "--resume to continue it, or choose another --output.")
        return output, True
    return output, False


def with_sharding_plan(spec: RunSpec):
    """--shard, or the FSDP / DeepSpeed config of `accelerate launch`, whose checkpointing and bf16 count.

    Returns the spec with the plan recorded (run.json keeps it for --resume) and the plan (or None)."""
    from sktuning.scale.sharding import ShardingPlan, plan_from_env

    plan = plan_from_env()
    if plan is None and spec.sharding_plan:  # --resume: the plan the run started with
        plan = ShardingPlan(**spec.sharding_plan)
    elif plan is None and spec.shard:
        plan = ShardingPlan(spec.shard)
        if spec.deepspeed_config:
            try:
                plan.zero_optimization = json.loads(Path(spec.deepspeed_config).read_text())["zero_optimization"]
            except (OSError, ValueError, KeyError) as err:
                raise UsageError(f"--deepspeed-config {spec.deepspeed_config}: a JSON file with a "
                                 f"zero_optimization section is needed ({err}).") from None
    if plan is not None:
        spec = spec.replace(shard=plan.engine, sharding_plan=dataclasses.asdict(plan),
                            gradient_checkpointing=spec.gradient_checkpointing or plan.activation_checkpointing)
    precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if precision == "bf16":
        spec = spec.replace(bf16=True)
    elif precision == "fp16":
        raise UsageError("fp16 mixed precision is not supported for training (no loss scaling): use bf16.")
    return spec, plan
