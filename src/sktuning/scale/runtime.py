"""Where a model runs and in which precision: shared by prediction and the training loop."""

from __future__ import annotations

import torch


def autocast(model: torch.nn.Module, enabled: bool):
    """bf16 autocast on the model's device (a no-op context when not `enabled`)."""
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=enabled)


def to_device(batch: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}
