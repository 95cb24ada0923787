"""The training loop: learns, is deterministic, resumes exactly, keeps the best adapter."""


import datasets
import pytest
import torch
from conftest import tiny_backbone, tiny_tokenizer

from sktuning import SKTuningConfig, get_sk_model
from sktuning.encoding import InputEncoder
from sktuning.trainer import Trainer, TrainingArguments, predict_rows


def toy_rows(n: int, seed: int) -> list[dict]:
    """Label 1 when the sentence contains w7: learnable by a tiny model in a few dozen steps."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        words = [f"w{int(i)}" for i in torch.randint(10, 100, (int(torch.randint(3, 8, (1,), generator=gen)),),
                                                     generator=gen)]
        label = int(torch.rand(1, generator=gen) < 0.5)
        if label:
            words[int(torch.randint(0, len(words), (1,), generator=gen))] = "w7"
        rows.append({"text": " ".join(words), "label": label})
    return rows


def make_trainer(tmp_path, steps=40, seed=0, **kw):
    tok = tiny_tokenizer()
    model = get_sk_model(tiny_backbone("llama"), tok, SKTuningConfig(mode="prefix", text="w5 w6", num_labels=2, pooling="mean"))
    encoder = InputEncoder(tok, model.semantic.text_input_ids.tolist(), "sequence-classification", 32)
    train = encoder.encode(datasets.Dataset.from_list(toy_rows(256, 1))).to_list()
    val = encoder.encode(datasets.Dataset.from_list(toy_rows(64, 2))).to_list()
    args = TrainingArguments(output_dir=str(tmp_path), steps=steps, batch_size=16, learning_rate=1e-2,
                             eval_every=10, save_every=10, seed=seed, progress=False, **kw)
    return Trainer(model, encoder, train, val, ["accuracy"], ["no", "yes"], args)


def adapter_tensors(model):
    return {k: v.clone() for k, v in model.trainable_state_dict().items()}


def test_training_learns_the_toy_task_and_keeps_the_best(tmp_path):
    trainer = make_trainer(tmp_path, steps=60)
    before = trainer.evaluate(trainer.eval_rows)["accuracy"]
    state = trainer.train()
    after = trainer.evaluate(trainer.eval_rows)["accuracy"]
    assert after >= 0.9 > before
    assert state.best_metric == max(h["validation"]["accuracy"] for h in state.history)
    assert after == state.best_metric  # the best adapter is the one left in the model
    assert (tmp_path / "best" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "checkpoints" / "latest").read_text() == "step-0000060"
    assert [p.name for p in (tmp_path / "checkpoints").glob("step-*")] == ["step-0000060"]


def test_same_seed_same_adapter_bit_for_bit(tmp_path):
    a = make_trainer(tmp_path / "a", steps=20)
    a.train()
    b = make_trainer(tmp_path / "b", steps=20)
    b.train()
    c = make_trainer(tmp_path / "c", steps=20, seed=1)
    c.train()
    ta, tb, tc = adapter_tensors(a.model), adapter_tensors(b.model), adapter_tensors(c.model)
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert any(not torch.equal(ta[k], tc[k]) for k in ta)


def test_resume_continues_exactly(tmp_path):
    full = make_trainer(tmp_path / "full", steps=30)
    full.train()
    first = make_trainer(tmp_path / "cut", steps=30)
    first.total_steps = 20  # an interrupted run: it stops after the step-20 checkpoint
    first.train()
    resumed = make_trainer(tmp_path / "cut", steps=30)
    state = resumed.train(resume=True)
    assert state.step == 30
    want, got = adapter_tensors(full.model), adapter_tensors(resumed.model)
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert [h["step"] for h in state.history] == [10, 20, 30]


def test_resume_without_checkpoint_and_corrupt_checkpoint_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="Nothing to resume"):
        make_trainer(tmp_path / "none").train(resume=True)
    trainer = make_trainer(tmp_path / "bad", steps=10)
    trainer.train()
    target = tmp_path / "bad" / "checkpoints" / "step-0000010" / "optimizer.safetensors"
    target.write_bytes(target.read_bytes()[:50])
    with pytest.raises(ValueError, match="unreadable.*truncated"):
        make_trainer(tmp_path / "bad", steps=20).train(resume=True)


def test_early_stopping_stops_after_patience(tmp_path):
    trainer = make_trainer(tmp_path, steps=200, patience=2)
    trainer.args.learning_rate = 1e-2
    state = trainer.train()
    assert state.step < 200
    scores = [h["validation"]["accuracy"] for h in state.history]
    assert max(scores[-2:]) <= max(scores[:-2])


def test_predict_rows_keeps_input_order(tmp_path):
    trainer = make_trainer(tmp_path)
    rows = trainer.eval_rows
    predictions, references, probabilities = predict_rows(trainer.model, trainer.encoder, rows, batch_size=7)
    assert references == [r["labels"] for r in rows]
    assert all(abs(sum(p) - 1) < 1e-5 for p in probabilities)
    one_by_one = [predict_rows(trainer.model, trainer.encoder, [r], 1)[0][0] for r in rows[:10]]
    assert one_by_one == predictions[:10]


def test_resuming_an_early_stopped_run_does_not_train_again(tmp_path):
    first = make_trainer(tmp_path, steps=200, patience=1)
    state = first.train()
    assert state.step < 200
    again = make_trainer(tmp_path, steps=200, patience=1)
    resumed = again.train(resume=True)
    assert resumed.step == state.step and resumed.best_step == state.best_step
    want, got = adapter_tensors(first.model), adapter_tensors(again.model)
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_pair_inputs_keep_a_separator_when_the_text_took_the_start_token():
    tok = tiny_tokenizer()
    tok.add_special_tokens({"sep_token": "<sep>"})
    encoder = InputEncoder(tok, [2, 7], "sequence-classification", 32)  # text starts with <s>
    ids = encoder.encode_rows({"text": ["w8 w9"], "text_pair": ["w10"], "label": [0]})["input_ids"][0]
    assert ids == [8, 9, 4, 10]  # <sep> (id 4) between the two texts, no second <s>



@pytest.mark.parametrize("separator", [False, True])
def test_a_long_pair_is_cut_longer_text_first_so_the_second_text_survives(separator):
    tok = tiny_tokenizer()
    if separator:
        tok.add_special_tokens({"sep_token": "<sep>"})
    encoder = InputEncoder(tok, [2, 7], "sequence-classification", 8)  # text took <s>: no special tokens
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
    encoder = InputEncoder(tiny_tokenizer(), [7], "sequence-classification", max_length=4)
    rows = {"text": ["w8 w9", "w8 w9 w10", "w8 w9 w10 w11 w12", "w8 w9 w10 w11"], "label": [0, 1, 0, 1]}
    out = encoder.encode_rows(rows)
    assert [len(ids) for ids in out["input_ids"]] == [3, 4, 4, 4]  # <s> counts: the tokenizer adds it
    assert out["truncated"] == [False, False, True, True]


def test_patience_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="patience must be >= 1.*leave it out to never stop early"):
        TrainingArguments(output_dir=str(tmp_path), steps=10, patience=0)
