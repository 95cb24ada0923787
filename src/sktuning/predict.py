"""Batched prediction for the Python API and `sktune predict`: dynamic padding, optional
length-sorted batches, labels with per-label probabilities (per-word tags for token tasks).

    >>> result = predict(model.merge(), tokenizer, ["a gorgeous film", "a tedious mess"])
    >>> result.records[0]["label"], result.examples_per_second
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import datasets

from sktuning.encoding import InputEncoder
from sktuning.model import SKModel
from sktuning.trainer import predict_rows


@dataclass
class Predictions:
    records: list[dict[str, Any]]
    seconds: float

    @property
    def examples_per_second(self) -> float:
        return len(self.records) / max(self.seconds, 1e-9)


def predict(model: SKModel, tokenizer, inputs: Sequence[str | dict[str, str]], batch_size: int = 64,
            sort_by_length: bool = True, max_length: int = 128) -> Predictions:
    """Label `inputs` (texts, or {"text", "text_pair"} rows; token tasks split texts on whitespace)."""
    rows = [{"text": item} if isinstance(item, str) else dict(item) for item in inputs]
    empty = [i for i, row in enumerate(rows) if not str(row.get("text", "")).strip()]
    if empty:
        raise ValueError(f"Input(s) {empty[:10]} are empty; remove them.")
    config = model.sk_config
    if config.task == "causal-lm":
        raise ValueError("predict() labels inputs for a classification or regression task; a causal-lm model "
                         "writes text: use model.generate().")
    token_task = config.task == "token-classification"
    if token_task:
        rows = [{"tokens": row["text"].split()} for row in rows]
    if model.max_input_tokens is not None:  # a learned position table: the text takes positions too
        max_length = min(max_length, model.max_input_tokens)
    encoder = InputEncoder(tokenizer, model.semantic.text_input_ids.tolist(), config.task, max_length)
    encoded = encoder.encode(datasets.Dataset.from_list(rows), "inputs").to_list()
    started = time.perf_counter()
    predictions, _, probabilities = predict_rows(model, encoder, encoded, batch_size, sort_by_length)
    seconds = time.perf_counter() - started
    names = config.label_names or [str(i) for i in range(config.num_labels)]
    records = []
    for row, encoded_row, pred, probs in zip(rows, encoded, predictions, probabilities):
        if token_task:  # each tag goes to its word; a word with no sub-token (cut, or dropped) gets None
            tags = [None] * len(row["tokens"])
            for word, p in zip((w for w in encoded_row["word_ids"] if w >= 0), pred):
                tags[word] = names[p]
            records.append({"tokens": row["tokens"], "tags": tags})
        elif config.task == "regression":
            records.append({**row, "prediction": pred})
        elif config.multi_label:
            records.append({**row, "labels": [names[i] for i, v in enumerate(pred) if v],
                            "probabilities": {n: round(p, 6) for n, p in zip(names, probs)}})
        else:
            records.append({**row, "label": names[pred],
                            "probabilities": {n: round(p, 6) for n, p in zip(names, probs)}})
    return Predictions(records, seconds)
