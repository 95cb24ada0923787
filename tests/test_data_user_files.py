"""Your own files: CSV, TSV, JSON lines and CoNLL load the same way, or fail naming the line."""

from __future__ import annotations

import json

import pytest

from sktuning.data.schema import REGRESSION, SEQUENCE, SPLITS, TOKEN
from sktuning.data.user_files import load_files, read_table


# -- user files ------------------------------------------------------------------------------------
def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_round_trip_with_carved_splits(tmp_path):
    rows = "".join(f'"great, film {i}",pos\n' if i % 2 else f"dull film {i},neg\n" for i in range(40))
    data = load_files(write(tmp_path / "reviews.csv", "text,label\n" + rows))
    assert data.name == "reviews" and data.label_names == ["neg", "pos"] and data.task == SEQUENCE
    assert {s: len(data.splits[s]) for s in SPLITS} == {"train": 32, "validation": 4, "test": 4}
    everything = [t for s in SPLITS for t in data.splits[s]["text"]]
    assert sorted(everything) == sorted([f"great, film {i}" if i % 2 else f"dull film {i}" for i in range(40)])
    for s in SPLITS:  # stratified: both classes everywhere
        assert sorted(set(data.splits[s]["label"])) == [0, 1]
    assert "neg or pos" in data.default_text


def test_tsv_pair_round_trip_keeps_quotes(tmp_path):
    train = write(tmp_path / "train.tsv", 'q\ta\tgold\n"Why?" he said\tbecause\t1\nwho\tme\t0\n')
    data = load_files(train, train, train, text_column="q", text_pair_column="a", label_column="gold",
                            label_names=["no", "yes"])
    assert data.pair and data.splits["test"][0] == {"text": '"Why?" he said', "text_pair": "because", "label": 1}


def test_jsonl_round_trip_and_regression(tmp_path):
    rows = [{"text": f"t{i}", "label": i / 10} for i in range(20)]
    train = write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    data = load_files(train, train, train, task="regression")
    assert data.task == REGRESSION and data.label_names == [] and data.metrics == ["pearson", "spearman"]
    assert data.splits["test"]["label"] == pytest.approx([i / 10 for i in range(20)])
    with pytest.raises(ValueError, match="real numbers.*task='regression'"):
        load_files(train)


def test_integer_labels_sort_numerically_and_ids_are_accepted_with_names(tmp_path):
    train = write(tmp_path / "train.jsonl", "".join(json.dumps({"text": f"t{i}", "label": i % 11}) + "\n"
                                                   for i in range(33)))
    data = load_files(train, train, train)
    assert data.label_names == [str(i) for i in range(11)] and data.splits["test"]["label"][:3] == [0, 1, 2]
    named = load_files(train, train, train, label_names=[f"c{i}" for i in range(11)])
    assert named.splits["test"]["label"][:3] == [0, 1, 2]


def test_conll_round_trip(tmp_path):
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
    train = write(tmp_path / "train.conll", text)
    data = load_files(train, train, train)
    assert data.task == TOKEN and data.label_names == ["B-ORG", "B-PER", "O"]
    assert data.metrics == ["seqeval_f1", "token_accuracy"]
    assert data.splits["test"].to_dict() == {"tokens": [["EU", "rejects"], ["Peter"]], "tags": [[0, 2], [1]]}


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"File .*nope\.csv does not exist"):
        load_files(str(tmp_path / "nope.csv"))


def test_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown file type '\.xlsx'.*\.csv.*\.conll"):
        load_files(write(tmp_path / "data.xlsx", "x"))


def test_missing_column_lists_the_columns(tmp_path):
    train = write(tmp_path / "train.csv", "sentence,label\nhello,a\n")
    with pytest.raises(ValueError, match=r"no column 'text' \(columns: sentence, label\); pass text_column="):
        load_files(train)


