"""Hub tasks (GLUE, SNLI, CoNLL-2003, WikiANN), loaded with `datasets.load_dataset` for users who are
online; `data_files=` feeds local files of the same schema instead (how the tests read them).
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import csv
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sktuning.data.bundled import BUNDLED_TASKS
from sktuning.core.tasks import task_named
from sktuning.data.schema import REGRESSION, SEQUENCE, SPLITS, TOKEN, TaskData, TaskSpec, datasets, task_features
from sktuning.data.splits import split_off
from sktuning.data.tables import table_rows


def _local_dataset(data_files: dict[str, str], loader: Callable[..., Any]) -> datasets.DatasetDict:
    """Local files of a hub data set's schema (for tests, or a downloaded copy)."""
    for split, file in data_files.items():
        if not Path(file).is_file():
            raise UsageError(f"The {split} file {file} does not exist.")
    suffixes = {Path(f).suffix.lower() for f in data_files.values()}
    builders = {".json": ("json", {}), ".jsonl": ("json", {}), ".csv": ("csv", {}),
                ".tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE}), ".parquet": ("parquet", {})}
    if len(suffixes) != 1 or next(iter(suffixes)) not in builders:
        raise UsageError(f"data_files must all be one of {', '.join(builders)}, got {sorted(suffixes)}.")
    suffix = suffixes.pop()
    if suffix == ".csv":  # pandas, under datasets' CSV builder, lets an unclosed quote swallow later rows
        for file in data_files.values():
            table_rows(Path(file))  # strict: refuses such a file, naming the line
    builder, options = builders[suffix]
    return loader(builder, data_files=dict(data_files), **options)


def _hub_dataset(path: str, config: str | None, loader: Callable[..., Any]) -> datasets.DatasetDict:
    try:
        try:
            return loader(path, config)
        except Exception as err:  # an older data set whose main branch is a loading script
            if "scripts are no longer supported" not in str(err):
                raise
            return loader(path, config, revision="refs/convert/parquet")
    except Exception as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(f"Could not load {path}{'/' + config if config else ''} from the Hugging Face Hub "
                         f"({reason}); the hub is unreachable or the data set is not there. Offline, use a bundled "
                         f"task ({', '.join(BUNDLED_TASKS)}) or your own files (load_files, or data_files= with the same "
                         "columns).") from None


def _hub_task(name: str, description: str, path: str, config: str | None, task: str, columns: dict[str, str],
              label_names: list[str], metrics: list[str], default_text: str, splits: dict[str, str]) -> TaskSpec:
    """A TaskSpec whose loader maps a hub data set's `columns` to ours.

    `splits` names the hub split behind each of ours; a missing validation split is carved from train
    (5%, at most 2,000 rows, seed 0, stratified), since GLUE's test labels are hidden.
    """
    label_column = next(hub for hub, ours in columns.items() if ours in ("label", "tags"))

    def load(data_files: dict[str, str] | None = None, loader: Callable[..., Any] | None = None) -> TaskData:
        loader = loader or datasets.load_dataset
        raw = _local_dataset(data_files, loader) if data_files else _hub_dataset(path, config, loader)
        feature = raw[splits["train"]].features.get(label_column)
        feature = getattr(feature, "feature", feature)  # token tags: a list of ClassLabel
        names = list(getattr(feature, "names", None) or label_names)
        pair = "text_pair" in columns.values()
        kind = task_named(task)
        out = {}
        for ours, hub in splits.items():
            if hub not in raw:
                raise UsageError(f"{name}: no {hub!r} split in the data (splits: {', '.join(raw)}).")
            data = raw[hub]
            missing = [c for c in columns if c not in data.column_names]
            if missing:
                raise UsageError(f"{name}: the {hub} split has no column(s) {missing} "
                                 f"(columns: {', '.join(data.column_names)}).")
            data = data.select_columns(list(columns)).rename_columns(columns)
            if kind.one_class_per_input:  # SNLI marks examples without a gold label -1; GLUE's hidden test labels too
                data = data.filter(lambda labels: [label >= 0 for label in labels], batched=True,
                                   input_columns="label")
            out[ours] = data.cast(task_features(task, pair))
        if "validation" not in out:
            train = out["train"]
            size = max(1, min(2_000, round(0.05 * len(train))))
            labels = train["label"] if kind.one_class_per_input else None
            rest, carved = split_off(np.arange(len(train)), size, labels)
            out["train"], out["validation"] = train.select(rest), train.select(carved)
        return TaskData(name, task, names if kind.has_classes else [], metrics, default_text,
                        datasets.DatasetDict({s: out[s] for s in SPLITS}), pair)

    return TaskSpec(name, task, description, "hub", None, load)


GLUE = {"train": "train", "test": "validation"}
ALL_SPLITS = {s: s for s in SPLITS}
NLI = ["entailment", "neutral", "contradiction"]
CONLL_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
SENTIMENT_TEXT = "Classify the sentiment of this movie review as positive or negative. Review:"
NLI_TEXT = "Does the premise entail the hypothesis, contradict it, or neither? Premise and hypothesis:"
NER_TEXT = "Tag each word as part of the name of a person, organisation, location or other entity, or none. Sentence:"


def hub_tasks() -> list[TaskSpec]:
    pair = {"sentence1": "text", "sentence2": "text_pair", "label": "label"}
    acc = ["accuracy", "macro_f1"]
    return [
        _hub_task("sst2", "GLUE SST-2: movie-review sentence sentiment", "nyu-mll/glue", "sst2", SEQUENCE,
                  {"sentence": "text", "label": "label"}, ["negative", "positive"], acc, SENTIMENT_TEXT, GLUE),
        _hub_task("cola", "GLUE CoLA: grammatical acceptability", "nyu-mll/glue", "cola", SEQUENCE,
                  {"sentence": "text", "label": "label"}, ["unacceptable", "acceptable"], ["mcc", "accuracy"],
                  "Is this sentence grammatically acceptable English? Sentence:", GLUE),
        _hub_task("mrpc", "GLUE MRPC: paraphrase of news sentences", "nyu-mll/glue", "mrpc", SEQUENCE, pair,
                  ["not_equivalent", "equivalent"], acc, "Do these two sentences mean the same thing? Sentences:",
                  GLUE),
        _hub_task("qqp", "GLUE QQP: duplicate Quora questions", "nyu-mll/glue", "qqp", SEQUENCE,
                  {"question1": "text", "question2": "text_pair", "label": "label"}, ["not_duplicate", "duplicate"],
                  acc, "Do these two questions ask the same thing? Questions:", GLUE),
        _hub_task("stsb", "GLUE STS-B: sentence similarity, 0 to 5", "nyu-mll/glue", "stsb", REGRESSION, pair, [],
                  ["pearson", "spearman"], "Rate how similar in meaning these two sentences are, from 0 to 5. "
                  "Sentences:", GLUE),
        _hub_task("mnli", "GLUE MNLI: entailment across genres (test: validation_matched)", "nyu-mll/glue", "mnli",
                  SEQUENCE, {"premise": "text", "hypothesis": "text_pair", "label": "label"}, NLI, ["accuracy"],
                  NLI_TEXT, {"train": "train", "test": "validation_matched"}),
        _hub_task("qnli", "GLUE QNLI: does the sentence answer the question", "nyu-mll/glue", "qnli", SEQUENCE,
                  {"question": "text", "sentence": "text_pair", "label": "label"}, ["entailment", "not_entailment"],
                  ["accuracy"], "Does the sentence contain the answer to the question? Question and sentence:", GLUE),
        _hub_task("rte", "GLUE RTE: textual entailment", "nyu-mll/glue", "rte", SEQUENCE, pair,
                  ["entailment", "not_entailment"], ["accuracy"],
                  "Does the first sentence entail the second? Sentences:", GLUE),
        _hub_task("snli", "SNLI: entailment on image captions", "stanfordnlp/snli", None, SEQUENCE,
                  {"premise": "text", "hypothesis": "text_pair", "label": "label"}, NLI, ["accuracy"], NLI_TEXT,
                  ALL_SPLITS),
        _hub_task("conll2003", "CoNLL-2003 English named entities (IOB2)", "eriktks/conll2003", None, TOKEN,
                  {"tokens": "tokens", "ner_tags": "tags"}, CONLL_TAGS, ["seqeval_f1", "token_accuracy"], NER_TEXT,
                  ALL_SPLITS),
        _hub_task("wikiann-en", "WikiANN English named entities (IOB2)", "unimelb-nlp/wikiann", "en", TOKEN,
                  {"tokens": "tokens", "ner_tags": "tags"}, CONLL_TAGS[:7], ["seqeval_f1", "token_accuracy"],
                  NER_TEXT, ALL_SPLITS),
    ]
