"""The benchmark harness: every method trains through one loop and the report states the claims."""

import json

import pytest

from sktuning.baselines import METHODS
from sktuning.bench import BenchSettings, Suite, run_one


@pytest.fixture(scope="module")
def tiny_settings(tiny_model_dir) -> BenchSettings:
    return BenchSettings(model=tiny_model_dir, task="rt-polarity", steps=4, batch_size=4, eval_every=2,
                         max_train=32, max_eval=16, max_test=16, max_length=16)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "prompt-tuning-text"])
def test_every_method_trains_and_reports(tiny_settings, method):
    record = run_one(tiny_settings, method, 1e-3, 0)
    assert [step for step, _ in record["curve"]] == [2, 4]
    assert 0 <= record["test"]["accuracy"] <= 1 and record["trainable"] > 0
    if method == "full-ft":
        assert record["trainable"] == record["total"]
    elif method != "head-only":
        assert record["trainable"] < record["total"]  # the backbone stays frozen


def test_report_has_the_table_the_plot_and_the_claims(tiny_settings, tmp_path):
    methods = ["sk-prefix-scale", "prefix-tuning", "lora"]
    suite = Suite(tiny_settings, methods, seeds=[0, 1], grid=False, output=tmp_path)
    suite.run()
    report = suite.report("sktune bench --test").read_text()
    name = "tiny-llama0-rt-polarity"
    assert (tmp_path / f"{name}.png").stat().st_size > 1000
    for method in methods:
        assert f"| {method} |" in report
    assert "Higher accuracy than prompt / prefix / P-tuning" in report and "Fewer parameters than LoRA" in report
    runs = [json.loads(line) for line in (tmp_path / f"{name}.runs.jsonl").read_text().splitlines()]
    assert len(runs) == 6
    Suite(tiny_settings, methods, seeds=[0, 1], grid=False, output=tmp_path).run()  # a rerun skips finished runs
    assert len((tmp_path / f"{name}.runs.jsonl").read_text().splitlines()) == 6
