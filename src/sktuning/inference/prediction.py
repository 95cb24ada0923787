"""Batched prediction for the Python API and `sktune predict`: dynamic padding, optional
length-sorted batches, labels with per-label probabilities (per-word tags for token tasks).

    >>> result = predict(model.merge(), tokenizer, ["a gorgeous film", "a tedious mess"])
    >>> result.records[0]["label"], result.examples_per_second

`predict_rows` is the loop under it, shared with evaluation during training; under torchrun each
process predicts its share and the shares are gathered back in order.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from sktuning.scale import distributed as dist
from sktuning.data.encoding import InputEncoder
from sktuning.core.model import SKModel
from sktuning.core.tasks import task_of
from sktuning.scale.runtime import autocast, to_device
from sktuning.scale.sharding import reshard


@dataclass
class Predictions:
    records: list[dict[str, Any]]
    seconds: float

    @property
    def examples_per_second(self) -> float:
        return len(self.records) / max(self.seconds, 1e-9)


def predict(model: SKModel, tokenizer, inputs: Sequence[str | dict[str, str]], batch_size: int = 64,
            sort_by_length: bool = True, max_length: int = 128) -> Predictions:
    """Label `inputs` (texts, or {"text", "text_pair"} rows; token tasks split texts on whitespace).

    Inputs are cut to `max_length` tokens, fewer where the backbone's positions leave less room after
    the text: the rule training applies (`SKModel.input_length`)."""
    rows = [{"text": item} if isinstance(item, str) else dict(item) for item in inputs]
    empty = [i for i, row in enumerate(rows) if not str(row.get("text", "")).strip()]
    if empty:
        raise UsageError(f"Input(s) {empty[:10]} are empty; remove them.")
    config = model.sk_config
    task = task_of(config)
    if task.generates:
        raise UsageError(f"predict() labels inputs for a classification or regression task; a {config.task} model "
                         "writes text: use model.generate().")
    rows = task.prediction_rows(rows)
    encoder = InputEncoder.for_model(model, tokenizer, max_length)
    encoded = encoder.encode(rows, "inputs")
    started = time.perf_counter()
    predictions, _, probabilities = predict_rows(model, encoder, encoded, batch_size, sort_by_length)
    seconds = time.perf_counter() - started
    return Predictions(to_records(config, rows, encoded, predictions, probabilities), seconds)


def to_records(config, rows, encoded, predictions, probabilities) -> list[dict[str, Any]]:
    """One record per input, as its task reports it (`Task.record`): a label and its probabilities, labels
    (multi-label), a value (regression), or a tag per word (token tasks)."""
    names = config.label_names or [str(i) for i in range(config.num_labels)]
    task = task_of(config)
    return [task.record(row, encoded_row, pred, probs, names)
            for row, encoded_row, pred, probs in zip(rows, encoded, predictions, probabilities)]


@torch.no_grad()
def predict_rows(model: torch.nn.Module, encoder: InputEncoder, rows: list[dict], batch_size: int = 64,
                 sort_by_length: bool = True, bf16: bool = False, config=None):
    """(predictions, references, probabilities) for encoded rows, in the rows' order.

    Batches are padded dynamically; sorting by length first keeps padding (wasted work) small.
    `model` is an SKModel, or any module with an `sk_config` (or given `config`) whose output has
    `logits` or is a `(loss, logits)` tuple.
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
    task = task_of(config)
    # every rank runs the same number of forwards: on a sharded backbone each forward is a collective
    rounds = math.ceil(math.ceil(len(rows) / dist.world_size()) / batch_size)
    for start in range(0, rounds * batch_size, batch_size):
        chunk = order[start:start + batch_size]
        if not chunk:  # this rank's share ran out one batch early: an idle forward keeps the ranks in step
            idle = encoder.collate(rows[:1])
            model(**to_device({k: v for k, v in idle.items() if k not in ("word_ids", "labels")}, model))
            continue
        batch = encoder.collate([rows[i] for i in chunk])
        word_ids = batch.pop("word_ids", None)
        labels = batch.pop("labels", None)
        with autocast(model, bf16):
            out = model(**to_device(batch, model))
            logits = (out.logits if hasattr(out, "logits") else out[1]).float().cpu()
        for j, i in enumerate(chunk):
            keep = word_ids[j] >= 0 if task.word_level else None
            predictions[i], probabilities[i] = task.decode(logits[j], keep)
            if labels is not None:
                references[i] = (labels[j] if keep is None else labels[j][keep]).tolist()
    model.train(was_training)
    if dist.world_size() > 1:
        reshard(model)  # FSDP without resharding after forward keeps what a no-grad forward gathered
        mine = sorted(order)
        predictions, references, probabilities = (
            dist.gather_in_order([values[i] for i in mine], mine, len(rows))
            for values in (predictions, references, probabilities))
    return predictions, references, probabilities
