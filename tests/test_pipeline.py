"""The one run pipeline (`sktuning.training.pipeline`): `sktune train` and a bench run given the same
settings describe the same run and train the same adapter, bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import sktuning.training.pipeline as pipeline
from sktuning.bench import BenchSettings, run_one
from sktuning.bench.runner import run_spec
from sktuning.cli.main import build_parser
from sktuning.cli.train import spec_from_args, train

#: what the bench sets that no `sktune train` option reaches (a cut test split, its loop settings)
BENCH_ONLY = dict(max_test_examples=16, data_order="stream", seed_at_start=False)


def test_cli_and_bench_paths_train_the_same_adapter_bit_for_bit(tiny_model_dir, data_dir, tmp_path, monkeypatch):
    files = {split: str(data_dir / f"{split}.csv") for split in ("train", "validation", "test")}
    settings = BenchSettings(model=tiny_model_dir, task="tiny", steps=6, batch_size=4, eval_every=3, max_train=48,
                             max_eval=16, max_test=16, max_length=16, **files)
    lr, seed = 1e-2, 1  # a training seed apart from the bench's fixed subset seed 0
    out = tmp_path / "run"
    options = ["train", "--model", tiny_model_dir, "--train", files["train"], "--validation", files["validation"],
               "--test", files["test"], "--device", "cpu", "--steps", "6", "--batch-size", "4", "--eval-every", "3",
               "--max-train-examples", "48", "--max-eval-examples", "16", "--max-length", "16", "--lr", str(lr),
               "--weight-decay", "0.01", "--no-group-by-length", "--seed", str(seed), "--subset-seed", "0",
               "--output", str(out), "--quiet"]
    spec, given = spec_from_args(build_parser().parse_args(options))
    bench_spec = run_spec(settings, "sk-prefix-lowrank", lr, seed)
    assert spec.replace(output=None, **BENCH_ONLY) == bench_spec  # the same run, described twice

    assert train(spec.replace(**BENCH_ONLY), given, quiet=True) == 0  # the CLI's path
    cli_adapter = load_file(out / "adapter" / "model.safetensors")
    cli_metrics = json.loads((out / "metrics.json").read_text())

    built = []
    build_run = pipeline.build_run
    monkeypatch.setattr(pipeline, "build_run", lambda *a, **k: built.append(build_run(*a, **k)) or built[-1])
    record = run_one(settings, "sk-prefix-lowrank", lr, seed)  # the bench's path
    bench_adapter = built[0].model.trainable_state_dict()

    assert sorted(cli_adapter) == sorted(bench_adapter) and "semantic.adapter.up" in cli_adapter
    for name, tensor in bench_adapter.items():
        assert torch.equal(cli_adapter[name], tensor), name
    assert cli_adapter["semantic.adapter.up"].abs().sum() > 0  # it trained: this factor starts at zero
    assert record["test"] == cli_metrics["metrics"] and record["train_examples"] == cli_metrics["train_examples"]
    assert [tuple(point) for point in record["curve"]] == [(h["step"], h["validation"]["accuracy"])
                                                           for h in cli_metrics["history"]]
    assert record["threads"] == torch.get_num_threads()  # what the run used, not a constant


def test_the_bench_keeps_one_subset_for_every_seed_and_draws_a_few_shot_sample_per_seed():
    from sktuning.data.subsets import SubsetRule

    fixed = BenchSettings()  # the committed suites: the same rows for every method and seed
    assert {run_spec(fixed, method, 1e-3, seed).subset_rule() for method in ("lora", "sk-prefix-lowrank")
            for seed in (0, 1, 2)} == {SubsetRule(seed=0, max_train=4000, max_eval=300, max_test=600)}
    few = BenchSettings(shots=16, max_test=None)
    assert [run_spec(few, "head-only", 1e-3, seed).subset_rule() for seed in (0, 1)] == \
        [SubsetRule(seed=0, shots=16), SubsetRule(seed=1, shots=16)]
    spec = run_spec(fixed, "sk-prefix-lowrank-lw", 1e-3, 2)
    assert (spec.head, spec.weight_decay, spec.data_order, spec.seed_at_start, spec.eval_batch_size, spec.device,
            spec.seed, spec.threads) == ("label-words", 0.01, "stream", False, 64, "cpu", 2, None)


@pytest.fixture
def keep_threads():
    """torch's thread count is the process's: put it back for the tests that follow."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_python_api_builds_an_sk_model_run_from_a_spec_alone(tiny_model_dir, data_dir, keep_threads):
    from sktuning import SKModel
    from sktuning.training import RunSpec, build_run

    spec = RunSpec(model=tiny_model_dir, train=str(data_dir / "train.csv"), steps=2, batch_size=8, eval_every=2,
                   max_length=200, threads=1, device="cpu")
    run = build_run(spec)
    assert isinstance(run.model, SKModel) and run.threads == 1 == torch.get_num_threads()
    # the input-length rule: the tiny backbone's 128 positions, less what the text takes
    assert run.spec.max_length == run.model.input_length(200) < 128 and run.spec.steps == 2
    assert run.trainer.args.output_dir is None and run.trainer.args.data_order == "epoch"
    assert run.trainer.train().step == 2 and 0 <= run.trainer.evaluate(run.rows["test"])["accuracy"] <= 1
