"""What an accelerate FSDP or DeepSpeed config asks for is honoured, or refused with the reason."""

import json

import pytest

from sktuning.scale.sharding import ShardingPlan, plan_from_env, shard_backbone

LAUNCHER_VARIABLES = ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "FSDP_VERSION", "FSDP_SHARDING_STRATEGY",
                      "FSDP_RESHARD_AFTER_FORWARD", "FSDP_OFFLOAD_PARAMS", "FSDP_ACTIVATION_CHECKPOINTING",
                      "ACCELERATE_DEEPSPEED_ZERO_STAGE", "ACCELERATE_DEEPSPEED_CONFIG_FILE",
                      "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_no_sharding_unless_the_launcher_asks():
    assert plan_from_env() is None


@pytest.mark.parametrize("version, strategy, reshard", [
    ("1", "FULL_SHARD", True), ("1", "1", True), ("1", "SHARD_GRAD_OP", False), ("2", "true", True), ("2", "false", False)])
def test_accelerate_fsdp_settings_are_read(monkeypatch, version, strategy, reshard):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", version)
    monkeypatch.setenv("FSDP_SHARDING_STRATEGY" if version == "1" else "FSDP_RESHARD_AFTER_FORWARD", strategy)
    monkeypatch.setenv("FSDP_ACTIVATION_CHECKPOINTING", "true")
    assert plan_from_env() == ShardingPlan("fsdp", reshard_after_forward=reshard, activation_checkpointing=True)


def test_accelerate_deepspeed_settings_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "cpu")
    assert plan_from_env() == ShardingPlan("zero3", zero_optimization={"stage": 3, "offload_param": {"device": "cpu"}})
    config = tmp_path / "ds.json"
    config.write_text(json.dumps({"zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}}))
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(config))
    assert plan_from_env().zero_optimization["stage3_param_persistence_threshold"] == 0


@pytest.mark.parametrize("env, message", [
    ({"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "HYBRID_SHARD"}, "use FULL_SHARD or SHARD_GRAD_OP"),
    ({"ACCELERATE_USE_FSDP": "true", "FSDP_OFFLOAD_PARAMS": "true"}, "fsdp_offload_params is not supported"),
    ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}, "Use zero_stage: 3"),
])
def test_what_cannot_be_honoured_is_refused(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        plan_from_env()


def test_sharding_needs_a_process_group_and_a_known_engine():
    from torch import nn

    with pytest.raises(ValueError, match="launch with torchrun or accelerate launch"):
        shard_backbone(nn.Module(), "cpu", ShardingPlan("fsdp"))
    with pytest.raises(ValueError, match="choose from fsdp, zero3"):
        shard_backbone(nn.Module(), "cpu", ShardingPlan("zero2"))