def test_labels_outside_the_label_set(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,pos\nb,neg\n")
    test = write(tmp_path / "test.csv", "text,label\nc,pos\nd,neutral\ne,\n")
    with pytest.raises(ValueError, match=r"test\.csv has labels outside the label set \['neg', 'pos'\]: "
                                         r"'neutral' \(line 3\), \(empty\) \(line 4\)"):
        load_files(train, train, test)
    with pytest.raises(ValueError, match=r"train\.csv has labels outside.*'neg' \(line 3\)"):
        load_files(train, train, train, label_names=["pos", "other"])
    with pytest.raises(ValueError, match=r"'5' \(line 2\)"):
        load_files(write(tmp_path / "ids.csv", "text,label\na,5\n"), label_names=["x", "y"])


def test_empty_text_rows_are_refused(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,x\n  ,y\nb,x\n,y\n")
    with pytest.raises(ValueError, match=r"train\.csv has 2 row\(s\) with an empty 'text' \(line 3, line 5\)"):
        load_files(train)
    jsonl = write(tmp_path / "train.jsonl", '{"text": "a", "label": 0}\n{"text": null, "label": 1}\n')
    with pytest.raises(ValueError, match=r"1 row\(s\) with an empty 'text' \(line 2\)"):
        load_files(jsonl)


def test_conll_line_without_tag(tmp_path):
    train = write(tmp_path / "train.conll", "EU B-ORG\nrejects\n")
    with pytest.raises(ValueError, match=r"Line 2 of .*train\.conll has a token but no tag \('rejects'\)"):
        load_files(train)


def test_mixed_file_kinds_and_wrong_task(tmp_path):
    table = write(tmp_path / "train.csv", "text,label\na,x\n")
    conll = write(tmp_path / "dev.conll", "a O\n")
    with pytest.raises(ValueError, match="Mixed file types"):
        load_files(table, conll)
    with pytest.raises(ValueError, match="token classification reads CoNLL files"):
        load_files(table, task="token-classification")


def test_read_table_for_prediction_inputs(tmp_path):
    path = write(tmp_path / "inputs.jsonl", '{"q": "first", "a": "x"}\n{"q": "second", "a": "y"}\n')
    assert read_table(path, "q", "a") == [{"text": "first", "text_pair": "x"},
                                                {"text": "second", "text_pair": "y"}]


def test_json_array_file(tmp_path):
    path = write(tmp_path / "train.json", json.dumps([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]))
    data = load_files(path, path, path)
    assert data.splits["test"].to_dict() == {"text": ["a", "b"], "label": [0, 1]}


def test_single_class_non_numeric_regression_and_non_utf8_are_refused(tmp_path):
    same = write(tmp_path / "same.csv", "text,label\na,x\nb,x\n")
    with pytest.raises(ValueError, match=r"same\.csv has 1 distinct label\(s\) \['x'\]"):
        load_files(same, same, same)
    scores = write(tmp_path / "scores.csv", "text,label\na,0.5\nb,high\n")
    with pytest.raises(ValueError, match=r"scores\.csv has regression labels that are not finite numbers: 'high' "
                                         r"\(line 3\)"):
        load_files(scores, scores, scores, task="regression")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncafé,x\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv is not UTF-8 text"):
        load_files(str(latin))


def test_an_unclosed_quote_in_a_csv_is_refused_not_swallowing_rows(tmp_path):
    # A lenient reader would read the quote to the end of the file: 3 rows instead of 4, silently.
    broken = write(tmp_path / "broken.csv", 'text,label\ngood,pos\nfine,neg\n"unclosed,pos\nlast,neg\n')
    with pytest.raises(ValueError, match=r"The row on line 4 of .*broken\.csv is not valid CSV \(unexpected end of "
                                         r"data\).*save the file as \.tsv"):
        load_files(broken)
    stray = write(tmp_path / "stray.csv", 'text,label\n"quoted" tail,pos\n')
    with pytest.raises(ValueError, match=r"The row on line 2 of .*stray\.csv is not valid CSV"):
        load_files(stray)
    header = write(tmp_path / "header.csv", '"text,label\na,pos\n')
    with pytest.raises(ValueError, match=r"The row on line 1 of .*header\.csv is not valid CSV"):
        load_files(header)
    quoted = write(tmp_path / "quoted.csv", 'text,label\n"a, ""b""",pos\nsaid "hi",neg\nc,pos\nd,neg\n')
    assert sorted(t for s in load_files(quoted).splits.values() for t in s["text"]) == \
        ['a, "b"', "c", "d", 'said "hi"']

