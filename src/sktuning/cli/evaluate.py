"""`sktune eval`: score a saved adapter on a split of a named task, or on a file, read the way the adapter
was trained (its label ids, task, columns and input length)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sktuning.cli.options import add_model_and_data, positive_int


def add_parser(sub) -> None:
    parser = sub.add_parser("eval", help="evaluate a trained adapter", description="Evaluate an adapter on a split.")
    parser.add_argument("--adapter", required=True, help="folder written by sktune train (DIR/adapter)")
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
    from sktuning.config import SKTuningConfig
    from sktuning.model import read_adapter_meta
    from sktuning.training.spec import AdapterRecord

    meta = read_adapter_meta(args.adapter)  # bad options fail before the model loads
    config, record = SKTuningConfig.from_dict(meta["config"]), AdapterRecord.from_meta(meta)
    files = list(dict.fromkeys(f for f in (args.test, args.validation, args.train) if f))
    if len(files) > 1:
        raise ValueError("eval scores one file: give it with --test FILE.")
    task = args.task
    if not (task or files):
        task = record.task if record.task_source == "named" else None
        if task is None:
            raise ValueError(f"{args.adapter} was trained on files: pass --test FILE (or --task NAME).")
    quiet_libraries()
    file = files[0] if files else None  # a file is the split: read whole, nothing carved off it
    data = load_data(task, file, file, file, text_column=args.text_column or record.text_column or "text",
                     text_pair_column=args.text_pair_column or record.text_pair_column,
                     label_column=args.label_column or record.label_column or "label",
                     label_names=args.label_names or config.label_names, task_type=args.task_type or config.task)
    if data.task != config.task or (config.label_names and data.label_names != config.label_names):
        raise ValueError(f"The adapter predicts {config.task} over {config.label_names or config.num_labels} but "
                         f"{data.name} is {data.task} over {data.label_names}; evaluate it on its own task.")
    from sktuning.atomic import atomic_write_text, strict_json
    from sktuning.data.encoding import InputEncoder
    from sktuning.metrics import compute_metrics
    from sktuning.prediction import predict_rows

    model, tokenizer, _ = load_adapter(args.adapter, args.model, args.trust_remote_code, args.device, args.dtype,
                                       args.quantize)
    encoder = InputEncoder.for_model(model, tokenizer, args.max_length or record.max_length, data.task)
    rows = encoder.encode(data.splits[args.split], args.split)
    predictions, references, _ = predict_rows(model.merge(), encoder, rows, args.batch_size)
    scores = compute_metrics(data.metrics, predictions, references, data.label_names)
    result = {"task": data.name, "split": args.split, "metrics": scores, "adapter": str(args.adapter),
              "examples": len(rows), "environment": environment()}
    target = (Path(args.output_file) if args.output_file
              else Path(args.adapter).parent / f"eval-{data.name}-{args.split}.json")
    if config.task == "sequence-classification" and not config.multi_label and data.label_names:
        from sktuning.training.tracking import plot_confusion

        result["confusion_matrix"] = str(plot_confusion(predictions, references, data.label_names,
                                                        target.with_suffix(".confusion.png")))
    atomic_write_text(target, strict_json(result, indent=2))
    print(f"{args.split} {data.name}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
          + f"  (written to {target})")
    return 0
