"""`sktune eval`: score a saved adapter on a split of a named task, or on a file, read the way the adapter
was trained (its label ids, task, columns and input length)."""

from __future__ import annotations

from sktuning.core.errors import UsageError

import argparse
from pathlib import Path

from sktuning.cli.options import add_model_and_data, positive_int
from sktuning.core.tasks import task_named, task_of


def add_parser(sub) -> None:
    parser = sub.add_parser("eval", help="evaluate a trained adapter, or score a task zero-shot",
                            description="Evaluate an adapter on a split, or (--zero-shot) the untrained "
                                        "label-word model of a task.")
    parser.add_argument("--adapter", help="folder written by sktune train (DIR/adapter)")
    parser.add_argument("--zero-shot", action="store_true",
                        help="no adapter: score the task with the untrained label-word model (the backbone's own "
                             "logits of each label's words after the answer template)")
    parser.add_argument("--calibrate", action="store_true",
                        help="with --zero-shot: shift the label scores so that content-free inputs ('N/A', "
                             "'[MASK]') score every label alike")
    from sktuning.cli.train import label_words_option

    zero = parser.add_argument_group("zero-shot (default: the task's own text, label words and answer template)")
    zero.add_argument("--text", help="semantic text")
    zero.add_argument("--label-words", action="append", type=label_words_option, metavar="LABEL=WORD[,WORD...]",
                      help="words of one label, repeatable")
    zero.add_argument("--label-words-file", metavar="JSON", help="a JSON object of label name -> words")
    zero.add_argument("--answer-template", metavar="TEXT", help="text appended after every input")
    add_model_and_data(parser, for_adapter=True)
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"],
                        help="split of a named task (default test); a file given is evaluated whole")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--output-file", help="metrics JSON (default: beside the adapter)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sktuning.cli.common import environment, load_adapter, quiet_libraries
    from sktuning.data.registry import load_data
    from sktuning.core.config import SKTuningConfig
    from sktuning.core.adapter_format import read_adapter_meta
    from sktuning.training.spec import AdapterRecord

    given = [f"--{k.replace('_', '-')}" for k in ("text", "label_words", "label_words_file", "answer_template")
             if getattr(args, k) is not None]
    if given and not args.zero_shot:
        raise UsageError(f"{', '.join(given)} go with --zero-shot (an adapter keeps its own).")
    if args.calibrate and not args.zero_shot:
        raise UsageError("--calibrate goes with --zero-shot (a trained adapter's head is already fitted).")
    if args.zero_shot:
        if args.adapter:
            raise UsageError("--zero-shot scores the untrained model: leave --adapter out, or drop --zero-shot "
                             "to evaluate the adapter.")
        return run_zero_shot(args)
    if not args.adapter:
        raise UsageError("Give --adapter DIR (a trained adapter), or --zero-shot to score the untrained "
                         "label-word model.")
    meta = read_adapter_meta(args.adapter)  # bad options fail before the model loads
    config, record = SKTuningConfig.from_dict(meta["config"]), AdapterRecord.from_meta(meta)
    files = one_file(args)
    task = args.task
    if not (task or files):
        task = record.task if record.task_source == "named" else None
        if task is None:
            raise UsageError(f"{args.adapter} was trained on files: pass --test FILE (or --task NAME).")
    quiet_libraries()
    file = files[0] if files else None  # a file is the split: read whole, nothing carved off it
    data = load_data(task, file, file, file, text_column=args.text_column or record.text_column or "text",
                     text_pair_column=args.text_pair_column or record.text_pair_column,
                     label_column=args.label_column or record.label_column or "label",
                     label_names=args.label_names or config.label_names, task_type=args.task_type or config.task)
    if data.task != config.task or (config.label_names and data.label_names != config.label_names):
        raise UsageError(f"The adapter predicts {config.task} over {config.label_names or config.num_labels} but "
                         f"{data.name} is {data.task} over {data.label_names}; evaluate it on its own task.")
    from sktuning.core.atomic import atomic_write_text, strict_json

    model, tokenizer, _ = load_adapter(args.adapter, args.model, args.trust_remote_code, args.device, args.dtype,
                                       args.quantize)
    scores, predictions, references, rows = score(model, tokenizer, data, args, args.max_length or record.max_length)
    result = {"task": data.name, "split": args.split, "metrics": scores, "adapter": str(args.adapter),
              "examples": len(rows), "environment": environment()}
    target = (Path(args.output_file) if args.output_file
              else Path(args.adapter).parent / f"eval-{data.name}-{args.split}.json")
    if task_of(config).one_class_per_input and data.label_names:
        from sktuning.training.tracking import plot_confusion

        result["confusion_matrix"] = str(plot_confusion(predictions, references, data.label_names,
                                                        target.with_suffix(".confusion.png")))
    atomic_write_text(target, strict_json(result, indent=2))
    print(f"{args.split} {data.name}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
          + f"  (written to {target})")
    return 0


