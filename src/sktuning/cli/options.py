"""Options several commands share, and the argument types that refuse bad values at parse time.

`sktune train` parses with no defaults of its own (`argparse.SUPPRESS`): what was given builds a
`RunSpec`, whose fields hold the defaults, so they live in one place and `--resume` knows exactly
which options the user passed.
"""

from __future__ import annotations

import argparse

from sktuning.training.spec import DTYPES, FILE_TASK_TYPES, QUANTIZE, RunSpec


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def default(name: str) -> object:
    """A training option's default: the RunSpec field's."""
    return RunSpec.__dataclass_fields__[name].default


def add_model_and_data(parser: argparse.ArgumentParser, for_adapter: bool = False) -> None:
    """--model, the data options and the device. `for_adapter` (eval): defaults come from the adapter."""
    group = parser.add_argument_group("model and data")
    group.add_argument("--model", help="named model (sktune models), Hugging Face id or local folder"
                       + (" (default: the adapter's)" if for_adapter else f" (default {default('model')})"))
    group.add_argument("--task", help="named task (sktune tasks); default rt-polarity when no files are given")
    group.add_argument("--train", help="training file: .csv, .tsv, .jsonl or CoNLL")
    group.add_argument("--validation", help="validation file (default: 10%% of --train)")
    group.add_argument("--test", help="test file")
    adapter_default = "(default: the adapter's)"
    group.add_argument("--text-column", help=adapter_default if for_adapter else "(default text)")
    group.add_argument("--text-pair-column", help=adapter_default if for_adapter else None)
    group.add_argument("--label-column", help=adapter_default if for_adapter else "(default label)")
    group.add_argument("--label-names", nargs="+", help="labels in id order (default: sorted labels of --train)")
    group.add_argument("--task-type", choices=FILE_TASK_TYPES,
                       help="for files: what the labels are (default: guessed from the file)")
    group.add_argument("--max-length", type=positive_int,
                       help="input tokens kept per example (default: " + ("the adapter's)" if for_adapter else
                                                                           f"{default('max_length')})"))
    add_device(group)
    group.add_argument("--dtype", choices=DTYPES, help="precision of the frozen backbone's weights (default float32)")
    add_quantize(group, for_adapter)


def add_quantize(group, for_adapter: bool = False) -> None:
    choices = QUANTIZE + ("none",) if for_adapter else QUANTIZE
    group.add_argument("--quantize", choices=choices,
                       help="hold the frozen backbone in 8 or 4 bits with bitsandbytes (the quantize extra)"
                       + ("; default: as the adapter was trained, none for full weights" if for_adapter else ""))


def add_device(group) -> None:
    group.add_argument("--trust-remote-code", action="store_true",
                       help="allow a Hub model to run its own code (off: loading never executes code)")
    group.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: this process's GPU if any)")
