"""Where a model runs and in which precision: shared by prediction and the training loop."""

from __future__ import annotations

import os

import torch


def device_for(device: str | None) -> str:
    """`auto`: this process's GPU (LOCAL_RANK, as set by the launchers) if there is one, else the CPU."""
    if device in (None, "auto"):
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
    return device


def autocast(model: torch.nn.Module, enabled: bool):
    """bf16 autocast on the model's device (a no-op context when not `enabled`)."""
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=enabled)


def to_device(batch: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}
