"""The benchmark harness: every method trains through one loop and the report states the claims."""

import dataclasses
import json
import platform

import pytest
import torch

from sktuning.bench.settings import DEFAULT_LR, METHODS
from sktuning.bench import BenchSettings, Suite, run_one
from sktuning.bench.suite import rescaled_seconds
from sktuning.core.errors import UsageError


@pytest.fixture(scope="module")
def tiny_settings(tiny_model_dir) -> BenchSettings:
    return BenchSettings(model=tiny_model_dir, task="rt-polarity", steps=4, batch_size=4, eval_every=2,
                         max_train=32, max_eval=16, max_test=16, max_length=16)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "prompt-tuning-text"])  # needs a tokenizer folder
def test_every_method_trains_and_reports(tiny_settings, method):
    record = run_one(tiny_settings, method, 1e-3, 0)
    assert [step for step, _ in record["curve"]] == [2, 4]
    predictions, references = record["test_predictions"], record["test_references"]
    assert len(predictions) == len(references) == 16 and record["trainable"] > 0
    assert record["test"]["accuracy"] == sum(map(int.__eq__, predictions, references)) / 16
    if method == "full-ft":
        assert record["trainable"] == record["total"]
    elif method != "head-only":
        assert record["trainable"] < record["total"]  # the backbone stays frozen


def test_prompt_tuning_text_starts_from_exactly_the_tokens_sk_reads(tmp_path):
    """PEFT's TEXT init tokenizes with special tokens and cuts to m: a BERT-style [CLS] ... [SEP] tokenizer
    would start from [CLS] and lose the last word."""
    from conftest import tiny_backbone, tiny_tokenizer
    from tokenizers import processors

    from sktuning import SKTuningConfig
    from sktuning.bench.baselines import build_method
    from sktuning.core.model import tokenize_text

    tokenizer = tiny_tokenizer()
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<sep> $A </s>", special_tokens=[("<sep>", 4), ("</s>", 3)])  # no BOS: SK takes no special token
    tokenizer.bos_token = None
    tokenizer.save_pretrained(tmp_path)
    text_ids = tokenize_text(tokenizer, "w7 w8 w9")
    assert text_ids == [7, 8, 9] and tokenizer("w7 w8 w9")["input_ids"][:3] == [4, 7, 8]
    backbone = tiny_backbone("llama")
    config = SKTuningConfig(text="w7 w8 w9", task="sequence-classification", num_labels=2)
    model = build_method("prompt-tuning-text", backbone, text_ids, config, tokenizer_path=str(tmp_path))
    start = model.backbone.prompt_encoder["default"].embedding.weight
    assert torch.equal(start, backbone.get_input_embeddings().weight[text_ids]) and start.requires_grad


@pytest.mark.parametrize("arch", ["llama", "gpt2", "bert"])
def test_prefix_tuning_text_is_sk_prefix_embedding_built_by_peft(arch):
    """Both train the text's own keys and values in every layer: at initialisation the two models are
    one function (unpadded inputs; PEFT counts positions over padding too)."""
    from conftest import random_ids, tiny_backbone

    from sktuning import SKTuningConfig
    from sktuning.bench.baselines import build_method

    text_ids = [5, 9, 17, 33]
    config = SKTuningConfig(text="t", task="sequence-classification", num_labels=3, pooling="mean")
    torch.manual_seed(0)
    ours = build_method("sk-prefix-embedding", tiny_backbone(arch), text_ids, config).eval()
    torch.manual_seed(0)
    theirs = build_method("prefix-tuning-text", tiny_backbone(arch), text_ids, config).eval()
    theirs.head.load_state_dict(ours.head.state_dict())
    ids = random_ids(2, 7)
    mask = torch.ones_like(ids)
    torch.testing.assert_close(theirs(input_ids=ids, attention_mask=mask).logits,
                               ours(input_ids=ids, attention_mask=mask).logits, rtol=1e-5, atol=1e-5)
    trainable = sum(p.numel() for p in theirs.parameters() if p.requires_grad) - sum(
        p.numel() for p in theirs.head.parameters())
    assert trainable == ours.semantic.adapter.num_parameters()  # the same parameters, counted alike


