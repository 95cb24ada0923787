"""The Python prediction API: batched, dynamically padded, optionally length-sorted."""

import logging

import pytest
import torch
from tokenizers import normalizers
from conftest import tiny_backbone, tiny_tokenizer

from sktuning import SKTuningConfig, get_sk_model, predict  # the documented import
from sktuning.data.encoding import InputEncoder
from sktuning.inference.prediction import predict_rows

TEXTS = ["w7 w8", "w9 w10 w11 w12 w13 w14", "w15", "w16 w17 w18", "w19 w20 w21 w22"]


def model_for(**kw):
    torch.manual_seed(0)
    return get_sk_model(tiny_backbone("llama"), tiny_tokenizer(), SKTuningConfig(text="w5 w6", **kw)).eval()


def test_predictions_do_not_depend_on_batching_or_sorting():
    model = model_for(num_labels=3, label_names=["a", "b", "c"])
    one_by_one = predict(model, tiny_tokenizer(), TEXTS, batch_size=1, sort_by_length=False)
    batched = predict(model, tiny_tokenizer(), TEXTS, batch_size=4, sort_by_length=True)
    assert [r["text"] for r in batched.records] == TEXTS
    for a, b in zip(one_by_one.records, batched.records):
        assert a["label"] == b["label"] and a["label"] in "abc"
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
        assert sum(a["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert batched.examples_per_second > 0


def test_merged_model_predicts_the_same():
    model = model_for(num_labels=2)
    with torch.no_grad():
        model.semantic.adapter.up.normal_()
    want = predict(model, tiny_tokenizer(), TEXTS).records
    got = predict(model.merge(), tiny_tokenizer(), TEXTS).records
    assert [r["label"] for r in got] == [r["label"] for r in want]


def test_token_multilabel_and_regression_records():
    tags = predict(model_for(task="token-classification", num_labels=2, label_names=["N", "V"]), tiny_tokenizer(),
                   ["w7 w8 w9"]).records[0]
    assert tags["tokens"] == ["w7", "w8", "w9"] and len(tags["tags"]) == 3
    multi = predict(model_for(num_labels=3, multi_label=True), tiny_tokenizer(), ["w7"]).records[0]
    assert set(multi["labels"]) <= {"0", "1", "2"} and len(multi["probabilities"]) == 3
    reg = predict(model_for(task="regression", num_labels=1), tiny_tokenizer(), ["w7"]).records[0]
    assert isinstance(reg["prediction"], float)
    with pytest.raises(ValueError, match="empty"):
        predict(model_for(), tiny_tokenizer(), ["w7", " "])


def test_each_tag_goes_to_its_word_even_where_a_word_has_no_sub_token(caplog):
    model = model_for(task="token-classification", num_labels=3, label_names=["A", "B", "C"])
    dropping = tiny_tokenizer()
    dropping.backend_tokenizer.normalizer = normalizers.Replace("\u200b", "")  # as BERT's drops U+200B
    with caplog.at_level(logging.WARNING):
        got = predict(model, dropping, ["w10 \u200b w11 w12"]).records[0]
    want = predict(model, dropping, ["w10 w11 w12"]).records[0]["tags"]  # the same sub-tokens
    assert got["tokens"] == ["w10", "\u200b", "w11", "w12"]
    assert got["tags"] == [want[0], None, want[1], want[2]] and None not in want
    assert "truncated" not in caplog.text
    cut = predict(model, tiny_tokenizer(), ["w7 w8 w9 w10 w11"], max_length=3).records[0]
    assert cut["tokens"] == ["w7", "w8", "w9", "w10", "w11"] and cut["tags"][3:] == [None, None]
    assert None not in cut["tags"][:3]
    assert "1 of 1 rows are longer than 3 tokens and were truncated" in caplog.text


def test_long_inputs_are_cut_to_what_a_learned_position_table_leaves_after_the_text():
    torch.manual_seed(0)
    model = get_sk_model(tiny_backbone("gpt2"), tiny_tokenizer(), SKTuningConfig(text="w5 w6", num_labels=2)).eval()
    room = model.max_input_tokens  # 128 positions less the text's
    long = " ".join(f"w{5 + i % 90}" for i in range(200))
    records = predict(model, tiny_tokenizer(), [long, "w7 w8"]).records  # max_length 128 > room
    assert room < 128 and len(records) == 2


def test_predict_rows_keeps_input_order():
    torch.manual_seed(0)
    model = get_sk_model(tiny_backbone("llama"), tiny_tokenizer(), SKTuningConfig(text="w5 w6", num_labels=2))
    encoder = InputEncoder.for_model(model, tiny_tokenizer(), 32)
    rows = encoder.encode([{"text": " ".join(f"w{10 + (3 * i + j) % 80}" for j in range(1 + i % 6)), "label": i % 2}
                           for i in range(40)])
    predictions, references, probabilities = predict_rows(model, encoder, rows, batch_size=7)
    assert references == [r["labels"] for r in rows]
    assert all(abs(sum(p) - 1) < 1e-5 for p in probabilities)
    one_by_one = [predict_rows(model, encoder, [r], 1)[0][0] for r in rows[:10]]
    assert one_by_one == predictions[:10]
