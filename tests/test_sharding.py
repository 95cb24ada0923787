"""What an accelerate FSDP config asks for is honoured, or refused with the reason (no processes needed)."""

import pytest

from sktuning.sharding import fsdp_from_env, shard_backbone


def test_no_fsdp_unless_the_launcher_asks(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    assert fsdp_from_env() is None


@pytest.mark.parametrize("version, strategy, reshard", [
    ("1", "FULL_SHARD", True), ("1", "1", True), ("1", "SHARD_GRAD_OP", False), ("2", "true", True), ("2", "false", False)])
def test_accelerate_fsdp_settings_are_read(monkeypatch, version, strategy, reshard):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", version)
    monkeypatch.setenv("FSDP_SHARDING_STRATEGY" if version == "1" else "FSDP_RESHARD_AFTER_FORWARD", strategy)
    monkeypatch.setenv("FSDP_ACTIVATION_CHECKPOINTING", "true")
    assert fsdp_from_env() == {"reshard_after_forward": reshard, "activation_checkpointing": True}


@pytest.mark.parametrize("env, message", [
    ({"ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "HYBRID_SHARD"}, "use FULL_SHARD or SHARD_GRAD_OP"),
    ({"ACCELERATE_USE_FSDP": "true", "FSDP_OFFLOAD_PARAMS": "true"}, "fsdp_offload_params is not supported"),
    ({"ACCELERATE_USE_DEEPSPEED": "true"}, "DeepSpeed is not supported"),
])
def test_what_cannot_be_honoured_is_refused(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        fsdp_from_env()


def test_sharding_needs_a_process_group():
    from torch import nn

    with pytest.raises(ValueError, match="launch with torchrun or accelerate launch"):
        shard_backbone(nn.Module(), "cpu")