def run_zero_shot(args: argparse.Namespace) -> int:
    """`sktune eval --zero-shot`: the task's label words and template, SK-Prefix at the identity."""
    from sktuning.cli.common import environment, load_model, quiet_libraries
    from sktuning.core.config import task_config
    from sktuning.data.registry import load_data

    files = one_file(args)
    quiet_libraries()
    file = files[0] if files else None
    data = load_data(None if file else (args.task or "rt-polarity"), file, file, file,
                     text_column=args.text_column or "text", text_pair_column=args.text_pair_column,
                     label_column=args.label_column or "label", label_names=args.label_names,
                     task_type=args.task_type)
    from sktuning.cli.train import label_words_from

    words = label_words_from(args.label_words_file, args.label_words)
    choices = dict(text=args.text, head="label-words", label_words=words, answer_template=args.answer_template)
    task_config(data, None, **choices)  # a task or words the head cannot take fail before the model loads
    from sktuning.core.atomic import atomic_write_text, strict_json
    from sktuning.inference.zero_shot import zero_shot_model

    name = args.model or "smollm2-135m"
    backbone, tokenizer = load_model(name, args.trust_remote_code, args.device, args.dtype,
                                     None if args.quantize == "none" else args.quantize, lm_head=True)
    config = task_config(data, tokenizer, **choices)
    model = zero_shot_model(backbone, tokenizer, config, calibrate=args.calibrate)
    scores, _, _, rows = score(model, tokenizer, data, args, args.max_length or 128)
    result = {"task": data.name, "split": args.split, "metrics": scores, "zero_shot": True,
              "calibrated": args.calibrate, "model": name, "text": config.text, "label_words": config.label_words,
              "answer_template": config.answer_template, "examples": len(rows), "environment": environment()}
    if args.output_file:
        atomic_write_text(Path(args.output_file), strict_json(result, indent=2))
    print(f"{args.split} {data.name}, zero-shot{' (calibrated)' if args.calibrate else ''}: "
          + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
          + (f"  (written to {args.output_file})" if args.output_file else ""))
    return 0


def one_file(args: argparse.Namespace) -> list[str]:
    """The file given (a file is the split, read whole), or none; more than one is refused."""
    files = list(dict.fromkeys(f for f in (args.test, args.validation, args.train) if f))
    if len(files) > 1:
        raise UsageError("eval scores one file: give it with --test FILE.")
    return files


def score(model, tokenizer, data, args: argparse.Namespace, max_length: int):
    """(metrics, predictions, references, encoded rows) of `args.split`, scored merged and length-sorted."""
    from sktuning.data.encoding import InputEncoder
    from sktuning.core.metrics import compute_metrics
    from sktuning.inference.prediction import predict_rows

    encoder = InputEncoder.for_model(model, tokenizer, max_length, task_named(data.task))
    rows = encoder.encode(data.splits[args.split], args.split)
    predictions, references, _ = predict_rows(model.merge(), encoder, rows, args.batch_size)
    return compute_metrics(data.metrics, predictions, references, data.label_names), predictions, references, rows
