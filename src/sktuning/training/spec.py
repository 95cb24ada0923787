"""The typed records of a run: `RunSpec` (everything `sktune train` was asked, kept in DIR/run.json for
`--resume`) and `AdapterRecord` (what `eval` and `predict` need to read inputs the way the adapter was
trained, saved with the adapter as its "training" entry).

Both are validated when built, load no torch, and round-trip through JSON.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from sktuning.core.config import ADAPTER_KINDS, HEADS, MODES, POOLINGS, check_mode_and_adapter, check_shardable
from sktuning.core.tasks import FILE_TASK_TYPES, task_named

#: training length when neither steps nor epochs is given (chosen on rt-polarity's validation split)
DEFAULT_STEPS = 200
DTYPES = ("float32", "bfloat16", "float16")
SHARD_ENGINES = ("fsdp", "zero3")
#: where the training loop's numbers also go (sktuning.training.tracking)
REPORT_TO = ("none", "tensorboard", "wandb")
#: bitsandbytes schemes for a frozen backbone (sktuning.scale.quantization, kept here so the CLI loads no torch)
QUANTIZE = ("int8", "nf4")
#: the training loop's orders of training rows (`TrainingArguments.data_order`)
DATA_ORDERS = ("epoch", "stream")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class RunSpec:
    """One run of the pipeline (`sktuning.training.pipeline`): `sktune train`'s, whose field names are the
    CLI's options (`batch_size` is `--batch-size`), or a bench run's. The last few fields are the loop
    settings only the bench sets (its committed runs trained that way); their defaults are `sktune train`'s."""

    # model and data
    model: str = field(default="smollm2-135m", metadata=_help("named model, Hugging Face id or local folder"))
    task: str | None = field(default=None, metadata=_help("named task; rt-polarity when no files are given"))
    train: str | None = field(default=None, metadata=_help("training file"))
    validation: str | None = field(default=None, metadata=_help("validation file (default: 10% of train)"))
    test: str | None = field(default=None, metadata=_help("test file (default: 10% of train)"))
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    label_names: list[str] | None = None
    task_type: str | None = field(default=None, metadata=_help("what a file's labels are (default: guessed)"))
    max_length: int = field(default=128, metadata=_help("input tokens kept per example"))
    trust_remote_code: bool = False
    device: str = "auto"
    dtype: str = "float32"
    quantize: str | None = field(default=None, metadata=_help("hold the frozen backbone in 8 or 4 bits: int8, nf4"))
    # method
    mode: str = "prefix"
    text: str | None = field(default=None, metadata=_help("semantic text (default: the task's own)"))
    adapter: str = "lowrank"
    rank: int = 8
    pooling: str | None = field(default=None, metadata=_help("default: last for decoders, mean for encoders"))
    head: str = field(default="linear", metadata=_help("linear, or label-words (starts from the label words' scores)"))
    label_words: dict[str, list[str]] | None = field(default=None, metadata=_help(
        "label name -> its words (head label-words; default: the task's own, else the label's name)"))
    answer_template: str | None = field(default=None, metadata=_help(
        "text after every input (default for label-words: the task's own, else ' Answer:')"))
    # training
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    eval_every: int = 100
    save_every: int = 100
    patience: int | None = None
    group_by_length: bool = field(default=True, metadata=_help("batches of rows of similar length (less padding)"))
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    shots: int | None = field(default=None, metadata=_help(
        "K training (and K validation) examples per class, drawn per subset seed (few-shot)"))
    shots_validation: bool = field(default=True, metadata=_help(
        "with shots: a K-per-class validation set (false: none, so no early stopping)"))
    subset_seed: int | None = field(default=None, metadata=_help("seed of the subsets and shots (default: seed)"))
    seed: int = 0
    bf16: bool = False
    threads: int | None = field(default=None, metadata=_help("torch's CPU threads (default: one per core)"))
    gradient_checkpointing: bool = False
    shard: str | None = None
    deepspeed_config: str | None = None
    sharding_plan: dict[str, Any] | None = field(default=None, metadata=_help("the plan the run started with"))
    report_to: str = "none"
    # output
    output: str | None = None
    # the bench's own settings, no CLI option: a cut test split, the "stream" order of rows, the global seed
    # set only before the model is built (not again when the loop starts), the evaluation batch
    max_test_examples: int | None = None
    data_order: str = "epoch"
    seed_at_start: bool = True
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        _choice("--mode", self.mode, MODES)
        _choice("--adapter", self.adapter, ADAPTER_KINDS)
        check_mode_and_adapter(self.mode, self.adapter, "--adapter")
        _choice("--dtype", self.dtype, DTYPES)
        if self.quantize is not None:
            _choice("--quantize", self.quantize, QUANTIZE)
            if self.shard is not None:
                raise UsageError("--quantize and --shard do not go together: FSDP and ZeRO-3 shard full weights, "
                                 "not bitsandbytes' packed ones. Quantize to fit one device, or shard.")
        _choice("--report-to", self.report_to, REPORT_TO)
        if self.pooling is not None:
            _choice("--pooling", self.pooling, POOLINGS)
        if self.shard is not None:
            _choice("--shard", self.shard, SHARD_ENGINES)
            check_shardable(self.adapter, self.shard)
        if self.task_type is not None:
            _choice("--task-type", self.task_type, FILE_TASK_TYPES)
        _choice("--head", self.head, HEADS)
        if self.head == "label-words" and self.task_type is not None and not task_named(self.task_type).one_class_per_input:
            raise UsageError(f"--head label-words scores one label per input; --task-type {self.task_type} has "
                             "none: use --head linear.")
        if self.label_words is not None:
            check_label_words_mapping(self.label_words, "--label-words")
            if self.head != "label-words":
                raise UsageError("--label-words are read only by --head label-words: add --head label-words, or "
                                 "leave them out.")
        if self.answer_template is not None and not (isinstance(self.answer_template, str)
                                                     and self.answer_template.strip()):
            raise UsageError("--answer-template is empty: give a short text such as ' Answer:', or leave it out.")
        if self.text is not None and not (isinstance(self.text, str) and self.text.strip()):
            raise UsageError("--text is empty: give the text the backbone should read, or leave --text out to use "
                             "the task's own.")
        _choice("data_order", self.data_order, DATA_ORDERS)
        if not isinstance(self.seed_at_start, bool):
            raise UsageError(f"seed_at_start must be true or false, got {self.seed_at_start!r}.")
        for name in ("rank", "batch_size", "eval_every", "save_every", "max_length", "eval_batch_size"):
            _at_least_one(name, getattr(self, name))
        for name in ("steps", "patience", "max_train_examples", "max_eval_examples", "max_test_examples", "threads",
                     "shots"):
            if getattr(self, name) is not None:
                _at_least_one(name, getattr(self, name))
        if self.steps is not None and self.epochs is not None:
            raise UsageError("Give --steps or --epochs, not both.")
        if not isinstance(self.group_by_length, bool):
            raise UsageError(f"group_by_length must be true or false, got {self.group_by_length!r}.")
        if self.epochs is not None and not (_is_number(self.epochs) and self.epochs > 0):
            raise UsageError(f"--epochs must be > 0, got {self.epochs!r}.")
        if not (_is_number(self.lr) and self.lr > 0):
            raise UsageError(f"--lr must be > 0, got {self.lr!r}.")
        if not (_is_number(self.weight_decay) and self.weight_decay >= 0):
            raise UsageError(f"--weight-decay must be >= 0, got {self.weight_decay!r}.")
        if not (_is_number(self.warmup_ratio) and 0 <= self.warmup_ratio < 1):
            raise UsageError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio!r}.")
        for name in ("seed", "subset_seed"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise UsageError(f"--{name.replace('_', '-')} must be a whole number, got {value!r}.")
        if self.shots is not None and (self.max_train_examples is not None or self.max_eval_examples is not None):
            raise UsageError("--shots draws K examples per class for training and validation: leave out "
                             "--max-train-examples and --max-eval-examples.")
        if not self.shots_validation and self.shots is None:
            raise UsageError("--no-shots-validation goes with --shots K (it drops the K-shot validation set).")
        if not self.shots_validation and self.patience is not None:
            raise UsageError("--patience stops on validation, and --no-shots-validation leaves none: drop one.")
        if self.task and self.train:
            raise UsageError("Give either --task or --train/--validation/--test files, not both.")
        if self.deepspeed_config and self.shard != "zero3":
            raise UsageError("--deepspeed-config goes with --shard zero3.")
        if self.label_names is not None and (len(set(self.label_names)) != len(self.label_names)
                                             or len(self.label_names) < 2):
            raise UsageError(f"--label-names must be at least 2 distinct names, got {self.label_names!r}.")

    def subset_rule(self):
        """Which rows the run reads (`sktuning.data.subsets`): the test split whole (or cut, in the bench), the
        others cut to --max-*-examples or K per class, drawn with --subset-seed (default: --seed)."""
        from sktuning.data.subsets import SubsetRule

        return SubsetRule(seed=self.seed if self.subset_seed is None else self.subset_seed,
                          max_train=self.max_train_examples, max_eval=self.max_eval_examples,
                          max_test=self.max_test_examples, shots=self.shots, shots_validation=self.shots_validation)

    @property
    def training_steps(self) -> int | None:
        """--steps, else the default length unless --epochs is given."""
        return self.steps if self.steps is not None or self.epochs is not None else DEFAULT_STEPS

    def replace(self, **changes: Any) -> "RunSpec":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "run settings") -> "RunSpec":
        if not isinstance(data, dict):
            raise UsageError(f"{where} must be a JSON object, got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{where} has unknown setting(s) {unknown}; it was written by another version of "
                             "sktuning.")
        return cls(**data)

    @classmethod
    def read(cls, path) -> "RunSpec":
        """A run.json, as `sktune train` writes it."""
        try:
            data = json.loads(open(path, encoding="utf-8").read())
        except (OSError, ValueError) as err:
            raise UsageError(f"{path} is not a readable run record ({err}); start the run again without "
                             "--resume.") from None
        return cls.from_dict(data, str(path))


