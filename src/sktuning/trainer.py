"""The one training loop behind the Python API and `sktune train`.

A plain PyTorch loop rather than HF Trainer: SK-Tuning trains a few hundred thousand parameters on a
frozen backbone, and a loop this small can promise what matters here and be read in one sitting:
- the same seed gives the same adapter bit for bit on CPU, and a resumed run continues the exact
  data order, optimiser, schedule and RNG state of the interrupted one;
- checkpoints are safetensors + JSON (no pickle), each written whole before a pointer moves to it;
- only the adapter and head are ever saved.

AdamW, linear warm-up then linear decay, gradient clipping, evaluation every N steps, early stopping
on the first metric, best adapter kept.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from sktuning import distributed as dist
from sktuning.encoding import InputEncoder
from sktuning.files import atomic_directory, atomic_write_text, sha256_of, verify_sha256
from sktuning.heads import check_labels, counted_targets, task_loss
from sktuning.metrics import compute_metrics
from sktuning.model import WEIGHTS_NAME, SKModel, read_adapter_meta
from sktuning.sharding import reshard

logger = logging.getLogger(__name__)


@dataclass
class TrainingArguments:
    output_dir: str
    steps: int | None = None            # total optimiser steps; or
    epochs: float | None = None         # passes over the training set (used when steps is None)
    batch_size: int = 16
    eval_batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    eval_every: int = 100
    save_every: int = 100
    patience: int | None = None         # evaluations without improvement before stopping
    seed: int = 0
    progress: bool = True
    bf16: bool = False                  # bf16 autocast for the forward passes (the adapter stays fp32)

    def __post_init__(self) -> None:
        if self.steps is None and self.epochs is None:
            raise ValueError("Give the training length: steps or epochs.")
        for name in ("batch_size", "eval_batch_size", "eval_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}.")
        if self.learning_rate <= 0:
            raise ValueError(f"learning rate must be > 0, got {self.learning_rate}.")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 (evaluations without improvement before stopping), got "
                             f"{self.patience}; leave it out to never stop early.")


@dataclass
class TrainState:
    """Everything besides tensors that a resumed run needs (stored as JSON)."""

    step: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0


class Trainer:
    def __init__(self, model: SKModel, encoder: InputEncoder, train_rows: list[dict], eval_rows: list[dict],
                 metrics: list[str], label_names: list[str] | None, args: TrainingArguments,
                 adapter_metadata: dict[str, Any] | None = None):
        self.rank, self.world = dist.rank(), dist.world_size()
        if args.batch_size % self.world:
            raise ValueError(f"--batch-size {args.batch_size} must be a multiple of the {self.world} processes, "
                             "so that every process takes an equal share of each batch.")
        if len(train_rows) < args.batch_size:
            raise ValueError(f"The training set has {len(train_rows)} rows, fewer than one batch of "
                             f"{args.batch_size}; lower --batch-size or add data.")
        self.model, self.encoder, self.args = model, encoder, args
        self.train_rows, self.eval_rows = train_rows, eval_rows
        self.metrics, self.label_names = metrics, label_names
        self.adapter_metadata = adapter_metadata or {}  # saved beside every adapter (model name, ...)
        self.output = Path(args.output_dir)
        self.steps_per_epoch = len(train_rows) // args.batch_size
        self.total_steps = args.steps or max(1, math.ceil(args.epochs * self.steps_per_epoch))
        torch.manual_seed(args.seed)
        self.params = [p for p in model.parameters() if p.requires_grad]
        dist.broadcast_parameters(self.params)
        self.optimizer = torch.optim.AdamW(self.params, lr=args.learning_rate, weight_decay=args.weight_decay)
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, int(args.warmup_ratio * self.total_steps), self.total_steps)
        self.state = TrainState()
        self.best_tensors: dict[str, torch.Tensor] | None = None  # the best adapter so far
        self._order_epoch, self._order = -1, None

    # -- data order ------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> list[int]:
        """The rows of global step `step`: a fixed function of (seed, step), so resuming is exact."""
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._order_epoch:
            gen = torch.Generator().manual_seed(self.args.seed * 100_003 + epoch)
            self._order, self._order_epoch = torch.randperm(len(self.train_rows), generator=gen).tolist(), epoch
        size = self.args.batch_size
        return self._order[index * size:(index + 1) * size]

    # -- training --------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> TrainState:
        if resume:
            self.load_checkpoint()
        model, args, state = self.model, self.args, self.state
        model.train()
        # an interrupted run that had already decided to stop early stays stopped
        stopped_early = args.patience is not None and state.evals_without_improvement >= args.patience
        bar = tqdm(total=self.total_steps, initial=state.step, desc="training",
                   disable=not (args.progress and dist.is_main()), dynamic_ncols=True)
        running, seen, started = None, 0, time.perf_counter()
        last_time = started
        while state.step < self.total_steps and not stopped_early:
            shard = self.batch_indices(state.step)[self.rank::self.world]  # this process's share
            batch = self.encoder.collate([self.train_rows[i] for i in shard])
            batch.pop("word_ids", None)
            with autocast(model, args.bf16):
                loss = self._loss(model, _to_device(batch, model))
            loss.backward()
            dist.average_gradients(self.params)
            torch.nn.utils.clip_grad_norm_(self.params, args.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            state.step += 1
            seen += len(batch["input_ids"]) * self.world
            # the global batch's loss (ranks' scaled shard losses average to it), the same on every rank
            value = (dist.all_reduce_sum(loss.detach()) / self.world).item() if self.world > 1 else loss.item()
            running = value if running is None else 0.9 * running + 0.1 * value
            now = time.perf_counter()
            bar.set_postfix(loss=f"{running:.4f}", ex_per_s=f"{seen / (now - started):.1f}")
            bar.update(1)
            state.train_seconds += now - last_time
            last_time = now
            stop = False
            if state.step % args.eval_every == 0 or state.step == self.total_steps:
                stop = self._evaluate_and_keep_best(running)
                last_time = time.perf_counter()  # evaluation is not training time
            if state.step % args.save_every == 0 or state.step == self.total_steps or stop:
                self.save_checkpoint()
                last_time = time.perf_counter()
            if stop:
                logger.info("early stopping at step %d: no improvement in %d evaluations", state.step,
                            args.patience)
                break
        bar.close()
        self._restore_best()
        return state

    def _loss(self, model: SKModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """This shard's loss, scaled so that the average over ranks is the loss of the global batch.

        Sequence-level shards are equal, so their means average to the global mean. Token-level shards
        hold different numbers of tokens (or none): each contributes its sum over the global count.
        """
        config = model.sk_config
        if self.world == 1 or config.task not in ("token-classification", "causal-lm"):
            return model(**batch).loss
        labels = batch.pop("labels")
        check_labels(labels, config, *labels.shape[:2])
        total = task_loss(model(**batch).logits, labels, config, reduction="sum")
        count = dist.all_reduce_sum(counted_targets(labels, config).float())
        return total * self.world / count.clamp(min=1)

    def _evaluate_and_keep_best(self, running_loss: float | None) -> bool:
        state = self.state
        scores = self.evaluate(self.eval_rows) if self.eval_rows else {}
        state.history.append({"step": state.step, "train_loss": running_loss, "validation": scores,
                              "train_seconds": round(state.train_seconds, 3)})
        if not scores:
            return False
        main = scores[self.metrics[0]]
        if main != main:  # NaN (e.g. a correlation of constant predictions) never counts as the best
            main = float("-inf")
        if dist.is_main():
            tqdm.write(f"step {state.step}: validation " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        if state.best_metric is None or main > state.best_metric:
            state.best_metric, state.best_step, state.evals_without_improvement = main, state.step, 0
            self.best_tensors = {k: v.detach().clone() for k, v in self.model.trainable_state_dict().items()}
            if dist.is_main():
                self.model.save_pretrained(self.output / "best", self.adapter_metadata)
            dist.barrier()
        else:
            state.evals_without_improvement += 1
        return self.args.patience is not None and state.evals_without_improvement >= self.args.patience

    def _restore_best(self) -> None:
        """The best adapter, from memory: `best/` on disk may hold a later, killed run's choice."""
        if self.best_tensors is not None:
            self.model.load_trainable_state_dict(self.best_tensors)

    # -- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, rows: list[dict]) -> tuple[list, list, list]:
        """Predictions, references and probabilities (word-level for token tasks)."""
        return predict_rows(self.model, self.encoder, rows, self.args.eval_batch_size, bf16=self.args.bf16)

    def evaluate(self, rows: list[dict]) -> dict[str, float]:
        predictions, references, _ = self.predict(rows)
        return compute_metrics(self.metrics, predictions, references, self.label_names)

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write checkpoints/step-N whole, then point `latest` at it, then drop older ones (rank 0 only)."""
        # every rank's generators (dropout draws differ by shard), kept by rank 0 with the rest
        states = dist.all_gather_object(_rng_states())
        if dist.is_main():
            self._write_checkpoint(states)
        dist.barrier()

    def _write_checkpoint(self, rng_states: list[dict[str, torch.Tensor]]) -> None:
        folder = self.output / "checkpoints"
        name = f"step-{self.state.step:07d}"
        optimizer = self.optimizer.state_dict()
        tensors = {f"optimizer.{pid}.{key}": value for pid, values in optimizer["state"].items()
                   for key, value in values.items()}
        for rank, states in enumerate(rng_states):  # rank 0's as rng.torch; rank r's as rng.torch.rank<r>
            tensors.update({name + (f".rank{rank}" if rank else ""): state for name, state in states.items()})
        tensors.update({f"best.{k}": v for k, v in (self.best_tensors or {}).items()})
        with atomic_directory(folder / name) as tmp:
            self.model.save_pretrained(tmp / "adapter", self.adapter_metadata)
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            meta = {"state": asdict(self.state), "param_groups": optimizer["param_groups"],
                    "scheduler": self.scheduler.state_dict(), "args": asdict(self.args),
                    "optimizer_sha256": sha256_of(tmp / "optimizer.safetensors")}
            (tmp / "trainer_state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        atomic_write_text(folder / "latest", name)
        for old in folder.glob("step-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self) -> None:
        folder = self.output / "checkpoints"
        pointer = folder / "latest"
        if not pointer.is_file():
            raise ValueError(f"Nothing to resume: {pointer} does not exist (the run stopped before its first "
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
            raise ValueError(f"Checkpoint {checkpoint} is unreadable ({err}); it may be truncated. "
                             "Start again without --resume.") from None
        self.model.load_trainable_state_dict(adapter)
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = value
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        self.best_tensors = best or None
        if best and dist.is_main():  # put back the best/ folder the checkpoint knew, not a killed run's later one
            current = {k: v.clone() for k, v in self.model.trainable_state_dict().items()}
            self.model.load_trainable_state_dict(best)
            self.model.save_pretrained(self.output / "best", self.adapter_metadata)
            self.model.load_trainable_state_dict(current)
        self.scheduler.load_state_dict(meta["scheduler"])
        suffix = f".rank{self.rank}" if self.rank and f"rng.torch.rank{self.rank}" in tensors else ""
        torch.set_rng_state(tensors["rng.torch" + suffix])
        if "rng.cuda" + suffix in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda" + suffix])
        self.state = TrainState(**meta["state"])
        logger.info("resumed from %s at step %d", checkpoint, self.state.step)


def _rng_states() -> dict[str, torch.Tensor]:
    states = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():  # dropout on a GPU draws from the device's generator
        states["rng.cuda"] = torch.cuda.get_rng_state()
    return states


def autocast(model: torch.nn.Module, enabled: bool):
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=enabled)


def _to_device(batch: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}


def load_adapter_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """An adapter's tensors, checked against the checksum saved beside them."""
    meta = read_adapter_meta(folder)
    verify_sha256(folder / WEIGHTS_NAME, meta.get("weights_sha256"))
    return load_file(str(folder / WEIGHTS_NAME))


