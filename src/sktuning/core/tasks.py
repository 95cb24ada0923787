"""One object per task kind: what its labels look like, its loss, how its labels batch, how its outputs
read as predictions, and its default metrics.

The rest of the package asks `task_of(config)` (or `task_named(name)` where only a task's name is known,
as for a data set) instead of comparing task names, so a new task kind is one new class here, listed in
TASKS. torch is imported inside the methods that use it: the config validates its task here, and
`import sktuning` and the CLI's argument errors must load no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from sktuning.core.errors import UsageError

if TYPE_CHECKING:
    import torch

#: the label of a position that has none (a word's later sub-tokens, padding): every loss skips it
IGNORE_INDEX = -100


class Task:
    """A task kind: `name` (with `multi_label`) is what `SKTuningConfig.task` says; the flags say what the
    rest of the package does differently for it."""

    name: str
    multi_label = False
    #: the inputs are words with one label each: the head keeps every token, labels pad per token
    word_level = False
    #: writes text through the backbone's own LM head; it labels nothing, so it has no head of its own
    generates = False
    #: one class out of several per input: what label words, few-shot sampling, stratified splits and a
    #: confusion matrix need
    one_class_per_input = False
    #: the labels name classes (`label_names`); regression's are values
    has_classes = True
    #: an answer template after the input shapes the pooled state that one prediction per input reads
    takes_answer_template = False
    #: the loss averages over tokens, whose count differs between data-parallel shards (`counted_targets`)
    loss_over_tokens = False
    #: how a data set stores one label (`datasets.Value`); `collate_labels` batches it as the same kind
    label_dtype = "int64"
    #: the Hub's pipeline tag for a model card
    hub_pipeline = "text-classification"

    @property
    def described(self) -> str:
        """The config that selects this task, as an error message names it."""
        return f"task={self.name!r}"

    def check_config(self, config) -> None:
        """Refuse a config whose label fields cannot belong to this task."""

    def check_labels(self, labels: torch.Tensor, num_labels: int, batch: int, seq: int) -> None:
        """Reject labels whose shape or values cannot belong to this task, before the loss hides why."""
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The task's loss, in float32; `reduction="sum"` for the token-level tasks lets data parallelism
        divide by the global token count (each shard's own mean would weigh a shard's tokens by its size)."""
        return self._loss(logits.float(), labels, reduction)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
        raise NotImplementedError

    def collate_labels(self, labels: Sequence, pad: Callable[[Sequence, Any], list]) -> torch.Tensor:
        """A batch's labels as one tensor; `pad(row, value)` pads a per-token row to the batch's width."""
        import torch

        return torch.tensor(list(labels))

    def prediction_rows(self, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Rows of text ({"text", "text_pair"}) as this task reads them when asked to predict."""
        return rows

    def decode(self, logits: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[Any, Any]:
        """One row's (prediction, probabilities) from its float logits; `keep` marks a token task's
        first sub-tokens."""
        raise UsageError(f"A {self.name} model labels nothing; a model that writes text answers "
                         "model.generate().")

    def record(self, row: dict[str, Any], encoded_row: dict[str, Any], prediction: Any, probabilities: Any,
               names: Sequence[str]) -> dict[str, Any]:
        """What `predict` reports for one input, given its decoded prediction and the label names."""
        raise NotImplementedError

    def default_metrics(self, label_names: Sequence[str]) -> list[str]:
        """The metrics (of `sktuning.core.metrics`) a data set of this task is scored with, headline first."""
        return []

    def default_text(self, label_names: Sequence[str], pair: bool) -> str:
        """The semantic text for a data set of this task that came without one (your own files)."""
        raise UsageError(f"A {self.name} task has no default text: give one (--text).")

    def __repr__(self) -> str:
        return f"<task {self.described}>"


def _check_shape(task: Task, labels: torch.Tensor, num_labels: int, shapes: list[tuple[int, ...]],
                 expected: str) -> None:
    if tuple(labels.shape) not in shapes:
        raise UsageError(f"labels have shape {tuple(labels.shape)} but task {task.name!r} with "
                         f"num_labels={num_labels} expects {expected}.")


def _check_class_ids(task: Task, labels: torch.Tensor, valid: torch.Tensor, num_labels: int) -> None:
    if labels.is_floating_point():
        raise UsageError(f"labels must be integer class ids for task {task.name!r}, got {labels.dtype}.")
    if valid.numel() and (valid.min() < 0 or valid.max() >= num_labels):
        raise UsageError(f"labels must lie in [0, {num_labels - 1}] (num_labels={num_labels}), got values from "
                         f"{int(valid.min())} to {int(valid.max())}.")


def _subject(pair: bool) -> str:
    return "these two texts" if pair else "this text"


def _probabilities(names: Sequence[str], probabilities: Sequence[float]) -> dict[str, float]:
    return {n: round(p, 6) for n, p in zip(names, probabilities)}


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
    import torch.nn.functional as F

    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX,
                           reduction=reduction)


class SingleLabelClassification(Task):
    """One class per input (softmax, cross-entropy)."""

    name = "sequence-classification"
    one_class_per_input = True
    takes_answer_template = True

    @property
    def described(self) -> str:
        return f"task={self.name!r} without multi_label"

    def check_config(self, config) -> None:
        if config.num_labels < 2:
            raise UsageError("Single-label classification needs num_labels >= 2; use task='regression' for one "
                             "output or multi_label=True for independent binary labels.")

    def check_labels(self, labels, num_labels, batch, seq):
        _check_shape(self, labels, num_labels, [(batch,)], f"({batch},) integer class ids")
        _check_class_ids(self, labels, labels, num_labels)

    def _loss(self, logits, labels, reduction):
        return _cross_entropy(logits, labels, reduction)

    def decode(self, logits, keep=None):
        return int(logits.argmax()), logits.softmax(-1).tolist()

    def record(self, row, encoded_row, prediction, probabilities, names):
        return {**row, "label": names[prediction], "probabilities": _probabilities(names, probabilities)}

    def default_metrics(self, label_names):
        return ["accuracy", "macro_f1"]

    def default_text(self, label_names, pair):
        classes = f" as {', '.join(label_names[:-1])} or {label_names[-1]}" if len(label_names) <= 10 else ""
        return f"Classify {_subject(pair)}{classes}. {'Texts' if pair else 'Text'}:"


class MultiLabelClassification(Task):
    """Independent yes/no labels per input (a sigmoid each, binary cross-entropy)."""

    name = "sequence-classification"
    multi_label = True
    takes_answer_template = True

    @property
    def described(self) -> str:
        return f"task={self.name!r} with multi_label=True"

    def check_labels(self, labels, num_labels, batch, seq):
        _check_shape(self, labels, num_labels, [(batch, num_labels)], f"({batch}, {num_labels}) 0/1 targets")

    def _loss(self, logits, labels, reduction):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(logits, labels.float(), reduction=reduction)

    def decode(self, logits, keep=None):
        return (logits > 0).long().tolist(), logits.sigmoid().tolist()

    def record(self, row, encoded_row, prediction, probabilities, names):
        return {**row, "labels": [names[i] for i, v in enumerate(prediction) if v],
                "probabilities": _probabilities(names, probabilities)}

    def default_metrics(self, label_names):
        return ["accuracy", "macro_f1"]  # scikit-learn reads 0/1 rows as label sets: exact-set accuracy

    def default_text(self, label_names, pair):
        listed = f" with each of {', '.join(label_names)} that applies" if len(label_names) <= 10 else ""
        return f"Label {_subject(pair)}{listed}. {'Texts' if pair else 'Text'}:"


class TokenClassification(Task):
    """A tag per word (cross-entropy over each word's first sub-token; the rest are IGNORE_INDEX)."""

    name = "token-classification"
    word_level = True
    loss_over_tokens = True
    hub_pipeline = "token-classification"

    def check_labels(self, labels, num_labels, batch, seq):
        _check_shape(self, labels, num_labels, [(batch, seq)], f"({batch}, {seq}) integer tag ids (-100 to ignore)")
        _check_class_ids(self, labels, labels[labels != IGNORE_INDEX], num_labels)

    def _loss(self, logits, labels, reduction):
        return _cross_entropy(logits, labels, reduction)

    def counted_targets(self, labels: torch.Tensor) -> torch.Tensor:
        """How many targets the loss averages over (labels that are not IGNORE_INDEX)."""
        return (labels != IGNORE_INDEX).sum()

    def collate_labels(self, labels, pad):
        import torch

        return torch.tensor([pad(row, IGNORE_INDEX) for row in labels])

    def prediction_rows(self, rows):
        return [{"tokens": row["text"].split()} for row in rows]  # the words are the text's, split on whitespace

    def decode(self, logits, keep=None):
        logits = logits[keep]
        return logits.argmax(-1).tolist(), logits.softmax(-1).tolist()

    def record(self, row, encoded_row, prediction, probabilities, names):
        tags = [None] * len(row["tokens"])  # a word with no sub-token (cut, or dropped by the tokenizer) gets None
        for word, p in zip((w for w in encoded_row["word_ids"] if w >= 0), prediction):
            tags[word] = names[p]
        return {"tokens": row["tokens"], "tags": tags}

    def default_metrics(self, label_names):
        bio = all(n == "O" or n[:2] in ("B-", "I-") for n in label_names) and any(n != "O" for n in label_names)
        return ["seqeval_f1", "token_accuracy"] if bio else ["token_accuracy"]

    def default_text(self, label_names, pair):
        return f"Tag each word of this sentence with one of: {', '.join(label_names)}. Sentence:"


class Regression(Task):
    """`num_labels` real values per input (mean squared error)."""

    name = "regression"
    has_classes = False
    takes_answer_template = True
    label_dtype = "float32"

    def check_labels(self, labels, num_labels, batch, seq):
        shapes = [(batch,), (batch, 1)] if num_labels == 1 else [(batch, num_labels)]
        _check_shape(self, labels, num_labels, shapes, " or ".join(map(str, shapes)) + " floats")

    def _loss(self, logits, labels, reduction):
        import torch.nn.functional as F

        return F.mse_loss(logits.squeeze(-1) if labels.dim() == 1 else logits, labels.float(), reduction=reduction)

    def collate_labels(self, labels, pad):
        import torch

        return torch.tensor(list(labels), dtype=torch.float)

    def decode(self, logits, keep=None):
        return logits.squeeze(-1).tolist(), None

    def record(self, row, encoded_row, prediction, probabilities, names):
        return {**row, "prediction": prediction}

    def default_metrics(self, label_names):
        return ["pearson", "spearman"]

    def default_text(self, label_names, pair):
        return f"Give a score for {_subject(pair)}. {'Texts' if pair else 'Text'}:"


class CausalLanguageModelling(Task):
    """The next token at every position, through the backbone's own frozen LM head (cross-entropy)."""

    name = "causal-lm"
    generates = True
    has_classes = False
    loss_over_tokens = True
    hub_pipeline = "text-generation"

    def check_labels(self, labels, num_labels, batch, seq):
        if tuple(labels.shape) != (batch, seq) or labels.is_floating_point():
            raise UsageError(f"labels have shape {tuple(labels.shape)} but task {self.name!r} expects ({batch}, "
                             f"{seq}) integer target token ids (-100 where no loss is wanted).")

    def _loss(self, logits, labels, reduction):
        return _cross_entropy(logits[:, :-1], labels[:, 1:], reduction)  # position t predicts token t + 1

    def counted_targets(self, labels: torch.Tensor) -> torch.Tensor:
        """How many targets the loss averages over: every label after the first that is not IGNORE_INDEX."""
        return (labels[:, 1:] != IGNORE_INDEX).sum()


#: every task kind; the first of a name is the one `multi_label=False` selects
TASKS: tuple[Task, ...] = (SingleLabelClassification(), MultiLabelClassification(), TokenClassification(),
                           Regression(), CausalLanguageModelling())
#: the values of `SKTuningConfig.task`
TASK_TYPES = tuple(dict.fromkeys(task.name for task in TASKS))
#: the task kinds a data file (or data set) can hold: every kind with labels to read (a causal LM writes text)
FILE_TASK_TYPES = tuple(dict.fromkeys(task.name for task in TASKS if not task.generates))


def task_named(name: str, multi_label: bool = False) -> Task:
    """The task kind of a config's `task` and `multi_label` (a data set's name alone: multi_label False)."""
    for task in TASKS:
        if task.name == name and task.multi_label == multi_label:
            return task
    if name not in TASK_TYPES:
        raise UsageError(f"Unknown task {name!r}: choose one of {', '.join(repr(n) for n in TASK_TYPES)}.")
    takers = " or ".join(f"task={t.name!r}" for t in TASKS if t.multi_label)
    raise UsageError(f"multi_label=True applies only to {takers}.")


def task_of(config) -> Task:
    """The task kind an `SKTuningConfig` (or anything with `task` and `multi_label`) selects."""
    return task_named(config.task, config.multi_label)
