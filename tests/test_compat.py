"""Folders written by sktuning 0.1.0 (before the package split) still load, predict, evaluate and resume
the same. The fixture was made by tests/fixtures/make_legacy_run.py at commit 9739edf on a tiny Llama."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sktuning.cli import main
from sktuning.model import read_adapter_meta
from sktuning.training.spec import AdapterRecord, RunSpec

LEGACY = Path(__file__).parent / "fixtures" / "legacy-0.1.0"
WRITTEN_AT = "/work/main/tests/fixtures/legacy-0.1.0"  # where make_legacy_run.py wrote it


@pytest.fixture
def legacy(tmp_path) -> Path:
    """A copy of the fixture whose recorded absolute paths point at the copy."""
    copy = tmp_path / "legacy"
    shutil.copytree(LEGACY, copy)
    for path in (copy / "run" / "run.json",):
        path.write_text(path.read_text().replace(WRITTEN_AT, str(copy)))
    return copy


def test_a_legacy_run_json_reads_as_a_typed_run_spec(legacy):
    spec = RunSpec.read(legacy / "run" / "run.json")  # 0.1.0 wrote the argparse namespace, "command" included
    assert (spec.steps, spec.batch_size, spec.lr, spec.eval_every, spec.max_length) == (6, 8, 0.01, 3, 117)
    assert spec.train == str(legacy / "data" / "train.csv") and spec.mode == "prefix" and spec.adapter == "lowrank"
    assert RunSpec.from_dict(json.loads(spec.to_json())) == spec


def test_a_legacy_adapter_record_reads_typed():
    record = AdapterRecord.from_meta(read_adapter_meta(LEGACY / "run" / "adapter"))
    assert record == AdapterRecord(model=f"{WRITTEN_AT}/tiny-llama", task="train", task_source="files",
                                   max_length=117, text_column="text", text_pair_column=None, label_column="label")


def test_a_legacy_adapter_predicts_what_it_predicted(tmp_path, capsys):
    texts = json.loads((LEGACY / "inputs.json").read_text())
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", "--adapter", str(LEGACY / "run" / "adapter"), "--model", str(LEGACY / "tiny-llama"),
                 "--output-file", str(out), "--quiet", *texts]) == 0
    then = [json.loads(line) for line in (LEGACY / "predictions.jsonl").read_text().splitlines()]
    now = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in now] == [r["label"] for r in then]
    for a, b in zip(now, then):  # written rounded to 6 decimals
        assert all(abs(a["probabilities"][k] - b["probabilities"][k]) <= 2e-6 for k in b["probabilities"])


def test_a_legacy_adapter_evaluates_to_its_recorded_test_score(tmp_path):
    target = tmp_path / "eval.json"
    assert main(["eval", "--adapter", str(LEGACY / "run" / "adapter"), "--model", str(LEGACY / "tiny-llama"),
                 "--test", str(LEGACY / "data" / "test.csv"), "--output-file", str(target), "--quiet"]) == 0
    recorded = json.loads((LEGACY / "run" / "metrics.json").read_text())["metrics"]
    assert json.loads(target.read_text())["metrics"] == pytest.approx(recorded, abs=1e-12)


def test_a_legacy_run_resumes_from_its_checkpoint_to_the_same_result(legacy):
    # all 6 steps were done: resuming loads the 0.1.0 checkpoint, trains no further and scores the test split
    recorded = json.loads((legacy / "run" / "metrics.json").read_text())
    assert main(["train", "--resume", "--output", str(legacy / "run"), "--quiet"]) == 0
    resumed = json.loads((legacy / "run" / "metrics.json").read_text())
    assert resumed["metrics"] == pytest.approx(recorded["metrics"], abs=1e-12)
    assert (resumed["steps"], resumed["best_step"]) == (recorded["steps"], recorded["best_step"])
