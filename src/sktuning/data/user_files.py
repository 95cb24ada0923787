"""Your own data files: CSV, TSV, JSON lines (text classification, regression) or CoNLL (token tasks).

Read strictly: a broken row, an empty text or a label outside the label set is refused with the
line it is on, never dropped silently.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import math
import re
from pathlib import Path
from typing import Any

from sktuning.core.tasks import FILE_TASK_TYPES, task_named
from sktuning.data.schema import SEQUENCE, SPLITS, TOKEN, TaskData, datasets, task_features
from sktuning.data.splits import carve
from sktuning.data.tables import column, file_kind, read_table, read_text, table_rows, texts_of

__all__ = ["load_files", "read_table"]


def _read_conll(path: Path) -> list[tuple[str, list[str], list[str]]]:
    """(where, tokens, tags) per sentence: one `token ... tag` line per token, blank lines between."""
    sentences, tokens, tags, start = [], [], [], 1
    for number, line in enumerate(read_text(path).split("\n") + [""], 1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if tokens:
                sentences.append((f"line {start}", tokens, tags))
            tokens, tags, start = [], [], number + 1
            continue
        if len(fields) < 2:
            raise UsageError(f"Line {number} of {path} has a token but no tag ({line.strip()!r}): each line needs "
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
        raise UsageError(f"The labels of {path} are real numbers (e.g. {names[0]}): pass task='regression' for a "
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
        raise UsageError(f"{path} has labels outside the label set {names}: {shown}. Fix the file or pass "
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
        raise UsageError(f"{path} has regression labels that are not finite numbers: {shown}.")
    return labels


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
    kinds = {split: file_kind(path) for split, path in paths.items()}
    if len(set(kinds.values())) > 1:
        raise UsageError(f"Mixed file types {sorted(set(map(str, paths.values())))}: give all splits as tables "
                         "(.csv/.tsv/.jsonl/.json) or all as CoNLL (.conll/.txt).")
    kind = kinds["train"]
    if task is not None and task not in FILE_TASK_TYPES:
        raise UsageError(f"Unknown task {task!r}: choose {', '.join(map(repr, FILE_TASK_TYPES[:-1]))} or "
                         f"{FILE_TASK_TYPES[-1]!r}.")
    task = task or (TOKEN if kind == "conll" else SEQUENCE)
    kind_of_task = task_named(task)
    if kind_of_task.word_level != (kind == "conll"):
        raise UsageError(f"task={task!r} does not fit {paths['train']}: token classification reads CoNLL files "
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
            columns, rows = table_rows(path)
            values = {"text": texts_of(path, rows, column(path, columns, rows, text_column, "text_column"),
                                     text_column)}
            if text_pair_column:
                values["text_pair"] = texts_of(path, rows, column(path, columns, rows, text_pair_column,
                                                                 "text_pair_column"), text_pair_column)
            labels = column(path, columns, rows, label_column, "label_column")
            raw[split] = (path, [w for w, _ in rows], values, labels)
        if not raw[split][1]:
            raise UsageError(f"{path} holds no examples.")

    if not kind_of_task.has_classes:
        names: list[str] = []
    elif label_names is not None:
        names = [str(n) for n in label_names]
        if len(set(names)) != len(names) or len(names) < 2:
            raise UsageError(f"label_names must be at least 2 distinct names, got {label_names!r}.")
    else:
        names = _derive_label_names(paths["train"], [_label_key(k) for k in raw["train"][3]])
        if len(names) < 2:
            raise UsageError(f"{paths['train']} has {len(names)} distinct label(s) {names}: classification needs at least two "
                             "(or pass label_names= with them all).")

    columns_by_split = {}
    for split, (path, wheres, values, labels) in raw.items():
        if kind == "conll":
            tag_wheres = [w for w, tags in zip(wheres, values["tags"]) for _ in tags]
            ids = iter(_label_ids(path, tag_wheres, [_label_key(k) for k in labels], names))
            values["tags"] = [[next(ids) for _ in tags] for tags in values["tags"]]
        elif not kind_of_task.has_classes:
            values["label"] = _float_labels(path, wheres, labels)
        else:
            values["label"] = _label_ids(path, wheres, [_label_key(k) for k in labels], names)
        columns_by_split[split] = values

    for split in ("test", "validation"):  # test first, so a given validation file never shrinks train twice
        if split not in columns_by_split:
            train_columns = columns_by_split["train"]
            stratify = train_columns["label"] if kind_of_task.one_class_per_input else None
            columns_by_split["train"], columns_by_split[split] = carve(train_columns, 0.1, stratify)

    pair = text_pair_column is not None
    features = task_features(task, pair)
    splits = datasets.DatasetDict({s: datasets.Dataset.from_dict(columns_by_split[s], features=features)
                                   for s in SPLITS})
    return TaskData(paths["train"].stem, task, names, kind_of_task.default_metrics(names),
                    default_text or kind_of_task.default_text(names, pair), splits, pair)