def test_prefix_tuning_text_and_sk_prefix_embedding_train_alike_step_by_step():
    """Not only the same function at initialisation: given the same head and batches (right-padded),
    AdamW moves the two along the same losses. Their runs in the suite still differ at one seed: PEFT
    draws the random prefix it then overwrites, so the head starts from other random numbers."""
    from conftest import tiny_backbone

    from sktuning import SKTuningConfig
    from sktuning.bench.baselines import build_method

    config = SKTuningConfig(text="t", task="sequence-classification", num_labels=3, pooling="mean")
    ours = build_method("sk-prefix-embedding", tiny_backbone("llama"), [5, 9, 17, 33], config)
    theirs = build_method("prefix-tuning-text", tiny_backbone("llama"), [5, 9, 17, 33], config)
    theirs.head.load_state_dict(ours.head.state_dict())
    before = {i: p.detach().clone() for i, p in enumerate(ours.semantic.parameters())}
    models = {m: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2) for m in (ours, theirs)}
    generator = torch.Generator().manual_seed(1)
    for _ in range(12):
        ids, labels = torch.randint(10, 90, (8, 9), generator=generator), torch.randint(0, 3, (8,), generator=generator)
        mask = (torch.arange(9) < torch.tensor([9, 8, 7, 6] * 2)[:, None]).long()  # right padding
        losses = []
        for model, optimizer in models.items():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(input_ids=ids, attention_mask=mask).logits, labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    moved = [(p - before[i]).abs().max().item() for i, p in enumerate(ours.semantic.parameters()) if p.requires_grad]
    assert min(moved) > 1e-3  # the text's keys and values trained, not only the head


@pytest.mark.parametrize("method", ["lora", "head-only", "full-ft"])
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_baselines_without_virtual_tokens_count_positions_over_real_tokens_as_sk_does(method, arch):
    from conftest import padded_batch, tiny_backbone

    from sktuning import SKTuningConfig
    from sktuning.bench.baselines import build_method

    config = SKTuningConfig(text="t", task="sequence-classification", num_labels=3, pooling="last")
    model = build_method(method, tiny_backbone(arch), [5, 6], config).eval()
    ids, mask, rows = padded_batch([5, 3], "left")
    logits = model(input_ids=ids, attention_mask=mask).logits
    for b, row in enumerate(rows):  # left padding must not shift the real tokens' positions
        alone = model(input_ids=row[None], attention_mask=torch.ones(1, len(row), dtype=torch.long)).logits
        torch.testing.assert_close(logits[b], alone[0])


def test_baselines_without_virtual_tokens_pass_token_type_ids_on():
    from conftest import random_ids, tiny_backbone

    from sktuning import SKTuningConfig
    from sktuning.bench.baselines import build_method

    config = SKTuningConfig(text="t", task="sequence-classification", num_labels=3, pooling="mean")
    model = build_method("head-only", tiny_backbone("bert"), [5, 6], config).eval()
    ids, mask = random_ids(1, 6), torch.ones(1, 6, dtype=torch.long)
    second = torch.tensor([[0, 0, 0, 1, 1, 1]])  # a sentence pair's segments
    plain = model(input_ids=ids, attention_mask=mask).logits
    paired = model(input_ids=ids, attention_mask=mask, token_type_ids=second).logits
    assert not torch.allclose(plain, paired)


def test_report_has_the_table_the_plot_and_the_claims(tiny_settings, tmp_path, in_process):
    methods = ["sk-prefix-scale", "prefix-tuning", "lora"]
    suite = Suite(tiny_settings, methods, seeds=[0, 1], grid=False, output=tmp_path)
    suite.run()
    report = suite.report("sktune bench --test").read_text()
    name = "tiny-llama0-rt-polarity"
    assert (tmp_path / f"{name}.png").stat().st_size > 1000
    for method in methods:
        assert f"| {method} |" in report
    assert "Higher accuracy than prompt / prefix / P-tuning" in report and "Fewer parameters than LoRA" in report
    assert report.index("## SK against its text-initialised counterpart") < report.index("## The paper's claims")
    assert "best SK on validation sk-prefix-scale" in report and "best baseline on validation prefix-tuning" in report
    assert "(no pair of these methods has finished runs yet)" in report  # no text-initialised baseline ran
    runs = [json.loads(line) for line in (tmp_path / f"{name}.runs.jsonl").read_text().splitlines()]
    assert len(runs) == 6
    Suite(tiny_settings, methods, seeds=[0, 1], grid=False, output=tmp_path).run()  # a rerun skips finished runs
    assert len((tmp_path / f"{name}.runs.jsonl").read_text().splitlines()) == 6


