"""`sktune predict`: label new texts with a saved adapter; writes JSON lines, one record per input."""

from __future__ import annotations

from sktuning.core.errors import UsageError

import argparse
import json
import logging
import sys
from pathlib import Path

from sktuning.cli.options import add_device, add_quantize, positive_int

logger = logging.getLogger("sktuning")


def add_parser(sub) -> None:
    parser = sub.add_parser("predict", help="label new texts", description="Predict labels; writes JSONL.")
    parser.add_argument("--adapter", required=True, help="folder written by sktune train (DIR/adapter)")
    parser.add_argument("--model", help="backbone (default: the one the adapter was trained on)")
    add_device(parser)
    add_quantize(parser, for_adapter=True)
    parser.add_argument("--input", help="file of inputs: .txt (one per line), .csv, .tsv or .jsonl")
    parser.add_argument("--text-column", help="(default: the adapter's, else text)")
    parser.add_argument("--text-pair-column", help="(default: the adapter's)")
    parser.add_argument("texts", nargs="*", help="texts to label (instead of --input)")
    parser.add_argument("--output-file", help="JSONL to write (default: standard output)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--no-sort", action="store_true", help="batch in input order instead of by length")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sktuning.cli.common import load_adapter, quiet_libraries
    from sktuning.core.adapter_format import read_adapter_meta
    from sktuning.training.spec import AdapterRecord

    if not (args.texts or args.input):
        raise UsageError("Nothing to predict: pass texts as arguments or --input FILE.")
    record = AdapterRecord.from_meta(read_adapter_meta(args.adapter))
    text_column = args.text_column or record.text_column or "text"
    text_pair_column = args.text_pair_column or record.text_pair_column
    rows = read_inputs(args.texts, args.input, text_column, text_pair_column)  # bad input fails before the model loads
    if text_pair_column and "text_pair" not in rows[0]:
        raise UsageError(f"{args.adapter} was trained on text pairs (columns {text_column!r} and "
                         f"{text_pair_column!r}): give --input a table with both columns.")
    quiet_libraries()
    from sktuning.core.atomic import atomic_write_text
    from sktuning.inference.prediction import predict

    model, tokenizer, _ = load_adapter(args.adapter, args.model, args.trust_remote_code, args.device,
                                       quantize=args.quantize)
    # serving: the adapter's output is a constant
    result = predict(model.merge(), tokenizer, rows, args.batch_size, not args.no_sort, record.max_length)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.records)
    if args.output_file:
        atomic_write_text(args.output_file, text)
    else:
        sys.stdout.write(text)
    logger.info("%d examples in %.2f s (%.1f examples/s)", len(result.records), result.seconds,
                result.examples_per_second)
    return 0


def read_inputs(texts: list[str], input_file: str | None, text_column: str,
                text_pair_column: str | None) -> list[dict[str, str]]:
    """The inputs, from the command line or a file (.txt: one per line; a table: its text column(s))."""
    if input_file and texts:
        raise UsageError("Give texts either as arguments or with --input, not both.")
    if texts:
        if not all(t.strip() for t in texts):
            raise UsageError("An empty text was given to predict; remove it.")
        return [{"text": t} for t in texts]
    if not input_file:
        raise UsageError("Nothing to predict: pass texts as arguments or --input FILE.")
    path = Path(input_file)
    if not path.is_file():
        raise UsageError(f"Input file {path} does not exist.")
    if path.suffix == ".txt":
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        rows = [{"text": line} for line in lines if line]
    else:
        from sktuning.data.tables import read_table

        rows = read_table(path, text_column, text_pair_column)
    if not rows:
        raise UsageError(f"{path} holds no inputs.")
    empty = [i + 1 for i, row in enumerate(rows) if not str(row.get("text", "")).strip()]
    if empty:
        raise UsageError(f"{path}: input(s) {empty[:10]} are empty; remove them.")
    return rows