@torch.no_grad()
def predict_rows(model: torch.nn.Module, encoder: InputEncoder, rows: list[dict], batch_size: int = 64,
                 sort_by_length: bool = True, bf16: bool = False, config=None):
    """(predictions, references, probabilities) for encoded rows, in the rows' order.

    Batches are padded dynamically; sorting by length first keeps padding (wasted work) small.
    `model` is an SKModel, or any module returning `(loss, logits)` whose SKTuningConfig is `config`.
    """
    config = config or model.sk_config
    was_training = model.training
    model.eval()
    order = list(range(len(rows)))
    if sort_by_length:
        order.sort(key=lambda i: len(rows[i]["input_ids"]))
    order = order[dist.rank()::dist.world_size()]  # under torchrun each process predicts its share
    predictions: list = [None] * len(rows)
    references: list = [None] * len(rows)
    probabilities: list = [None] * len(rows)
    task = config.task
    # every rank runs the same number of forwards: on a sharded backbone each forward is a collective
    rounds = math.ceil(math.ceil(len(rows) / dist.world_size()) / batch_size)
    for start in range(0, rounds * batch_size, batch_size):
        chunk = order[start:start + batch_size]
        if not chunk:  # this rank's share ran out one batch early: an idle forward keeps the ranks in step
            idle = encoder.collate(rows[:1])
            model(**_to_device({k: v for k, v in idle.items() if k not in ("word_ids", "labels")}, model))
            continue
        batch = encoder.collate([rows[i] for i in chunk])
        word_ids = batch.pop("word_ids", None)
        labels = batch.pop("labels", None)
        with autocast(model, bf16):
            out = model(**_to_device(batch, model))
            logits = (out.logits if hasattr(out, "logits") else out[1]).float().cpu()
        for j, i in enumerate(chunk):
            if task == "token-classification":
                keep = word_ids[j] >= 0
                probabilities[i] = logits[j][keep].softmax(-1).tolist()
                predictions[i] = logits[j][keep].argmax(-1).tolist()
                references[i] = labels[j][keep].tolist() if labels is not None else None
            elif task == "regression":
                predictions[i] = logits[j].squeeze(-1).tolist()
                references[i] = labels[j].tolist() if labels is not None else None
            elif config.multi_label:
                probabilities[i] = logits[j].sigmoid().tolist()
                predictions[i] = (logits[j] > 0).long().tolist()
                references[i] = labels[j].tolist() if labels is not None else None
            else:
                probabilities[i] = logits[j].softmax(-1).tolist()
                predictions[i] = int(logits[j].argmax())
                references[i] = int(labels[j]) if labels is not None else None
    model.train(was_training)
    if dist.world_size() > 1:
        reshard(model)  # FSDP without resharding after forward keeps what a no-grad forward gathered
        mine = sorted(order)
        predictions, references, probabilities = (
            dist.gather_in_order([values[i] for i in mine], mine, len(rows))
            for values in (predictions, references, probabilities))
    return predictions, references, probabilities
