"""`sktune`: train, evaluate and use SK-Tuning adapters from the command line.

    sktune train                          # SmolLM2-135M + rt-polarity + SK-Prefix, test metrics printed
    sktune train --task trec --mode prompt --adapter linear --steps 400 --output runs/trec
    sktune eval --adapter runs/trec/adapter
    sktune predict --adapter runs/trec/adapter "Who wrote Hamlet?" "How far is the Moon?"
    sktune tasks | sktune models
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import timedelta
from typing import Any

from sktuning.cli import bench, evaluate, export, listing, predict, push, serve, train
from sktuning.core.errors import UsageError

COMMANDS = (train, evaluate, predict, export, push, serve, bench, listing)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sktune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
                        format="%(message)s")
    previous = _terminate_like_interrupt()
    finished = False
    try:
        code = args.handler(args) or 0
        finished = True
        return code
    except UsageError as err:  # what the user can fix (a missing extra too); anything else is a bug: traceback
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
        _leave_process_group(finished)


def _leave_process_group(finished: bool) -> None:
    """Destroy the process group (and FSDP's sub-groups) while the interpreter is whole.

    After a run that finished, the ranks first meet at a barrier: rank 0 is still writing the adapter
    when the others return, and a rank that tears gloo down while its peer's connections are live can
    abort at exit ("terminate called without an active exception") after its work is done. After an
    error the peers may never arrive, so then the group is destroyed at once; a peer that fails after
    this rank finished is waited for at most a minute (gloo), then this rank leaves anyway.
    """
    if "torch.distributed" not in sys.modules:  # never imported just to tear down
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if finished:
            try:
                if dist.get_backend() == "gloo":
                    dist.monitored_barrier(timeout=timedelta(seconds=60))
                else:
                    dist.barrier()
            except RuntimeError:  # a peer failed: its launcher reports that; nothing more to wait for
                pass
        dist.destroy_process_group()


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
