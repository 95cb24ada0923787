"""The one training loop: behind the Python API, `sktune train` and every run of `sktune bench`.

A plain PyTorch loop rather than HF Trainer: SK-Tuning trains a few hundred thousand parameters on a
frozen backbone, and a loop this small can promise what matters here and be read in one sitting:
- the same seed gives the same adapter bit for bit on CPU, and a resumed run continues the exact
  data order, optimiser, schedule and RNG state of the interrupted one (`training.checkpoints`);
- only the adapter and head are ever saved.

AdamW, linear warm-up then linear decay, gradient clipping, evaluation every N steps, early stopping
on the first metric, best adapter kept. The model is an `SKModel`, or any module with the same small
interface (`sk_config`, an output with `loss` and `logits`, `trainable_state_dict` /
`load_trainable_state_dict`): the benchmark's baselines train in this loop too.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from sktuning.scale import distributed as dist
from sktuning.data.encoding import InputEncoder
from sktuning.core.tasks import task_of
from sktuning.core.metrics import compute_metrics
from sktuning.training.tracking import REPORT_TO, make_tracker
from sktuning.inference.prediction import predict_rows
from sktuning.scale.runtime import autocast, to_device
from sktuning.training.checkpoints import TrainState, load_checkpoint, save_checkpoint
from sktuning.training.spec import DATA_ORDERS

logger = logging.getLogger(__name__)

#: batches per length-grouping window: rows of this many consecutive batches are sorted by length
#: together, so each batch holds rows of similar length (little padding) while the order stays random
GROUP_WINDOW = 50


@dataclass
class TrainingArguments:
    output_dir: str | None              # checkpoints and best/ go here; None: nothing is written
    steps: int | None = None            # total optimiser steps; or
    epochs: float | None = None         # passes over the training set (used when steps is None)
    batch_size: int = 16
    eval_batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0           # AdamW's decoupled decay (the benchmark uses torch's default, 0.01)
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    eval_every: int = 100
    save_every: int = 100
    patience: int | None = None         # evaluations without improvement before stopping
    seed: int = 0
    progress: bool = True
    bf16: bool = False                  # bf16 autocast for the forward passes (the adapter stays fp32)
    # "epoch": each epoch a fresh permutation seeded by (seed, epoch), the last partial batch dropped;
    # "stream": one generator seeded by `seed` draws permutations back to back and batches run on across
    # their ends (the order of the benchmark's runs)
    data_order: str = "epoch"
    # length-grouped batches on top of that order: each window of GROUP_WINDOW batches is sorted by
    # length, cut into batches, and the batches shuffled (seeded by (seed, window)); padding, which is
    # wasted work, falls from about 1.8x the real tokens to about 1.0x on short texts
    group_by_length: bool = True
    # seed torch's global RNG with `seed` when the trainer is built; the benchmark seeds before building
    # the model instead (its initial values come from the seed) and leaves the RNG alone from then on
    seed_at_start: bool = True
    # where the loop's numbers go as it runs: "none", "tensorboard" or "wandb" (training.tracking)
    report_to: str = "none"

    def __post_init__(self) -> None:
        if self.steps is None and self.epochs is None:
            raise UsageError("Give the training length: steps or epochs.")
        for name in ("batch_size", "eval_batch_size", "eval_every", "save_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.steps is not None and self.steps < 1:
            raise UsageError(f"steps must be >= 1, got {self.steps}.")
        if self.epochs is not None and self.steps is None and not self.epochs > 0:
            raise UsageError(f"epochs must be > 0, got {self.epochs}.")
        if self.learning_rate <= 0:
            raise UsageError(f"learning rate must be > 0, got {self.learning_rate}.")
        if self.patience is not None and self.patience < 1:
            raise UsageError(f"patience must be >= 1 (evaluations without improvement before stopping), got "
                             f"{self.patience}; leave it out to never stop early.")
        if self.report_to not in REPORT_TO:
            raise UsageError(f"Unknown report_to {self.report_to!r}: choose one of {', '.join(REPORT_TO)}.")
        if self.data_order not in DATA_ORDERS:
            raise UsageError(f"Unknown data_order {self.data_order!r}: choose {' or '.join(map(repr, DATA_ORDERS))}.")


class Trainer:
    def __init__(self, model: torch.nn.Module, encoder: InputEncoder, train_rows: list[dict],
                 eval_rows: list[dict], metrics: list[str], label_names: list[str] | None,
                 args: TrainingArguments, adapter_metadata: dict[str, Any] | None = None):
        self.rank, self.world = dist.rank(), dist.world_size()
        if args.batch_size % self.world:
            raise UsageError(f"--batch-size {args.batch_size} must be a multiple of the {self.world} processes, "
                             "so that every process takes an equal share of each batch.")
        if len(train_rows) < args.batch_size:
            raise UsageError(f"The training set has {len(train_rows)} rows, fewer than one batch of "
                             f"{args.batch_size}; lower --batch-size or add data.")
        self.model, self.encoder, self.args = model, encoder, args
        self.train_rows, self.eval_rows = train_rows, eval_rows
        self.metrics, self.label_names = metrics, label_names
        self.adapter_metadata = adapter_metadata or {}  # saved beside every adapter (model name, ...)
        self.output = Path(args.output_dir) if args.output_dir is not None else None
        self.steps_per_epoch = len(train_rows) // args.batch_size
        self.total_steps = args.steps or max(1, math.ceil(args.epochs * self.steps_per_epoch))
        if args.seed_at_start:
            torch.manual_seed(args.seed)
        self.params = [p for p in model.parameters() if p.requires_grad]
        dist.broadcast_parameters(self.params)
        self.optimizer = torch.optim.AdamW(self.params, lr=args.learning_rate, weight_decay=args.weight_decay)
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, int(args.warmup_ratio * self.total_steps), self.total_steps)
        self.state = TrainState()
        self.tracker = None
        self.best_tensors: dict[str, torch.Tensor] | None = None  # the best adapter so far
        self.step_seconds: list[float] = []  # forward, backward and update of each step run here
        self._order_epoch, self._order = -1, None
        self._stream: list[int] = []
        self._stream_generator = torch.Generator().manual_seed(args.seed)
        self._grouped_window, self._grouped = -1, []
        # called with the step number after each step's evaluation and checkpoint (the benchmark scores its
        # test split at pre-registered steps here); its time does not count as training time
        self.after_step: Callable[[int], None] | None = None

    # -- data order ------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> list[int]:
        """The rows of global step `step`: a fixed function of (seed, step), so resuming is exact."""
        if not self.args.group_by_length:
            return self._base_indices(step)
        first, last = self._window(step)
        if self._grouped_window != first:
            rows = [i for s in range(first, last) for i in self._base_indices(s)]
            rows.sort(key=lambda i: len(self.train_rows[i]["input_ids"]))  # stable: ties keep the random order
            size = self.args.batch_size
            batches = [rows[k:k + size] for k in range(0, len(rows), size)]
            gen = torch.Generator().manual_seed(self.args.seed * 1_000_003 + 500_009 + first)
            self._grouped = [batches[k] for k in torch.randperm(len(batches), generator=gen).tolist()]
            self._grouped_window = first
        return self._grouped[step - first]

    def _window(self, step: int) -> tuple[int, int]:
        """The steps [first, last) whose rows are grouped together; windows never cross an epoch's end."""
        if self.args.data_order == "stream":
            first = step - step % GROUP_WINDOW
            return first, first + GROUP_WINDOW
        epoch_start = step - step % self.steps_per_epoch
        first = epoch_start + (step - epoch_start) // GROUP_WINDOW * GROUP_WINDOW
        return first, min(first + GROUP_WINDOW, epoch_start + self.steps_per_epoch)

    def _base_indices(self, step: int) -> list[int]:
        size = self.args.batch_size
        if self.args.data_order == "stream":
            while len(self._stream) < (step + 1) * size:
                self._stream += torch.randperm(len(self.train_rows), generator=self._stream_generator).tolist()
            return self._stream[step * size:(step + 1) * size]
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._order_epoch:
            gen = torch.Generator().manual_seed(self.args.seed * 100_003 + epoch)
            self._order, self._order_epoch = torch.randperm(len(self.train_rows), generator=gen).tolist(), epoch
        return self._order[index * size:(index + 1) * size]

    # -- training --------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> TrainState:
        if resume:
            if self.output is None:
                raise UsageError("Resuming needs the run's output_dir, where its checkpoints are.")
            self.load_checkpoint()
        args, state = self.args, self.state
        self.model.train()
        bar = tqdm(total=self.total_steps, initial=state.step, desc="training",
                   disable=not (args.progress and dist.is_main()), dynamic_ncols=True)
        name = self.output.name if self.output is not None else "sktuning"
        self.tracker = make_tracker(args.report_to, self.output, name, {"args": vars(args), **self.adapter_metadata},
                                    state.step) if dist.is_main() else None
        try:
            self._steps(bar)
        finally:
            bar.close()
            if self.tracker is not None:
                self.tracker.close()
        self._restore_best()
        return state

    def _steps(self, bar) -> None:
        model, args, state = self.model, self.args, self.state
        running, seen, started = None, 0, time.perf_counter()
        last_time = started
        # an interrupted run that had already decided to stop early stays stopped
        stopped_early = args.patience is not None and state.evals_without_improvement >= args.patience
        while state.step < self.total_steps and not stopped_early:
            shard = self.batch_indices(state.step)[self.rank::self.world]  # this process's share
            batch = self.encoder.collate([self.train_rows[i] for i in shard])
            batch.pop("word_ids", None)
            step_started = time.perf_counter()
            with autocast(model, args.bf16):
                loss = self._loss(model, to_device(batch, model))
            loss.backward()
            dist.average_gradients(self.params)
            torch.nn.utils.clip_grad_norm_(self.params, args.max_grad_norm)
            rate = self.scheduler.get_last_lr()[0]  # the rate this step uses
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step_seconds.append(time.perf_counter() - step_started)
            state.step += 1
            seen += len(batch["input_ids"]) * self.world
            # the global batch's loss (ranks' scaled shard losses average to it), the same on every rank
            value = (dist.all_reduce_sum(loss.detach()) / self.world).item() if self.world > 1 else loss.item()
            running = value if running is None else 0.9 * running + 0.1 * value
            now = time.perf_counter()
            bar.set_postfix(loss=f"{running:.4f}", ex_per_s=f"{seen / (now - started):.1f}")
            bar.update(1)
            if self.tracker is not None:  # this step's throughput: its forward, backward and update
                self.tracker.log({"train/loss": value, "train/learning_rate": rate,
                                  "train/examples_per_second": len(batch["input_ids"]) * self.world
                                  / self.step_seconds[-1]}, state.step)
            state.train_seconds += now - last_time
            last_time = now
            state.losses.append(value)
            state.loss_seconds.append(round(state.train_seconds, 3))
            stop = False
            if state.step % args.eval_every == 0 or state.step == self.total_steps:
                stop = self._evaluate_and_keep_best(running)
                last_time = time.perf_counter()  # evaluation is not training time
            if self.output is not None and (state.step % args.save_every == 0 or state.step == self.total_steps
                                            or stop):
                self.save_checkpoint()
                last_time = time.perf_counter()
            if self.after_step is not None:
                self.after_step(state.step)
                last_time = time.perf_counter()
            if stop:
                logger.info("early stopping at step %d: no improvement in %d evaluations", state.step,
                            args.patience)
                break

    def _loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """This shard's loss, scaled so that the average over ranks is the loss of the global batch.

        Sequence-level shards are equal, so their means average to the global mean. Token-level shards
        hold different numbers of tokens (or none): each contributes its sum over the global count.
        """
        config = model.sk_config
        task = task_of(config)
        if self.world == 1 or not task.loss_over_tokens:
            return model(**batch).loss
        labels = batch.pop("labels")
        task.check_labels(labels, config.num_labels, *labels.shape[:2])
        total = task.loss(model(**batch).logits, labels, reduction="sum")
        count = dist.all_reduce_sum(task.counted_targets(labels).float())
        return total * self.world / count.clamp(min=1)

    def _evaluate_and_keep_best(self, running_loss: float | None) -> bool:
        state = self.state
        scores = self.evaluate(self.eval_rows) if self.eval_rows else {}
        state.history.append({"step": state.step, "train_loss": running_loss, "validation": scores,
                              "train_seconds": round(state.train_seconds, 3)})
        if not scores:
            return False
        if self.tracker is not None:
            self.tracker.log({f"validation/{k}": v for k, v in scores.items()}, state.step)
        main = scores[self.metrics[0]]
        if dist.is_main():
            tqdm.write(f"step {state.step}: validation " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        # NaN (e.g. a correlation of constant predictions) never counts as the best, not even the first time
        if main == main and (state.best_metric is None or main > state.best_metric):
            state.best_metric, state.best_step, state.evals_without_improvement = main, state.step, 0
            self.best_tensors = {k: v.detach().clone() for k, v in self.model.trainable_state_dict().items()}
            if dist.is_main() and self.output is not None:
                self.model.save_pretrained(self.output / "best", self.adapter_metadata)
            dist.barrier()
        else:
            state.evals_without_improvement += 1
        return self.args.patience is not None and state.evals_without_improvement >= self.args.patience

    def _restore_best(self) -> None:
        """The best adapter, from memory: `best/` on disk may hold a later, killed run's choice."""
        if self.best_tensors is not None:
            self.model.load_trainable_state_dict(self.best_tensors)

    # -- checkpoints (training.checkpoints) ------------------------------------------------------
    def save_checkpoint(self) -> None:
        save_checkpoint(self)

    def load_checkpoint(self) -> None:
        load_checkpoint(self)

    # -- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, rows: list[dict]) -> tuple[list, list, list]:
        """Predictions, references and probabilities (word-level for token tasks).

        An SK model scores merged (its adapter's output computed once, not once per batch; a merged
        SK-Prompt on a decoder reads the text as a key/value prefix, so the text's tokens are not run
        again for every input) and is unmerged afterwards to train on."""
        merge = (dist.world_size() == 1 and callable(getattr(self.model, "merge", None))
                 and not getattr(self.model, "merged", True))
        if merge:
            self.model.merge()
        try:
            return predict_rows(self.model, self.encoder, rows, self.args.eval_batch_size, bf16=self.args.bf16)
        finally:
            if merge:
                self.model.unmerge()

    def evaluate(self, rows: list[dict]) -> dict[str, float]:
        predictions, references, _ = self.predict(rows)
        return compute_metrics(self.metrics, predictions, references, self.label_names)
