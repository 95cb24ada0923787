"""Experiment tracking and the run's pictures.

The loop's numbers (training loss, learning rate, examples per second at every step; the validation
metrics at every evaluation) go to TensorBoard (`torch.utils.tensorboard`) or Weights & Biases
(`wandb`, offline unless WANDB_MODE says otherwise) through the trackers' own libraries, from the
main process only. `plot_curves` draws a run's loss and validation metric by step and by second (DIR/curves.png);
`plot_confusion` a classifier's confusion matrix (beside `sktune eval`'s results).
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

from sktuning.core.atomic import atomic_path
from sktuning.core.extras import require
from sktuning.training.spec import REPORT_TO


class Tracker:
    """Where the numbers go: `log(values, step)` and, at the end, `close()`."""

    def log(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    def __init__(self, log_dir: Path, first_step: int = 0):
        require("tensorboard", "tracking")
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run drops the events an interrupted one wrote past its last checkpoint (at first_step)
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=first_step + 1 if first_step else None)

    def log(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    def __init__(self, directory: Path, name: str, config: dict[str, Any]):
        wandb = require("wandb", "tracking")
        directory.mkdir(parents=True, exist_ok=True)
        # one id per run folder: a resumed run continues the same W&B run
        run_id = hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:16]
        self.run = wandb.init(dir=str(directory), name=name, config=config, id=run_id, resume="allow",
                              mode=os.environ.get("WANDB_MODE", "offline"), reinit="finish_previous")

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


def make_tracker(report_to: str, output: Path | None, name: str, config: dict[str, Any],
                 first_step: int = 0) -> Tracker | None:
    """The tracker `report_to` names, writing under `output` (DIR/tensorboard or DIR/wandb); None for none."""
    if report_to not in REPORT_TO:
        raise UsageError(f"Unknown --report-to {report_to!r}: choose one of {', '.join(REPORT_TO)}.")
    if report_to == "none":
        return None
    if output is None:
        raise UsageError(f"--report-to {report_to} needs an output folder to write its logs in.")
    if report_to == "tensorboard":
        return TensorBoardTracker(output / "tensorboard", first_step)
    return WandbTracker(output, name, config)


def _pyplot():
    matplotlib = require("matplotlib", "data")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(state, metric: str, path: Path) -> Path:
    """Time to accuracy at a glance: the training loss of every step and the validation `metric` of
    every evaluation, against steps (left) and against training seconds (right).

    `state` is the loop's `TrainState` (its per-step `losses` / `loss_seconds` and its `history`)."""
    plt = _pyplot()
    evals = [h for h in state.history if h.get("validation")]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    steps = range(1, len(state.losses) + 1)
    window = max(1, min(20, len(state.losses) // 10))
    smoothed = [sum(state.losses[max(0, i + 1 - window):i + 1]) / len(state.losses[max(0, i + 1 - window):i + 1])
                for i in range(len(state.losses))]
    twins = []
    for axis, x_loss, x_eval, label in ((axes[0], steps, [h["step"] for h in evals], "step"),
                                        (axes[1], state.loss_seconds, [h["train_seconds"] for h in evals],
                                         "training seconds")):
        axis.plot(x_loss, state.losses, "-", color="tab:blue", linewidth=0.6, alpha=0.5, label="training loss")
        axis.plot(x_loss, smoothed, "-", color="navy", linewidth=1.6, label=f"mean of the last {window} steps")
        axis.set(xlabel=label)
        axis.grid(alpha=0.3)
        metric_axis = axis.twinx()
        twins.append(metric_axis)
        metric_axis.plot(x_eval, [h["validation"].get(metric) for h in evals], "s-", color="tab:orange",
                         label=f"validation {metric}")
        metric_axis.set_ylabel(f"validation {metric}")
    axes[0].set_ylabel("training loss (each step)")
    handles = axes[0].get_lines() + twins[0].get_lines()
    figure.legend(handles, [h.get_label() for h in handles], loc="upper center", ncol=3, fontsize=8)
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
    return path


def plot_confusion(predictions: Sequence[int], references: Sequence[int], label_names: Sequence[str],
                   path: Path) -> Path:
    """Rows: the true label; columns: the predicted one; each cell the count of examples."""
    import numpy as np
    from sklearn.metrics import confusion_matrix

    plt = _pyplot()
    counts = confusion_matrix(references, predictions, labels=list(range(len(label_names))))
    size = max(4.0, 0.5 * len(label_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(counts, cmap="Blues")
    axis.set(xticks=range(len(label_names)), yticks=range(len(label_names)), xlabel="predicted", ylabel="true")
    axis.set_xticklabels(label_names, rotation=45, ha="right", fontsize=8)
    axis.set_yticklabels(label_names, fontsize=8)
    for (i, j), count in np.ndenumerate(counts):
        axis.text(j, i, str(count), ha="center", va="center", fontsize=7,
                  color="white" if count > counts.max() / 2 else "black")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
    return path