@pytest.mark.subprocess
def test_interrupted_suite_reports_what_is_done_and_resumes_in_phase_order(tiny_settings, tmp_path):
    methods = ["sk-prompt-scale", "head-only"]
    suite = Suite(tiny_settings, methods, seeds=[0, 1], grid=True, output=tmp_path)
    assert suite.planned("first") == [("sk-prompt-scale", 3e-3, 0), ("head-only", 3e-3, 0)]
    suite.run(["first"])  # as if the suite were stopped after its first phase
    report = suite.report("sktune bench").read_text()
    assert "Partial: 6 of 8 planned runs are still to do" in report and "| sk-prompt-scale |" in report
    resumed = Suite(tiny_settings, methods, seeds=[0, 1], grid=True, output=tmp_path)
    assert len(resumed.done) == 2 and len(resumed.missing()) == 6
    assert {lr for m, lr, _ in resumed.planned("grid") if m == "head-only"} == {1e-3, 3e-3, 1e-2}


def test_runs_with_another_budget_or_cut_short_are_not_reused(tiny_settings, tmp_path, in_process):
    suite = Suite(tiny_settings, ["head-only"], seeds=[0], grid=False, output=tmp_path)
    suite.run()
    line = suite.log.read_text()
    record = json.loads(line)
    assert record["settings"]["steps"] == tiny_settings.steps and record["seconds"] > 0
    suite.log.write_text(line + line[: len(line) // 2])  # a crash in the middle of appending a line
    resumed = Suite(tiny_settings, ["head-only"], seeds=[0, 1], grid=False, output=tmp_path)
    assert len(resumed.done) == 1
    resumed.run()  # the next run's line starts on a line of its own
    assert len(Suite(tiny_settings, ["head-only"], seeds=[0, 1], grid=False, output=tmp_path).done) == 2
    other = BenchSettings(**{**record["settings"], "steps": tiny_settings.steps + 2})
    stale = Suite(other, ["head-only"], seeds=[0], grid=False, output=tmp_path)
    assert stale.ignored == 2 and stale.missing() == [("head-only", 3e-3, 0)]
    with pytest.raises(ValueError, match="no finished run with these settings"):
        stale.report("sktune bench")
    with pytest.raises(ValueError, match="head-only has no finished seed-0 run to choose a learning rate from; "
                                         "run the 'first' or 'grid' phase before 'seeds'"):
        Suite(other, ["head-only"], seeds=[0, 1], grid=False, output=tmp_path).run(["seeds"])


@pytest.mark.subprocess
def test_cli_runs_in_phases_reports_only_on_request_and_rejects_bad_settings(tiny_model_dir, tmp_path, capsys):
    from sktuning.cli import main

    common = ["bench", "--pairs", f"{tiny_model_dir}:rt-polarity", "--methods", "head-only", "--seeds", "0", "1",
              "--set", "steps=2", "batch_size=4", "eval_every=2", "max_train=16", "max_eval=8", "max_test=8",
              "max_length=16", "--output", str(tmp_path)]
    assert main(common + ["--no-grid"]) == 0
    report = tmp_path / "tiny-llama0-rt-polarity.md"
    assert "| head-only |" in report.read_text() and "Partial" not in report.read_text()
    report.unlink()
    assert main(common + ["--report-only"]) == 0  # with the grid: 2 of its rates were never run
    text = report.read_text()
    assert "Partial: 2 of 4 planned runs are still to do" in text and "--report-only" not in text
    summary = (tmp_path / "summary.md").read_text()
    assert "| [tiny-llama0-rt-polarity](tiny-llama0-rt-polarity.md) | 2 of 4 |" in summary
    assert summary.index("## In one table") < summary.index("## The paper's claims")
    assert "| paper: Higher accuracy than prompt / prefix / P-tuning | — |" in summary  # no SK method ran
    assert main(common[:-2] + ["--set", "stepz=2", "--output", str(tmp_path)]) == 2
    assert "--set 'stepz=2': use NAME=VALUE" in capsys.readouterr().err


def test_set_values_take_the_settings_own_kind():
    from sktuning.cli.bench import _setting

    assert _setting(False, "false", "x") is False and _setting(True, "0", "x") is False  # not bool("false")
    assert _setting(False, "True", "x") is True and _setting(None, "false", "x", switch=True) is False
    assert _setting(120, "64", "x") == 64 and isinstance(_setting(0.06, "0.1", "x"), float)
    assert _setting(None, "7", "x") == 7 and _setting(None, "0.5", "x") == 0.5
    for current, value, said in ((False, "maybe", "true or false"), (120, "1.5", "a whole number"),
                                 (None, "many", "a number")):
        with pytest.raises(UsageError, match=said):
            _setting(current, value, f"name={value}")


def _run(method, seed, curve, test, metric="accuracy"):
    return {"method": method, "lr": DEFAULT_LR[method], "seed": seed, "curve": curve, "test": {metric: test},
            "metric": metric, "best_validation": max(s for _, s in curve), "trainable": 10, "total": 100,
            "step_seconds": 0.1, "peak_rss_mib": 1.0, "settings": {"max_test": 600}}


def _suite_with(settings, tmp_path, runs):
    suite = Suite(settings, sorted({r["method"] for r in runs}), seeds=[0, 1, 2], grid=False, output=tmp_path)
    suite.done = {(r["method"], r["lr"], r["seed"]): r for r in runs}
    return suite


def test_steps_to_the_best_baselines_mark_are_counted_on_seed_mean_curves(tiny_settings, tmp_path):
    """Per seed, the best baseline would usually never reach its own seed-mean final score (one seed ends
    below the mean), and the claim would hold by construction; on the mean curve it reaches it by its end."""
    runs = [_run("prompt-tuning", 0, [(10, 0.6), (20, 0.70)], 0.7), _run("prompt-tuning", 1, [(10, 0.6), (20, 0.80)], 0.8),
            _run("sk-prompt-scale", 0, [(10, 0.76), (20, 0.7)], 0.7), _run("sk-prompt-scale", 1, [(10, 0.7), (20, 0.8)], 0.8)]
    _, rows, target = _suite_with(tiny_settings, tmp_path, runs).table()
    assert target == pytest.approx(0.75) and rows["prompt-tuning"]["to_target"] == 20
    # SK's seed 0 passes 0.75 at step 10, but its mean curve (0.73, then 0.75) only at step 20: a tie
    assert rows["sk-prompt-scale"]["to_target"] == 20
    claims = _suite_with(tiny_settings, tmp_path, runs).judged()[1]
    # per seed: SK reaches 0.75 at 10 and 20, prompt tuning at never and 20: the seeds overlap
    assert claims[1][1:] == ("inconclusive", "mark 0.750; per seed, sk-prompt-scale: 10, 20; prompt-tuning: never, 20")


def test_report_survives_nan_and_negative_scores_and_one_seed(tiny_settings, tmp_path):
    runs = [_run("prefix-tuning", 0, [(10, float("nan")), (20, 0.1)], 0.1, "mcc"),
            _run("sk-prefix-scale", 0, [(10, -0.4), (20, -0.2)], -0.2, "mcc")]
    suite = _suite_with(tiny_settings, tmp_path, runs)
    _, rows, target = suite.table()
    assert target == 0.1 and rows["prefix-tuning"]["to95"] == 20 and rows["prefix-tuning"]["std"] is None
    assert rows["sk-prefix-scale"]["to95"] == 20  # -0.2 is within 5% of a best of -0.2; -0.4 is not
    report = suite.report("sktune bench").read_text()
    assert "| sk-prefix-scale | -0.200 ± — | 1 |" in report and "one seed on a side: its seed noise is not counted" in report
    assert "no test-noise term (not a proportion)" in report  # MCC is not a proportion
    runs[0]["curve"] = [(10, float("nan")), (20, float("nan"))]
    _, rows, target = _suite_with(tiny_settings, tmp_path, runs).table()
    assert target is None and rows["prefix-tuning"]["to95"] is None and rows["sk-prefix-scale"]["to_target"] is None


def test_step_time_spread_names_the_method_whose_runs_differ_most(tiny_settings, tmp_path):
    suite = Suite(tiny_settings, ["lora", "head-only"], seeds=[0, 1], grid=True, output=tmp_path)
    assert suite.step_time_spread() is None  # nothing run yet
    suite.done = {("lora", 1e-3, 0): {"step_seconds": 0.5}, ("lora", 3e-3, 0): {"step_seconds": 0.8},
                  ("head-only", 1e-3, 0): {"step_seconds": 0.2}, ("head-only", 3e-3, 1): {"step_seconds": 0.5}}
    assert suite.step_time_spread() == ("head-only", 0.2, 0.5)  # 2.5x beats lora's 1.6x
    suite.done = {("lora", 1e-3, 0): {"step_seconds": 0.5}}
    assert suite.step_time_spread() is None  # one run has no spread


def test_seconds_left_uses_each_methods_own_wall_time(tiny_settings, tmp_path):
    suite = Suite(tiny_settings, ["lora", "head-only"], seeds=[0, 1], grid=False, output=tmp_path)
    assert len(suite.missing()) == 4 and suite.seconds_left() == (0.0, 4)  # nothing to go by yet
    lora, probe = DEFAULT_LR["lora"], DEFAULT_LR["head-only"]
    suite.done = {("lora", lora, 0): {"seconds": 100.0, "best_validation": 0.8},
                  ("head-only", probe, 0): {"best_validation": 0.7}}
    # lora's second seed at lora's time; head-only has no timed run, so the median of all of them
    assert suite.seconds_left() == (200.0, 0)
    suite.done[("head-only", probe, 0)]["seconds"] = 10.0
    assert suite.seconds_left() == (110.0, 0)


def test_seconds_left_goes_by_each_methods_latest_runs(tiny_settings, tmp_path):
    """A suite spans sessions on machines of different speeds: the runs that finished last say most
    about the next ones."""
    suite = Suite(tiny_settings, ["lora"], seeds=[0, 1, 2], grid=True, output=tmp_path)
    rates = suite.rates("lora")
    early = [10.0, 11.0, 12.0]  # a fast machine: the first three grid runs, in the order they finished
    suite.done = {("lora", lr, 0): {"seconds": t, "best_validation": 0.5} for lr, t in zip(rates, early)}
    suite.done[("lora", rates[0], 1)] = {"seconds": 30.0}  # a slower machine since
    suite.done[("lora", rates[1], 1)] = {"seconds": 40.0}
    missing = len(suite.missing())
    assert missing >= 1
    assert suite.seconds_left() == (pytest.approx(missing * 30.0), 0)  # median of 12, 30, 40; not of all five


def test_a_longer_budget_is_estimated_from_the_short_runs_rescaled(tiny_settings, tmp_path):
    short = {"settings": {"steps": 120, "eval_every": 30, "max_eval": 300, "max_test": 600},
             "seconds": 100.0, "step_seconds": 0.5, "test_references": [0] * 500, "best_validation": 0.8}
    # 60 s of training; 40 s over 4 x 300 + 500 scored examples
    long = dataclasses.replace(tiny_settings, steps=480, eval_every=40, max_eval=300, max_test=100_000)
    expected = 480 * 0.5 + 40 / 1700 * (12 * 300 + 500)  # the test examples the short run had
    assert rescaled_seconds(short, long) == pytest.approx(expected)
    assert rescaled_seconds(short, dataclasses.replace(long, steps=120, eval_every=30, max_test=600)) == \
        pytest.approx(100.0)  # its own budget: its own time
    suite = Suite(long, ["lora", "head-only"], seeds=[0], grid=False, output=tmp_path,
                  reference={("lora", 1e-3, 0): short})
    assert suite.seconds_left() == (pytest.approx(expected), 1)  # head-only: nothing to go by
    suite = Suite(long, ["lora", "head-only"], seeds=[0, 1], grid=False, output=tmp_path,
                  reference={("lora", 1e-3, 0): short})
    suite.done = {("lora", DEFAULT_LR["lora"], 0): {"seconds": 30.0, "best_validation": 0.8}}
    # lora's own run here beats its rescaled one; head-only goes by the runs here
    assert suite.seconds_left() == (pytest.approx(3 * 30.0), 0)


def test_a_grid_grows_past_the_edge_its_best_rate_sits_at_and_marks_what_is_left(tiny_settings, tmp_path):
    suite = Suite(tiny_settings, ["head-only"], seeds=[0, 1], grid=True, output=tmp_path)

    def finish(lr, score):
        suite.done[("head-only", lr, 0)] = {**_run("head-only", 0, [(10, score)], score), "lr": lr}

    for lr, score in ((1e-3, 0.5), (3e-3, 0.6)):
        finish(lr, score)
    assert suite.rates("head-only") == [1e-3, 3e-3, 1e-2] and suite.grid_edge("head-only") is None  # not done
    finish(1e-2, 0.7)  # the best rate is the top one: the grid grows by one rate there
    assert suite.rates("head-only") == [1e-3, 3e-3, 1e-2, 3e-2] and ("head-only", 3e-2, 0) in suite.missing()
    assert suite.grid_edge("head-only") is None
    finish(3e-2, 0.65)  # worse: 1e-2 is now inside the grid, which stops growing
    assert suite.rates("head-only") == [1e-3, 3e-3, 1e-2, 3e-2] and suite.chosen_lr("head-only") == 1e-2
    assert suite.grid_edge("head-only") is None
    finish(3e-2, 0.8)
    finish(1e-1, 0.9)  # best at the top again: a third extension
    assert suite.rates("head-only")[-3:] == [3e-2, 1e-1, 3e-1] and suite.grid_edge("head-only") is None
    finish(3e-1, 0.92)  # still best at the top after three extensions: it stops and says so
    assert suite.rates("head-only")[-3:] == [3e-2, 1e-1, 3e-1] and suite.grid_edge("head-only") == "top"
    assert "| head-only | 0.920 ± — | 1 | 10 | 10.000 | 0.3 (top) |" in suite.report("sktune bench").read_text()
    finish(1e-3, 0.95)  # the bottom now: it grows downwards
    assert suite.rates("head-only")[0] == 3e-4 and suite.grid_edge("head-only") is None


def test_next_rate_walks_the_one_three_ten_ladder():
    from sktuning.bench.settings import next_rate

    assert [next_rate(r, up=True) for r in (1e-3, 3e-3, 1e-2, 1e-5)] == [3e-3, 1e-2, 3e-2, 3e-5]
    assert [next_rate(r, up=False) for r in (1e-3, 3e-3, 1e-2, 1e-4)] == [3e-4, 1e-3, 3e-3, 3e-5]


def test_format_duration():
    from sktuning.bench import format_duration

    assert [format_duration(s) for s in (0, 89, 3599, 3600, 3 * 3600 + 5 * 60 + 20)] == \
        ["0 min", "1 min", "1 h 00 min", "1 h 00 min", "3 h 05 min"]


def test_the_unrelated_text_ablation_waits_for_and_takes_the_default_adapters_rate(tiny_settings, tmp_path):
    suite = Suite(tiny_settings, ["sk-prefix-lowrank", "sk-prefix-unrelated"], seeds=[0, 1], grid=True,
                  output=tmp_path)
    assert suite.planned("first") == [("sk-prefix-lowrank", 3e-3, 0), ("sk-prefix-unrelated", None, 0)]
    assert suite.rates("sk-prefix-unrelated") == []  # the default adapter's grid is not done yet
    for lr, score in ((1e-3, 0.6), (3e-3, 0.7), (1e-2, 0.8)):
        record = _run("sk-prefix-lowrank", 0, [(10, score)], score)
        suite.done[("sk-prefix-lowrank", lr, 0)] = {**record, "lr": lr}
    assert suite.rates("sk-prefix-unrelated") == []  # 1e-2 is the top of the grid: the grid grows first
    record = _run("sk-prefix-lowrank", 0, [(10, 0.75)], 0.75)
    suite.done[("sk-prefix-lowrank", 3e-2, 0)] = {**record, "lr": 3e-2}
    assert suite.rates("sk-prefix-unrelated") == [1e-2] and suite.first_rate("sk-prefix-unrelated") == 1e-2
    assert ("sk-prefix-unrelated", 1e-2, 0) in suite.missing() and suite.grid_edge("sk-prefix-unrelated") is None
    no_grid = Suite(tiny_settings, ["sk-prefix-lowrank", "sk-prefix-unrelated"], seeds=[0], grid=False,
                    output=tmp_path)
    no_grid.done[("sk-prefix-lowrank", 3e-3, 0)] = suite.done[("sk-prefix-lowrank", 3e-3, 0)]
    assert no_grid.rates("sk-prefix-unrelated") == [3e-3]  # --no-grid: the default adapter's default rate


def test_the_ablations_train_what_they_say(tiny_settings):
    from transformers import AutoConfig

    frozen = run_one(tiny_settings, "sk-prefix-frozen", 1e-3, 0)
    default = run_one(tiny_settings, "sk-prefix-lowrank", 1e-3, 0)
    hidden = AutoConfig.from_pretrained(tiny_settings.model).hidden_size
    assert frozen["trainable"] == hidden * 2 + 2  # the linear head over 2 labels, nothing else
    assert default["trainable"] > frozen["trainable"]
    unrelated = run_one(tiny_settings, "sk-prefix-unrelated", 1e-3, 0)
    assert unrelated["trainable"] == default["trainable"]
    assert len(unrelated["text_ids"]) == len(default["text_ids"]) and unrelated["text_ids"] != default["text_ids"]
    assert default["text"] != unrelated["text"]


def test_an_ablation_whose_base_grid_is_missing_waits_with_a_warning_instead_of_stopping_the_suite(
        tiny_settings, tmp_path, monkeypatch, caplog):
    """`--methods sk-prefix-unrelated` alone before the default adapter's grid is done: nothing runs for
    it, the other methods' runs go on, and the warning names the method to add."""
    import sktuning.bench.suite as suite_module

    ran = []
    monkeypatch.setattr(suite_module, "subprocess_run",
                        lambda settings, method, lr, seed, log: ran.append((method, lr, seed)) or
                        {**_run(method, seed, [(10, 0.6)], 0.6), "lr": lr})
    suite = Suite(tiny_settings, ["head-only", "sk-prefix-unrelated"], seeds=[0, 1], grid=False, output=tmp_path)
    with caplog.at_level("WARNING", logger="sktuning"):
        suite.run()
    assert ran == [("head-only", DEFAULT_LR["head-only"], 0), ("head-only", DEFAULT_LR["head-only"], 1)]
    waits = [r.getMessage() for r in caplog.records if "waits for the grid of sk-prefix-lowrank" in r.getMessage()]
    assert len(waits) == 1 and "add sk-prefix-lowrank to --methods" in waits[0]


def test_the_unrelated_text_is_cut_or_repeated_to_the_task_texts_length():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from sktuning.bench.settings import UNRELATED_TEXT, unrelated_text_ids

    words = UNRELATED_TEXT.split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(dict.fromkeys(["<unk>"] + words))}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    assert tokenizer.decode(unrelated_text_ids(tokenizer, 5)) == " ".join(words[:5])
    long = unrelated_text_ids(tokenizer, len(words) + 3)  # longer than the text: it starts again
    assert len(long) == len(words) + 3 and long[len(words):] == long[:3]


def test_a_longer_budget_runs_each_method_at_the_rate_the_short_grid_chose(tiny_settings, tiny_model_dir, tmp_path,
                                                                            capsys):
    long = Suite(tiny_settings, ["head-only", "lora"], seeds=[0, 1], grid=True, output=tmp_path,
                 fixed_rates={"head-only": 1e-2, "lora": 3e-4})
    assert long.planned("first") == [("head-only", 1e-2, 0), ("lora", 3e-4, 0)]
    assert long.plan() == [("head-only", 1e-2, 0), ("lora", 3e-4, 0), ("head-only", None, 1), ("lora", None, 1)]
    from sktuning.cli import main

    empty = tmp_path / "short"
    empty.mkdir()
    assert main(["bench", "--pairs", f"{tiny_model_dir}:rt-polarity", "--methods", "head-only", "--steps", "4",
                 "--rates-from", str(empty), "--output", str(tmp_path / "long")]) == 2
    assert "no finished default-budget runs of head-only" in capsys.readouterr().err


def test_bench_ranks_the_methods_on_the_users_own_files(tiny_model_dir, data_dir, tmp_path, capsys,
                                                       in_process):
    from sktuning.cli import main

    files = ["--train", str(data_dir / "train.csv"), "--validation", str(data_dir / "validation.csv"),
             "--test", str(data_dir / "test.csv")]
    budget = ["--methods", "head-only", "sk-prefix-lowrank", "--no-grid", "--seeds", "0", "--set", "steps=2",
              "batch_size=4", "eval_every=2", "max_length=16", "--output", str(tmp_path)]
    assert main(["bench", "--model", tiny_model_dir, *files, *budget]) == 0
    report = (tmp_path / "tiny-llama0-train.md").read_text()
    assert "| head-only |" in report and "| sk-prefix-lowrank |" in report
    assert f"Machine: {platform.machine()}, {torch.get_num_threads()} CPU threads;" in report  # what the runs used
    runs = [json.loads(line) for line in (tmp_path / "tiny-llama0-train.runs.jsonl").read_text().splitlines()]
    assert {r["settings"]["train"] for r in runs} == {str(data_dir / "train.csv")}
    assert all(len(r["test_predictions"]) == 32 for r in runs)  # the whole test file: 32 rows
    assert main(["bench", "--pairs", f"{tiny_model_dir}:rt-polarity", *files, *budget]) == 2
    assert "Give --pairs, or --model with --task or your own files, not both." in capsys.readouterr().err
    assert main(["bench", "--methods", "cpt", "--output", str(tmp_path)]) == 2
    assert "CPTConfig refuses every task type but CAUSAL_LM" in capsys.readouterr().err


def test_runs_recorded_before_a_settings_field_existed_are_still_reused(tiny_settings):
    from dataclasses import asdict

    old = {k: v for k, v in asdict(tiny_settings).items() if v is not None}  # no own-data fields at all
    assert tiny_settings.same_as(old) and tiny_settings.same_as(asdict(tiny_settings))
    assert not tiny_settings.same_as({**old, "steps": tiny_settings.steps + 1})
    assert not tiny_settings.same_as({**old, "train": "mine.csv"})
    grouped = dataclasses.replace(tiny_settings, group_by_length=True)  # another training order: not reused
    assert not grouped.same_as(old) and grouped.same_as(asdict(grouped))


def test_the_bench_groups_batches_by_length_only_when_its_settings_say_so(tiny_settings, monkeypatch):
    import sktuning.training.loop as loop

    made = []
    arguments = loop.TrainingArguments
    monkeypatch.setattr(loop, "TrainingArguments", lambda **kw: made.append(arguments(**kw)) or made[-1])
    run_one(tiny_settings, "head-only", 1e-3, 0)
    run_one(dataclasses.replace(tiny_settings, group_by_length=True), "head-only", 1e-3, 0)
    assert [(a.group_by_length, a.data_order) for a in made] == [(False, "stream"), (True, "stream")]


@pytest.mark.subprocess
def test_ray_tasks_write_the_records_of_local_runs_and_a_crashed_worker_is_retried(tiny_settings, tmp_path,
                                                                                   monkeypatch):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from sktuning.bench.cluster import CRASH_ONCE, RayExecutor

    methods = ["head-only", "sk-prefix-lowrank"]
    local = Suite(tiny_settings, methods, seeds=[0], grid=False, output=tmp_path / "local")
    local.run()
    monkeypatch.setenv(CRASH_ONCE, str(tmp_path / "crashed"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)  # two workers, one CPU each
    try:
        remote = Suite(tiny_settings, methods, seeds=[0], grid=False, output=tmp_path / "ray")
        remote.run(executor=RayExecutor(cluster.address))
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert (tmp_path / "crashed").exists()  # one task's worker died, and Ray ran that task again
    assert remote.done.keys() == local.done.keys() and len(remote.log.read_text().splitlines()) == 2
    for key, record in local.done.items():
        assert remote.done[key]["test"] == record["test"]  # bit for bit
        assert remote.done[key]["test_predictions"] == record["test_predictions"]


def test_a_longer_budget_reports_each_methods_place_at_both_budgets_and_whether_lora_catches_up(tiny_settings,
                                                                                                 tmp_path):
    def runs(scores):
        out = [_run(m, seed, [(10, 0.5), (20, test)], test) for m, tests in scores.items()
               for seed, test in enumerate(tests)]
        for r in out:
            r["settings"] = {"steps": 120, "max_test": 600}
        return out

    short = runs({"sk-prefix-scale": [0.80, 0.82], "lora": [0.78, 0.80], "full-ft": [0.70, 0.72]})
    long = runs({"sk-prefix-scale": [0.83, 0.85], "lora": [0.86, 0.88], "full-ft": [0.84, 0.86]})
    suite = _suite_with(tiny_settings, tmp_path, long)
    assert "budget" not in suite.report("sktune bench").read_text()  # no reference budget: no such section
    suite.fixed_rates = {m: DEFAULT_LR[m] for m in ("sk-prefix-scale", "lora", "full-ft")}
    suite.reference = {(r["method"], r["lr"], r["seed"]): r for r in short}
    suite.reference[("lora", 1.0, 0)] = {**short[2], "test": {"accuracy": 0.1}}  # another rate: not this budget's
    report = suite.report("sktune bench").read_text()
    assert "## Against the 120-step budget" in report
    assert "Partial: 3 of 9 planned runs" in report and "rates tried so far" not in report  # its rates are fixed
    assert f"| lora | {DEFAULT_LR['lora']:g} | 0.790 ± 0.014 (2) | 2 | 0.870 ± 0.014 (2) | 1 | +0.080 |" in report
    assert f"| sk-prefix-scale | {DEFAULT_LR['sk-prefix-scale']:g} | 0.810 ± 0.014 (2) | 1 | 0.840 ± 0.014 (2) | 3 |" \
        in report
    assert "changed: lora 2 -> 1, full-ft 3 -> 2, sk-prefix-scale 1 -> 3." in report
    assert "- 120 steps: sk-prefix-scale vs lora: +0.020 [" in report
    assert "- 120 steps: sk-prefix-scale vs full-ft: +0.100 [" in report
    assert "- 4 steps: sk-prefix-scale vs lora: -0.030 [" in report
    suite.done.pop(("lora", DEFAULT_LR["lora"], 1))  # a seed not run yet here is left out at 120 steps too
    assert f"| lora | {DEFAULT_LR['lora']:g} | 0.780 ± — (1) | 2 | 0.860 ± — (1) | 1 | +0.080 |" in \
        suite.report("sktune bench").read_text()
