"""Checkpoints of the training loop: safetensors + JSON, no pickle, each written whole before the
`latest` pointer moves to it, so a run killed at any moment resumes from a complete one.

    checkpoints/latest                   the name of the newest complete checkpoint
    checkpoints/step-NNNNNNN/adapter/    the adapter and head (what SKModel.save_pretrained writes)
    checkpoints/step-NNNNNNN/optimizer.safetensors
                                         AdamW's moments, every rank's RNG state, the best adapter so far
    checkpoints/step-NNNNNNN/trainer_state.json
                                         step, history, best score, scheduler, optimiser groups, checksum
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from sktuning.scale import distributed as dist
from sktuning.core.atomic import atomic_directory, atomic_write_text, sha256_of, verify_sha256
from sktuning.core.adapter_format import read_adapter_meta
from sktuning.core.adapter_io import read_tensors

logger = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Everything besides tensors that a resumed run needs (stored as JSON in trainer_state.json)."""

    step: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    # every step's global-batch loss, and the training seconds spent when it was done (curves.png)
    losses: list[float] = field(default_factory=list)
    loss_seconds: list[float] = field(default_factory=list)


def save_checkpoint(trainer) -> None:
    """Write `trainer`'s (a `training.loop.Trainer`) checkpoints/step-N whole, then point `latest` at it, then drop older ones (rank 0 only)."""
    # every rank's generators (dropout draws differ by shard), kept by rank 0 with the rest
    states = dist.all_gather_object(rng_states())
    if dist.is_main():
        _write_checkpoint(trainer, states)
    dist.barrier()


def _write_checkpoint(trainer, rng: list[dict[str, torch.Tensor]]) -> None:
    folder = trainer.output / "checkpoints"
    name = f"step-{trainer.state.step:07d}"
    optimizer = trainer.optimizer.state_dict()
    tensors = {f"optimizer.{pid}.{key}": value for pid, values in optimizer["state"].items()
               for key, value in values.items()}
    for rank, states in enumerate(rng):  # rank 0's as rng.torch; rank r's as rng.torch.rank<r>
        tensors.update({key + (f".rank{rank}" if rank else ""): state for key, state in states.items()})
    tensors.update({f"best.{k}": v for k, v in (trainer.best_tensors or {}).items()})
    with atomic_directory(folder / name) as tmp:
        trainer.model.save_pretrained(tmp / "adapter", trainer.adapter_metadata)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        meta = {"state": asdict(trainer.state), "param_groups": optimizer["param_groups"],
                "scheduler": trainer.scheduler.state_dict(), "args": asdict(trainer.args),
                "optimizer_sha256": sha256_of(tmp / "optimizer.safetensors")}
        (tmp / "trainer_state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    atomic_write_text(folder / "latest", name)
    for old in folder.glob("step-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(trainer) -> None:
    """Put the trainer back where its newest complete checkpoint left it: adapter, optimiser,
    schedule, RNG state, best adapter and history."""
    folder = trainer.output / "checkpoints"
    pointer = folder / "latest"
    if not pointer.is_file():
        raise UsageError(f"Nothing to resume: {pointer} does not exist (the run stopped before its first "
                         "checkpoint); start it again with --overwrite.")
    checkpoint = folder / pointer.read_text(encoding="utf-8").strip()
    for partial in folder.glob(".*.tmp"):  # a checkpoint whose writer was killed never became visible
        shutil.rmtree(partial, ignore_errors=True)
    try:
        meta = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        verify_sha256(checkpoint / "optimizer.safetensors", meta.get("optimizer_sha256"))
        tensors = load_file(str(checkpoint / "optimizer.safetensors"))
        adapter = load_adapter_tensors(checkpoint / "adapter")
    except Exception as err:  # noqa: BLE001 - any unreadable part makes the checkpoint unusable
        raise UsageError(f"Checkpoint {checkpoint} is unreadable ({err}); it may be truncated. "
                         "Start again without --resume.") from None
    model = trainer.model
    model.load_trainable_state_dict(adapter)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    trainer.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
    trainer.best_tensors = best or None
    if best and dist.is_main():  # put back the best/ folder the checkpoint knew, not a killed run's later one
        current = {k: v.clone() for k, v in model.trainable_state_dict().items()}
        model.load_trainable_state_dict(best)
        model.save_pretrained(trainer.output / "best", trainer.adapter_metadata)
        model.load_trainable_state_dict(current)
    trainer.scheduler.load_state_dict(meta["scheduler"])
    suffix = f".rank{trainer.rank}" if trainer.rank and f"rng.torch.rank{trainer.rank}" in tensors else ""
    torch.set_rng_state(tensors["rng.torch" + suffix])
    if "rng.cuda" + suffix in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda" + suffix])
    trainer.state = TrainState(**meta["state"])
    logger.info("resumed from %s at step %d", checkpoint, trainer.state.step)


def rng_states() -> dict[str, torch.Tensor]:
    states = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():  # dropout on a GPU draws from the device's generator
        states["rng.cuda"] = torch.cuda.get_rng_state()
    return states


def load_adapter_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """An adapter's tensors, checked against the checksum saved beside them."""
    return read_tensors(folder, read_adapter_meta(folder))
