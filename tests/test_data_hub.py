"""Hub tasks, on local files of the hub's schema: columns mapped, splits chosen, failures explained."""

from __future__ import annotations

import functools
import json

import datasets
import pytest

from sktuning.data.registry import NAMED_TASKS, load_task
from sktuning.data.schema import REGRESSION, SEQUENCE, TOKEN


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
    data = load_task("sst2", data_files=files, loader=local_loader)
    assert data.label_names == ["negative", "positive"] and data.task == SEQUENCE and not data.pair
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
        load_task("sst2", data_files={"train": str(train), "validation": str(validation)}, loader=local_loader)


def test_mrpc_is_a_pair_task(tmp_path, local_loader):
    rows = [{"sentence1": f"a {i}", "sentence2": f"b {i}", "label": i % 2, "idx": i} for i in range(20)]
    files = {"train": write_jsonl(tmp_path / "train.jsonl", rows),
             "validation": write_jsonl(tmp_path / "validation.jsonl", rows[:4])}
    data = load_task("mrpc", data_files=files, loader=local_loader)
    assert data.pair and data.label_names == ["not_equivalent", "equivalent"]
    assert data.splits["test"].column_names == ["text", "text_pair", "label"]
    assert data.splits["test"][0] == {"text": "a 0", "text_pair": "b 0", "label": 0}


def test_stsb_is_regression_on_float_scores(tmp_path, local_loader):
    rows = [{"sentence1": f"a {i}", "sentence2": f"b {i}", "label": i / 4, "idx": i} for i in range(20)]
    files = {"train": write_jsonl(tmp_path / "train.jsonl", rows),
             "validation": write_jsonl(tmp_path / "validation.jsonl", rows[:3])}
    data = load_task("stsb", data_files=files, loader=local_loader)
    assert data.task == REGRESSION and data.label_names == [] and data.metrics == ["pearson", "spearman"]
    assert data.splits["test"]["label"] == [0.0, 0.25, 0.5]
    assert data.splits["train"].features["label"].dtype == "float32"


def test_mnli_tests_on_validation_matched(tmp_path, local_loader):
    def rows(tag, n):
        return [{"premise": f"{tag} p {i}", "hypothesis": f"{tag} h {i}", "label": i % 3, "idx": i} for i in range(n)]

    files = {"train": write_jsonl(tmp_path / "train.jsonl", rows("train", 60)),
             "validation_matched": write_jsonl(tmp_path / "matched.jsonl", rows("matched", 5)),
             "validation_mismatched": write_jsonl(tmp_path / "mismatched.jsonl", rows("mismatched", 5))}
    data = load_task("mnli", data_files=files, loader=local_loader)
    assert data.label_names == ["entailment", "neutral", "contradiction"] and data.pair
    assert data.splits["test"]["text"] == [f"matched p {i}" for i in range(5)]
    assert len(data.splits["validation"]) == 3


def test_snli_drops_examples_without_gold_label(tmp_path, local_loader):
    rows = [{"premise": f"p {i}", "hypothesis": f"h {i}", "label": i % 3 if i % 5 else -1} for i in range(30)]
    files = {s: write_jsonl(tmp_path / f"{s}.jsonl", rows) for s in ("train", "validation", "test")}
    data = load_task("snli", data_files=files, loader=local_loader)
    assert len(data.splits["test"]) == 24 and min(data.splits["test"]["label"]) == 0


def test_conll2003_maps_ner_tags(tmp_path, local_loader):
    rows = [{"id": "0", "tokens": ["EU", "rejects", "German", "call"], "pos_tags": [22, 42, 16, 21],
             "chunk_tags": [11, 21, 11, 12], "ner_tags": [3, 0, 7, 0]},
            {"id": "1", "tokens": ["Peter", "Blackburn"], "pos_tags": [22, 22], "chunk_tags": [11, 12],
             "ner_tags": [1, 2]}]
    files = {s: write_jsonl(tmp_path / f"{s}.jsonl", rows) for s in ("train", "validation", "test")}
    data = load_task("conll2003", data_files=files, loader=local_loader)
    assert data.task == TOKEN and data.metrics[0] == "seqeval_f1"
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

    data = load_task("conll2003", loader=loader)
    assert data.label_names == names and data.splits["test"][0]["tags"] == [1, 2]
    assert calls == [{}, {"revision": "refs/convert/parquet"}]


def test_hub_unreachable_is_a_clear_error():
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    with pytest.raises(ValueError, match=r"(?s)unreachable.*rt-polarity.*load_files"):
        load_task("cola", loader=offline)


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown task 'imdb'.*rt-polarity.*sst2.*conll2003"):
        load_task("imdb")


def test_every_task_is_described():
    for name, spec in NAMED_TASKS.items():
        assert spec.name == name and spec.source in ("bundled", "hub") and spec.description
        assert spec.task in (SEQUENCE, TOKEN, REGRESSION)
        assert (spec.sizes is not None) == (spec.source == "bundled")


