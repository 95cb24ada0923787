"""Which rows of a task a run reads: one rule for `sktune train`, the Python API and every bench run.

Either seeded subsets of at most N rows per split, or K examples per class (few-shot, stratified) for
training and for validation, as in LM-BFF's protocol (Gao et al. 2021). Both are drawn with an explicit
subset seed: the bench's suites keep one fixed subset (seed 0) for every method and seed, so their runs
stay comparable; a few-shot suite draws its own sample per seed, shared by every method of that seed.
The test split is never cut by `shots`.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import random
from dataclasses import dataclass

from sktuning.core.tasks import task_named

SPLITS = ("train", "validation", "test")
#: a cut test split is drawn with this seed whatever the subset seed: every run of a task (every method,
#: every seed, every K) is scored on the same examples, so their predictions pair by example
TEST_SEED = 0


@dataclass(frozen=True)
class SubsetRule:
    seed: int = 0                         # the subset seed (not the training seed)
    max_train: int | None = None          # at most this many training rows (a seeded shuffle's first ones)
    max_eval: int | None = None           # ... validation rows
    max_test: int | None = None           # ... test rows
    shots: int | None = None              # K training examples per class (and K validation ones per class)
    shots_validation: bool = True         # with `shots`: False reads no validation rows (no early stopping)

    def __post_init__(self) -> None:
        for name in ("max_train", "max_eval", "max_test", "shots"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be >= 1, got {value}.")
        if self.shots is not None and (self.max_train is not None or self.max_eval is not None):
            raise UsageError("Give either shots (K examples per class for training and validation) or "
                             "max_train/max_eval subsets, not both.")


def draw_subsets(data, rule: SubsetRule) -> dict:
    """The three splits of `data` (a TaskData) that a run reads under `rule`."""
    splits = data.splits
    if rule.shots is not None:
        check_few_shot_task(data)
        train = few_shot_sample(splits["train"], rule.shots, rule.seed, len(data.label_names), "train")
        validation = few_shot_sample(splits["validation"], rule.shots, rule.seed, len(data.label_names),
                                     "validation") if rule.shots_validation else splits["validation"].select([])
        return {"train": train, "validation": validation, "test": _first(splits["test"], rule.max_test, TEST_SEED)}
    return {"train": _first(splits["train"], rule.max_train, rule.seed),
            "validation": _first(splits["validation"], rule.max_eval, rule.seed),
            "test": _first(splits["test"], rule.max_test, TEST_SEED)}


def _first(dataset, limit: int | None, seed: int):
    if limit is None or limit >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(limit))


def check_few_shot_task(data) -> None:
    """K examples per class needs single-label classes to stratify by."""
    if not task_named(data.task, getattr(data, "multi_label", False)).one_class_per_input:
        raise UsageError(f"--shots draws K examples per class, which needs single-label sequence classification; "
                         f"task {data.name!r} is {data.task}: use --max-train-examples for a subset instead.")


def few_shot_sample(dataset, shots: int, seed: int, num_labels: int, split: str):
    """`shots` rows of each class, drawn with `seed` (each class's rows shuffled by its own generator, so
    one class's sample does not depend on another's size), in a seeded random order of the classes' rows."""
    by_label: dict[int, list[int]] = {label: [] for label in range(num_labels)}
    for index, label in enumerate(dataset["label"]):
        by_label.setdefault(int(label), []).append(index)
    short = {label: len(rows) for label, rows in by_label.items() if len(rows) < shots}
    if short:
        counts = ", ".join(f"label {label}: {n}" for label, n in sorted(short.items()))
        raise UsageError(f"--shots {shots}: the {split} split has fewer than {shots} examples of some classes "
                         f"({counts}); lower --shots.")
    chosen = []
    for label in sorted(by_label):
        rows = list(by_label[label])
        random.Random(f"{seed}/{split}/{label}").shuffle(rows)
        chosen += rows[:shots]
    random.Random(f"{seed}/{split}/order").shuffle(chosen)
    return dataset.select(chosen)
