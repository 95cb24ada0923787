"""The one shape every task takes (`TaskData`), whether bundled, from the Hub or from files.

Sequence tasks have columns `text`, optionally `text_pair`, and `label` (class id, or a float for
regression); token tasks have `tokens` and `tags` (one id per token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sktuning.core.extras import require
from sktuning.core.tasks import Regression, SingleLabelClassification, TokenClassification, task_named

datasets = require("datasets", "data")

#: the task kinds a data set can be, by their config names (`sktuning.core.tasks`)
SEQUENCE, TOKEN, REGRESSION = SingleLabelClassification.name, TokenClassification.name, Regression.name
SPLITS = ("train", "validation", "test")
SEED = 0  # every split of every task is drawn with this seed


@dataclass
class TaskData:
    """A task's splits in the common shape, with what a run needs to know about them.

    `metrics` lists the headline metric first. `label_names` is empty for regression. A label without
    default label words is its own word (`sktuning.core.config.task_config`).
    """

    name: str
    task: str
    label_names: list[str]
    metrics: list[str]
    default_text: str
    splits: datasets.DatasetDict
    pair: bool = False
    #: head='label-words': the words of each label (label name -> words) where the names are not words
    default_label_words: dict[str, list[str]] | None = None
    #: head='label-words': the text after every input, where the task wants another than " Answer:"
    default_answer_template: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    name: str
    task: str
    description: str
    source: str  # "bundled" (offline) or "hub"
    sizes: dict[str, int] | None  # train / validation / test rows of a bundled task
    load: Callable[..., TaskData]


def task_features(task: str, pair: bool = False) -> datasets.Features:
    """The columns of a data set of `task`: words and their tags, or text (and pair) and a label."""
    if task_named(task).word_level:
        return datasets.Features({"tokens": datasets.List(datasets.Value("string")),
                                  "tags": datasets.List(datasets.Value("int64"))})
    columns = {"text": datasets.Value("string")}
    if pair:
        columns["text_pair"] = datasets.Value("string")
    columns["label"] = datasets.Value(task_named(task).label_dtype)
    return datasets.Features(columns)


def dataset_dict(columns: dict[str, list], parts: dict[str, np.ndarray], features: datasets.Features
                  ) -> datasets.DatasetDict:
    return datasets.DatasetDict({
        split: datasets.Dataset.from_dict({k: [v[i] for i in parts[split]] for k, v in columns.items()},
                                          features=features)
        for split in SPLITS})
