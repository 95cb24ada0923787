"""What a run shows as it goes and after: TensorBoard / W&B logs read back with the trackers' own
readers, the curves of every `sktune train`, the confusion matrix of `sktune eval`."""

import json

import pytest
from PIL import Image

from sktuning.cli import main
from test_cli import train_args


def test_tensorboard_logs_every_step_and_every_evaluation_and_curves_are_drawn(tiny_model_dir, data_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out, "--report-to", "tensorboard")) == 0
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "train/examples_per_second", "validation/accuracy",
            "validation/macro_f1"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 13))
    metrics = json.loads((out / "metrics.json").read_text())
    logged = {e.step: e.value for e in events.Scalars("validation/accuracy")}
    assert logged == pytest.approx({h["step"]: h["validation"]["accuracy"] for h in metrics["history"]})
    rates = [e.value for e in events.Scalars("train/learning_rate")]
    assert max(rates) == pytest.approx(1e-2) and rates[-1] < rates[len(rates) // 2]  # warm-up, then decay
    with Image.open(out / "curves.png") as image:
        assert image.format == "PNG" and image.size[0] > 300


def test_wandb_writes_an_offline_run(tiny_model_dir, data_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out, "--report-to", "wandb")) == 0
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_eval_of_a_classifier_draws_its_confusion_matrix(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out)) == 0
    assert main(["eval", "--adapter", str(out / "adapter"), "--test", str(data_dir / "test.csv"), "--quiet"]) == 0
    result = json.loads((out / "eval-test-test.json").read_text())
    with Image.open(result["confusion_matrix"]) as image:
        assert image.format == "PNG"


def test_an_unknown_tracker_is_refused_before_anything_loads(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--report-to", "mlflow"])
    assert "invalid choice: 'mlflow'" in capsys.readouterr().err
