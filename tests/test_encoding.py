"""InputEncoder: the special-token rule, sentence pairs and their truncation, the rows it marks as cut."""

import pytest
from conftest import tiny_tokenizer

from sktuning.core.tasks import task_named
from sktuning.data.encoding import InputEncoder


def test_pair_inputs_keep_a_separator_when_the_text_took_the_start_token():
    tok = tiny_tokenizer()
    tok.add_special_tokens({"sep_token": "<sep>"})
    encoder = InputEncoder(tok, [2, 7], task_named("sequence-classification"), 32)  # text starts with <s>
    ids = encoder.encode_rows({"text": ["w8 w9"], "text_pair": ["w10"], "label": [0]})["input_ids"][0]
    assert ids == [8, 9, 4, 10]  # <sep> (id 4) between the two texts, no second <s>


@pytest.mark.parametrize("separator", [False, True])
def test_a_long_pair_is_cut_longer_text_first_so_the_second_text_survives(separator):
    tok = tiny_tokenizer()
    if separator:
        tok.add_special_tokens({"sep_token": "<sep>"})
    encoder = InputEncoder(tok, [2, 7], task_named("sequence-classification"), 8)  # text took <s>: no special tokens
    premise = " ".join(f"w{i}" for i in range(10, 20))
    rows = {"text": [premise, premise, "w30"], "text_pair": ["w50 w51 w52", "w60 w61 w62 w63 w64 w65 w66 w67 w68 w69",
                                                           "w70 w71"], "label": [0, 1, 0]}
    out = encoder.encode_rows(rows)
    sep = [4] if separator else []  # without a separator token the texts are joined by a newline, no token here
    budget = 8 - len(sep)
    assert out["input_ids"][0] == list(range(10, 10 + budget - 3)) + sep + [50, 51, 52]  # the premise gives way
    half = budget // 2  # two long texts: cut alike (the second keeps the odd token)
    assert out["input_ids"][1] == list(range(10, 10 + half)) + sep + list(range(60, 60 + budget - half))
    assert out["input_ids"][2] == [30] + sep + [70, 71]
    assert out["truncated"] == [True, True, False]


def test_encoder_marks_exactly_the_rows_it_cut():
    encoder = InputEncoder(tiny_tokenizer(), [7], task_named("sequence-classification"), max_length=4)
    rows = {"text": ["w8 w9", "w8 w9 w10", "w8 w9 w10 w11 w12", "w8 w9 w10 w11"], "label": [0, 1, 0, 1]}
    out = encoder.encode_rows(rows)
    assert [len(ids) for ids in out["input_ids"]] == [3, 4, 4, 4]  # <s> counts: the tokenizer adds it
    assert out["truncated"] == [False, False, True, True]
