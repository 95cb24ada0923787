"""The training loop: learns, is deterministic, resumes exactly, keeps the best adapter."""


import pytest
import torch
from conftest import tiny_backbone, tiny_tokenizer

from sktuning import SKTuningConfig, get_sk_model
from sktuning.core.tasks import task_named
from sktuning.data.encoding import InputEncoder
from sktuning.inference.prediction import predict_rows
from sktuning.training import Trainer, TrainingArguments


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
    encoder = InputEncoder(tok, model.semantic.text_input_ids.tolist(), task_named("sequence-classification"), 32)
    train = encoder.encode(toy_rows(256, 1))
    val = encoder.encode(toy_rows(64, 2))
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
    assert (tmp_path / "best" / "model.safetensors").is_file()
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
    assert state.losses == full.state.losses and len(state.losses) == 30  # every step's loss, the resumed ones too
    assert len(state.loss_seconds) == 30 and state.loss_seconds == sorted(state.loss_seconds)


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




def test_resuming_an_early_stopped_run_does_not_train_again(tmp_path):
    first = make_trainer(tmp_path, steps=200, patience=1)
    state = first.train()
    assert state.step < 200
    again = make_trainer(tmp_path, steps=200, patience=1)
    resumed = again.train(resume=True)
    assert resumed.step == state.step and resumed.best_step == state.best_step
    want, got = adapter_tensors(first.model), adapter_tensors(again.model)
    assert all(torch.equal(want[k], got[k]) for k in want)








def test_patience_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="patience must be >= 1.*leave it out to never stop early"):
        TrainingArguments(output_dir=str(tmp_path), steps=10, patience=0)


