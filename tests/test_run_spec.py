"""The typed run records: every option checked when the spec is built (before torch loads), JSON round
trips, and the adapter's record read leniently from what older versions and the Python API saved."""

from __future__ import annotations

import json

import pytest

from sktuning.training.spec import DEFAULT_STEPS, AdapterRecord, RunSpec


@pytest.mark.parametrize("changes,message", [
    (dict(text=""), "--text is empty"),
    (dict(text="  "), "--text is empty"),
    (dict(steps=-5), "--steps must be a whole number >= 1, got -5"),
    (dict(batch_size=0), "--batch-size must be a whole number >= 1, got 0"),
    (dict(max_length=0), "--max-length must be a whole number >= 1"),
    (dict(rank=True), "--rank must be a whole number >= 1"),
    (dict(lr=0.0), "--lr must be > 0"),
    (dict(epochs=0), "--epochs must be > 0"),
    (dict(steps=10, epochs=1.0), "--steps or --epochs, not both"),
    (dict(warmup_ratio=1.0), "--warmup-ratio must be in [0, 1)"),
    (dict(weight_decay=-0.1), "--weight-decay must be >= 0"),
    (dict(mode="suffix"), "--mode 'suffix' is not one of prefix, prompt"),
    (dict(adapter="mlp"), "--adapter 'mlp' is not one of embedding, lowrank, linear, scale"),
    (dict(pooling="max"), "--pooling 'max'"),
    (dict(shard="zero2"), "--shard 'zero2'"),
    (dict(task="trec", train="a.csv"), "either --task or --train"),
    (dict(deepspeed_config="ds.json"), "--deepspeed-config goes with --shard zero3"),
    (dict(label_names=["a", "a"]), "at least 2 distinct names"),
    (dict(seed=1.5), "--seed must be a whole number"),
    (dict(threads=0), "--threads must be a whole number >= 1, got 0"),
    (dict(group_by_length="yes"), "group_by_length must be true or false"),
    (dict(data_order="random"), "data_order 'random' is not one of epoch, stream"),
    (dict(seed_at_start=0), "seed_at_start must be true or false"),
    (dict(max_test_examples=0), "--max-test-examples must be a whole number >= 1, got 0"),
])
def test_bad_settings_are_refused_naming_the_option(changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        RunSpec(**changes)


def test_defaults_round_trip_and_the_default_length():
    spec = RunSpec(task="trec", lr=1e-2)
    assert RunSpec.from_dict(json.loads(spec.to_json())) == spec
    assert spec.training_steps == DEFAULT_STEPS and RunSpec(epochs=2.0).training_steps is None
    assert spec.replace(steps=7).steps == 7 and spec.steps is None  # frozen: replace gives a new spec
    # the loop settings only the bench sets default to sktune train's, and a run.json without them reads so
    assert (spec.data_order, spec.seed_at_start, spec.eval_batch_size, spec.max_test_examples) == ("epoch", True, 64,
                                                                                                  None)
    older = {k: v for k, v in spec.to_dict().items() if k not in ("data_order", "seed_at_start", "eval_batch_size",
                                                                  "max_test_examples")}
    assert RunSpec.from_dict(older) == spec


def test_unknown_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['learning_rate'\]"):
        RunSpec.from_dict({"learning_rate": 1e-3})
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['command'\]"):  # 0.1.0's key: no legacy format
        RunSpec.from_dict({"command": "train", "steps": 3})
    broken = tmp_path / "run.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="not a readable run record"):
        RunSpec.read(broken)


def test_adapter_record_ignores_free_json_and_refuses_a_bad_length():
    meta = {"training": {"model": "m", "max_length": 40, "note": "saved through the Python API"}}
    assert AdapterRecord.from_meta(meta) == AdapterRecord(model="m", max_length=40)
    assert AdapterRecord.from_meta({}) == AdapterRecord()  # an adapter saved with no record at all
    with pytest.raises(ValueError, match="max_length 0"):
        AdapterRecord.from_meta({"training": {"max_length": 0}})