@dataclass(frozen=True)
class AdapterRecord:
    """How an adapter was trained, as far as reading new inputs goes; saved beside its weights."""

    model: str | None = None             # the backbone: a named model, hub id, or absolute folder
    task: str | None = None              # the task's name (a named task, or the training file's stem)
    task_source: str | None = None       # "named" or "files"
    max_length: int = 128                # input tokens kept per example (after the length rule)
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    quantize: str | None = None          # the backbone was held in int8 / nf4 while training

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "AdapterRecord":
        """From an adapter's metadata (`read_adapter_meta`). Its "training" entry is free JSON for adapters
        saved through the Python API, so keys this record does not know are ignored."""
        training = meta.get("training") or {}
        if not isinstance(training, dict):
            raise UsageError(f"The adapter's 'training' entry must be a JSON object, got {type(training).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in training.items() if k in known and v is not None}
        record = cls(**values)
        if isinstance(record.max_length, bool) or not isinstance(record.max_length, int) or record.max_length < 1:
            raise UsageError(f"The adapter records max_length {record.max_length!r}; it must be a whole number >= 1.")
        return record


def check_label_words_mapping(mapping: Any, where: str) -> dict[str, list[str]]:
    """Label name -> a non-empty list of non-empty words (one word may be given as a string)."""
    if not isinstance(mapping, dict) or not mapping:
        raise UsageError(f"{where} must map label names to words, e.g. {{\"rotten\": [\"negative\"]}}; got "
                         f"{mapping!r}.")
    out = {}
    for label, words in mapping.items():
        words = [words] if isinstance(words, str) else words
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise UsageError(f"{where}: label {label!r} needs one or more non-empty words, got {words!r}.")
        out[str(label)] = [w.strip() for w in words]
    return out


def _choice(option: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{option} {value!r} is not one of {', '.join(choices)}.")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _at_least_one(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {value!r}.")