def former_bench_loop(model, encoder, train, val, steps, batch_size, eval_every, lr, seed, warmup_ratio=0.06):
    """The benchmark's own loop before its runs went through Trainer (0.1.0's `bench.run_one`), kept as
    the reference the committed benchmark numbers were made with."""
    import math

    from transformers import get_linear_schedule_with_warmup

    from sktuning.core.metrics import compute_metrics

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * steps), steps)
    generator = torch.Generator().manual_seed(seed)
    order, curve, best, best_state = [], [], -math.inf, None
    for step in range(1, steps + 1):
        if len(order) < batch_size:
            order += torch.randperm(len(train), generator=generator).tolist()
        batch = encoder.collate([train[i] for i in order[:batch_size]])
        del order[:batch_size]
        batch.pop("word_ids", None)
        model.train()
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % eval_every == 0 or step == steps:
            predictions, references, _ = predict_rows(model, encoder, val, 64)
            score = compute_metrics(["accuracy"], predictions, references)["accuracy"]
            curve.append((step, score))
            if score > best:
                best, best_state = score, [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, kept in zip(params, best_state):
            p.copy_(kept)
    return curve, params


@pytest.mark.parametrize("method", ["sk-prefix-lowrank", "head-only"])
def test_the_benchs_options_reproduce_its_former_loop_bit_for_bit(method):
    from sktuning.bench.baselines import build_method
    from sktuning.bench.runner import BENCH_WEIGHT_DECAY

    tok = tiny_tokenizer()
    config = SKTuningConfig(text="w5 w6", num_labels=2, pooling="mean")
    text_ids = [2, 5, 6]
    encoder = InputEncoder(tok, text_ids, task_named("sequence-classification"), 32)
    train, val = encoder.encode(toy_rows(50, 1)), encoder.encode(toy_rows(24, 2))  # 50 rows: batches cross epochs

    def build():
        torch.manual_seed(3)  # the bench seeds before it builds the model
        return build_method(method, tiny_backbone("llama"), text_ids, config)

    curve, reference = former_bench_loop(build(), encoder, train, val, steps=15, batch_size=8, eval_every=5,
                                         lr=1e-2, seed=3)
    model = build()
    args = TrainingArguments(output_dir=None, steps=15, batch_size=8, eval_batch_size=64, learning_rate=1e-2,
                             weight_decay=BENCH_WEIGHT_DECAY, eval_every=5, seed=3, progress=False,
                             data_order="stream", seed_at_start=False, group_by_length=False)
    trainer = Trainer(model, encoder, train, val, ["accuracy"], ["no", "yes"], args)
    state = trainer.train()
    assert [(h["step"], h["validation"]["accuracy"]) for h in state.history] == curve
    for ours, theirs in zip(trainer.params, reference):
        assert torch.equal(ours, theirs)
    assert len(trainer.step_seconds) == 15 and trainer.output is None


def test_a_nan_score_is_never_the_best_not_even_the_first(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, steps=40)
    scores = iter([float("nan"), 0.5, float("nan"), 0.25])
    monkeypatch.setattr(trainer, "evaluate", lambda rows: {"accuracy": next(scores)})
    state = trainer.train()
    assert (state.best_metric, state.best_step) == (0.5, 20)
    assert state.evals_without_improvement == 2  # the NaN at step 30 and the lower score at 40


def padding(trainer, steps) -> float:
    """Padded tokens over real tokens in the batches of `steps`."""
    real = padded = 0
    for step in steps:
        lengths = [len(trainer.train_rows[i]["input_ids"]) for i in trainer.batch_indices(step)]
        real, padded = real + sum(lengths), padded + max(lengths) * len(lengths)
    return padded / real


@pytest.mark.parametrize("data_order", ["epoch", "stream"])
def test_length_grouped_batches_hold_the_same_rows_with_less_padding(tmp_path, data_order):
    from sktuning.training.loop import GROUP_WINDOW

    grouped = make_trainer(tmp_path, data_order=data_order)
    plain = make_trainer(tmp_path, data_order=data_order, group_by_length=False)
    # a window's batches are its plain batches' rows, regrouped: the same rows, each once
    if data_order == "epoch":
        windows = [range(0, grouped.steps_per_epoch)]  # 16 steps per epoch, inside one window
        assert grouped.steps_per_epoch < GROUP_WINDOW
    else:
        windows = [range(0, GROUP_WINDOW), range(GROUP_WINDOW, 2 * GROUP_WINDOW)]
    for window in windows:
        rows = [i for s in window for i in grouped.batch_indices(s)]
        assert sorted(rows) == sorted(i for s in window for i in plain.batch_indices(s))
        assert all(len(grouped.batch_indices(s)) == 16 for s in window)
    steps = range(windows[0].start, windows[-1].stop)
    assert padding(grouped, steps) < padding(plain, steps) - 0.1
    # and the batches still come in a random order of lengths, not shortest first
    widths = [max(len(grouped.train_rows[i]["input_ids"]) for i in grouped.batch_indices(s)) for s in windows[0]]
    assert widths != sorted(widths)


def test_length_grouped_order_is_a_function_of_seed_and_step(tmp_path):
    sequential = make_trainer(tmp_path)
    want = [sequential.batch_indices(s) for s in range(40)]  # 2.5 epochs
    jumping = make_trainer(tmp_path)
    assert [jumping.batch_indices(s) for s in reversed(range(40))] == want[::-1]
    other_seed = make_trainer(tmp_path, seed=1)
    assert [other_seed.batch_indices(s) for s in range(40)] != want
    assert want[:16] != want[16:32]  # each epoch its own order


def test_scoring_runs_merged_gives_the_unmerged_scores_and_leaves_the_model_unmerged(tmp_path, monkeypatch):
    import sktuning.training.loop as loop

    trainer = make_trainer(tmp_path, steps=10)
    trainer.train()
    seen = []

    def spy(model, *args, **kwargs):
        seen.append(model.merged)
        return predict_rows(model, *args, **kwargs)

    monkeypatch.setattr(loop, "predict_rows", spy)
    predictions, _, probabilities = trainer.predict(trainer.eval_rows)
    assert seen == [True] and not trainer.model.merged
    plain_predictions, _, plain_probabilities = predict_rows(trainer.model, trainer.encoder, trainer.eval_rows)
    assert predictions == plain_predictions
    assert torch.allclose(torch.tensor(probabilities), torch.tensor(plain_probabilities), atol=1e-6)
