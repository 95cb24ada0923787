"""Tables of text: CSV, TSV and JSON (lines or an array), read strictly, each row with the line it came
from, so that an error can name it. Needs no `datasets`: `sktune predict` reads its inputs here.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import csv
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
CONLL_SUFFIXES = (".conll", ".txt")


def file_kind(path: Path) -> str:
    if not path.is_file():
        raise UsageError(f"File {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return "table"
    if suffix in CONLL_SUFFIXES:
        return "conll"
    raise UsageError(f"Unknown file type {suffix or '(none)'!r} for {path}: use .csv, .tsv or .jsonl/.json (text "
                     "classification, regression) or .conll/.txt (token classification, 'token ... tag' lines).")


@contextmanager
def _utf8(path: Path) -> Iterator[None]:
    try:
        yield
    except UnicodeDecodeError as err:
        raise UsageError(f"{path} is not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8.") from None


def read_text(path: Path) -> str:
    with _utf8(path):
        return path.read_text(encoding="utf-8-sig")


def table_rows(path: Path) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
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
                raise UsageError(f"The row on line {last + 1} of {path} is not valid CSV ({err}): a cell that starts "
                                 "with '\"' must end with '\"', with any '\"' inside it doubled; or save the file as "
                                 ".tsv, which is read unquoted.") from None
            return list(reader.fieldnames or []), rows
    text = read_text(path)
    if text.lstrip().startswith("["):  # a JSON array of objects
        try:
            records = [(f"record {i + 1}", r) for i, r in enumerate(json.loads(text))]
        except json.JSONDecodeError as err:
            raise UsageError(f"{path} is not valid JSON ({err}).") from None
    else:
        records = []
        for number, line in enumerate(text.split("\n"), 1):  # not splitlines: JSON may hold a raw U+2028
            if line.strip():
                try:
                    records.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise UsageError(f"Line {number} of {path} is not valid JSON ({err}).") from None
    columns: dict[str, None] = {}
    for where, record in records:
        if not isinstance(record, dict):
            raise UsageError(f"{where} of {path} is not a JSON object with named fields.")
        columns.update(dict.fromkeys(record))
    return list(columns), records


def column(path: Path, columns: list[str], rows: list[tuple[str, dict]], name: str, option: str) -> list[Any]:
    if name not in columns:
        raise UsageError(f"{path} has no column {name!r} (columns: {', '.join(map(str, columns)) or 'none'}); "
                         f"pass {option}= (--{option.replace('_', '-')}) to name the right one.")
    return [row.get(name) for _, row in rows]


def texts_of(path: Path, rows: list[tuple[str, dict]], values: list[Any], name: str) -> list[str]:
    """The column's values as strings; empty ones are refused (dropping them would hide a broken file)."""
    texts = ["" if v is None else v if isinstance(v, str) else json.dumps(v) for v in values]
    empty = [rows[i][0] for i, t in enumerate(texts) if not t.strip()]
    if empty:
        shown = ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else "")
        raise UsageError(f"{path} has {len(empty)} row(s) with an empty {name!r} ({shown}): fill them in or "
                         "remove them.")
    return texts


def read_table(path: str | os.PathLike, text_column: str = "text",
               text_pair_column: str | None = None) -> list[dict[str, str]]:
    """Inputs to predict on: `{"text": ...}` (and `"text_pair"`) per row of a CSV, TSV or JSON file."""
    path = Path(path)
    if file_kind(path) != "table":
        raise UsageError(f"{path} is not a table: give a .csv, .tsv or .jsonl/.json file.")
    columns, rows = table_rows(path)
    result = [{"text": t} for t in texts_of(path, rows, column(path, columns, rows, text_column, "text_column"),
                                           text_column)]
    if text_pair_column:
        pairs = texts_of(path, rows, column(path, columns, rows, text_pair_column, "text_pair_column"),
                       text_pair_column)
        for row, pair in zip(result, pairs):
            row["text_pair"] = pair
    return result
