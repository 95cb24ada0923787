"""`SKTuningConfig`: every choice of an SK-Tuning run, validated once, stored as JSON."""

from __future__ import annotations

from sktuning.core.errors import UsageError

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from sktuning.core.tasks import TASK_TYPES, TASKS, SingleLabelClassification, task_of

MODES = ("prefix", "prompt")
POOLINGS = ("last", "mean", "cls")
#: the sequence-classification heads: a new linear map, or the label words' own output rows (sktuning.core.heads)
HEADS = ("linear", "label-words")
#: the adapter kinds of `sktuning.core.adapters.ADAPTERS`, named here so that checking a choice loads no torch
REFINING_KINDS = ("embedding", "lowrank", "linear", "scale")
#: the authors' SK-Prefix (`sktuning.core.authors_prefix`): the text's input embeddings train and the frozen
#: model re-reads them at every step; "-linear" adds their shared per-head map of the keys and values
AUTHORS_KINDS = ("authors", "authors-linear")
ADAPTER_KINDS = REFINING_KINDS + AUTHORS_KINDS


@dataclass
class SKTuningConfig:
    """What to tune and how. Every field is plain JSON so a saved adapter needs no pickle."""

    mode: str = field(default="prefix", metadata={"help": "'prefix': the text's per-layer keys/values; 'prompt': its input embeddings."})
    text: str = field(default="", metadata={"help": "The semantic text, e.g. 'Classify the sentiment of this review:'."})
    task: str = field(default=SingleLabelClassification.name, metadata={"help": "One of " + ", ".join(TASK_TYPES) + "."})
    num_labels: int = field(default=2, metadata={"help": "Classes (classification) or outputs (regression); "
                                                          "unused for causal-lm (the backbone's own LM head)."})
    multi_label: bool = field(default=False, metadata={"help": "Sequence classification with independent labels (BCE loss)."})
    adapter: str = field(default="lowrank", metadata={"help": "Adapter kind: embedding, lowrank, linear or scale; "
                                                                  "authors or authors-linear (SK-Prefix only)."})
    adapter_rank: int = field(default=8, metadata={"help": "Rank of the 'lowrank' adapter."})
    pooling: str = field(default="last", metadata={"help": "Sequence pooling over real input tokens: last, mean or cls."})
    head_dropout: float = field(default=0.0, metadata={"help": "Dropout before the task head."})
    label_names: list[str] | None = field(default=None, metadata={"help": "Optional names of the labels, in id order."})
    head: str = field(default="linear", metadata={"help": "'linear': a new linear map of the pooled state; "
                                                          "'label-words': class c starts as the score of its words "
                                                          "(the LM head's logit on a decoder)."})
    label_words: list[list[str]] | None = field(default=None, metadata={"help": "head='label-words': the words of "
                                                                                "each label, in label-id order."})
    answer_template: str | None = field(default=None, metadata={"help": "A short text appended after every input, "
                                                                        "e.g. ' Answer:' (sequence tasks)."})

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise UsageError("SKTuningConfig.text is empty: give the task text the backbone should read, "
                             "e.g. text='Classify the sentiment of this review as positive or negative:'.")
        _check_choice("mode", self.mode, MODES)
        _check_choice("task", self.task, TASK_TYPES)
        _check_choice("adapter", self.adapter, ADAPTER_KINDS)
        check_mode_and_adapter(self.mode, self.adapter)
        _check_choice("pooling", self.pooling, POOLINGS)
        if isinstance(self.num_labels, bool) or not isinstance(self.num_labels, int) or self.num_labels < 1:
            raise UsageError(f"SKTuningConfig.num_labels must be an integer >= 1, got {self.num_labels!r}.")
        if not isinstance(self.multi_label, bool):
            raise UsageError(f"SKTuningConfig.multi_label must be true or false, got {self.multi_label!r}.")
        task_of(self).check_config(self)  # task_of refuses multi_label where the task has no such kind
        if isinstance(self.adapter_rank, bool) or not isinstance(self.adapter_rank, int) or self.adapter_rank < 1:
            raise UsageError(f"SKTuningConfig.adapter_rank must be an integer >= 1, got {self.adapter_rank!r}.")
        if not isinstance(self.head_dropout, (int, float)) or not 0.0 <= self.head_dropout < 1.0:
            raise UsageError(f"SKTuningConfig.head_dropout must be in [0, 1), got {self.head_dropout!r}.")
        if self.label_names is not None:
            if not isinstance(self.label_names, (list, tuple)) or len(self.label_names) != self.num_labels or not all(isinstance(n, str) for n in self.label_names):
                raise UsageError(f"SKTuningConfig.label_names must be {self.num_labels} strings (one per label), "
                                 f"got {self.label_names!r}.")
            self.label_names = list(self.label_names)
        self._check_head()

    def _check_head(self) -> None:
        _check_choice("head", self.head, HEADS)
        if self.head == "label-words":
            self._check_label_words()
        elif self.label_words is not None:
            raise UsageError("label_words are read only by head='label-words': set head='label-words', or "
                             "leave label_words out.")
        if self.answer_template is not None:
            if not isinstance(self.answer_template, str) or not self.answer_template.strip():
                raise UsageError(f"SKTuningConfig.answer_template must be a non-empty text such as ' Answer:', got "
                                 f"{self.answer_template!r}; leave it None for no template.")
            if not task_of(self).takes_answer_template:
                takers = ", ".join(dict.fromkeys(t.name for t in TASKS if t.takes_answer_template))
                raise UsageError(f"answer_template is appended after every input for a sequence-level task "
                                 f"({takers}), not task={self.task!r}: leave it out.")

    def _check_label_words(self) -> None:
        task = task_of(self)
        if not task.one_class_per_input:
            needed = " or ".join(t.described for t in TASKS if t.one_class_per_input)
            raise UsageError(f"head='label-words' scores one label per input: it needs {needed}, got "
                             f"{task.described}; use head='linear'.")
        words = self.label_words
        if not isinstance(words, (list, tuple)) or len(words) != self.num_labels:
            raise UsageError(f"head='label-words' needs label_words: one list of words per label, "
                             f"{self.num_labels} in label-id order (e.g. [['negative'], ['positive']]), got {words!r}.")
        for i, label in enumerate(words):
            if isinstance(label, str):
                label = [label]
            if (not isinstance(label, (list, tuple)) or not label
                    or not all(isinstance(w, str) and w.strip() for w in label)):
                raise UsageError(f"label_words[{i}] must be a non-empty list of non-empty words (label "
                                 f"{self._label(i)}), got {words[i]!r}.")
        # each word once per label (a repeated word would only weigh the same row twice)
        self.label_words = [list(dict.fromkeys(w.strip() for w in ([label] if isinstance(label, str) else label)))
                            for label in words]

    def _label(self, i: int) -> str:
        return repr(self.label_names[i]) if self.label_names else str(i)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SKTuningConfig":
        if not isinstance(data, dict):
            raise UsageError(f"An SK-Tuning config must be a JSON object, got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"Unknown SKTuningConfig field(s) {unknown}; known fields are {sorted(known)}.")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"Unknown {name} {value!r}: choose one of {', '.join(repr(c) for c in choices)}.")


def check_mode_and_adapter(mode: str, adapter: str, option: str = "adapter") -> None:
    """The authors' scheme re-encodes the text's embeddings into every layer's keys and values: SK-Prefix
    only. For SK-Prompt, trainable text embeddings are what adapter='embedding' already is."""
    if adapter in AUTHORS_KINDS and mode != "prefix":
        raise UsageError(f"{option} {adapter!r} is the authors' SK-Prefix and needs mode 'prefix'; for SK-Prompt "
                         "their trainable text embeddings are the 'embedding' adapter.")


def check_shardable(adapter: str | None, engine: str | None) -> None:
    """The authors' SK-Prefix shards under FSDP, not ZeRO-3 (see `sktuning.core.authors_prefix.side_output_pass`)."""
    if engine == "zero3" and adapter in AUTHORS_KINDS:
        raise UsageError(f"adapter {adapter!r} (the authors' SK-Prefix) cannot train on a ZeRO-3 sharded backbone "
                         "(its text pass needs the weights gathered in a backward that DeepSpeed does not "
                         "expect); use --shard fsdp, or plain data parallel.")


def default_pooling(tokenizer) -> str:
    """Mean pooling for encoders (a tokenizer with a [CLS] token), the last real token for decoders."""
    return "mean" if getattr(tokenizer, "cls_token", None) is not None else "last"


#: the answer template of head='label-words' when neither the task nor the user gives one
DEFAULT_ANSWER_TEMPLATE = " Answer:"


def task_config(task_data: Any, tokenizer, *, text: str | None = None, pooling: str | None = None,
                head: str = "linear", label_words: dict[str, list[str]] | None = None,
                answer_template: str | None = None, **choices: Any) -> SKTuningConfig:
    """The config for a task (`sktuning.data.TaskData`): its type, labels and default text, the
    backbone's default pooling, and any other field in `choices` (mode, adapter, adapter_rank, ...).

    head='label-words' takes each label's words from `label_words` (label name -> words), else from the
    task's own `default_label_words`, else the label's name itself; the template likewise from
    `answer_template`, the task's `default_answer_template`, then DEFAULT_ANSWER_TEMPLATE."""
    names = list(task_data.label_names or [])
    words = None
    if head == "label-words":
        given = dict(label_words or {})
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise UsageError(f"--label-words names label(s) {unknown} that task {task_data.name!r} does not have; "
                             f"its labels are {names}.")
        defaults = getattr(task_data, "default_label_words", None) or {}
        words = [list(given.get(n) or defaults.get(n) or [n]) for n in names]
        if answer_template is None:
            answer_template = getattr(task_data, "default_answer_template", None) or DEFAULT_ANSWER_TEMPLATE
    elif label_words:
        raise UsageError("--label-words are read only by --head label-words: add --head label-words, or leave "
                         "them out.")
    return SKTuningConfig(text=task_data.default_text if text is None else text, task=task_data.task,
                          num_labels=max(1, len(names)), label_names=names or None,
                          pooling=pooling or default_pooling(tokenizer), head=head, label_words=words,
                          answer_template=answer_template, **choices)
