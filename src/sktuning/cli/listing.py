"""`sktune tasks` and `sktune models`: what is available by name."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    tasks = sub.add_parser("tasks", help="list the tasks", description="List bundled and hub tasks.")
    tasks.set_defaults(handler=run_tasks)
    models = sub.add_parser("models", help="list the named models", description="List the named offline models.")
    models.set_defaults(handler=run_models)


def run_tasks(args: argparse.Namespace) -> int:
    from sktuning.data.registry import NAMED_TASKS

    print(f"{'task':<16} {'kind':<24} {'source':<8} sizes (train/validation/test)  description")
    for spec in NAMED_TASKS.values():
        sizes = "/".join(f"{spec.sizes[s]:,d}" for s in ("train", "validation", "test")) if spec.sizes else "-"
        print(f"{spec.name:<16} {spec.task:<24} {spec.source:<8} {sizes:<29} {spec.description}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    from sktuning.sharing.zoo import MODELS

    print(f"{'model':<14} {'parameters':<11} description")
    for spec in MODELS.values():
        print(f"{spec.name:<14} {spec.parameters:<11} {spec.description}")
    print("Any Hugging Face id or local folder works too (online, or from a local copy).")
    return 0
