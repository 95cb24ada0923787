"""Shard the frozen backbone over the processes with PyTorch FSDP2 (`fully_shard`).

Only the backbone is large, and only the backbone is frozen: it is split layer by layer over the
processes (each holds 1/N of its weights, gathered one layer at a time for the forward and the
backward), while the adapter and head, a few hundred thousand parameters, stay whole on every rank
and are averaged by `distributed.average_gradients` like under plain data parallelism. Saving the
adapter therefore never needs a gather of the model.

The text's representation is computed before sharding, from the whole model, once: SK-Prefix's
keys and values are then plain tensors on this process's device, the device of every layer.

Launch with `torchrun` (`sktune train --fsdp`) or with `accelerate launch` and an FSDP config file
(`ACCELERATE_USE_FSDP` is read, see `fsdp_from_env`); examples/accelerate/ holds one for a 7B model.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from sktuning.backbone import base_model_of


def fsdp_from_env() -> dict | None:
    """The FSDP settings `accelerate launch` passes to its processes, or None when it asks for none.

    Honoured: FSDP itself, the resharding strategy, activation checkpointing. Refused with a clear
    message: what this module cannot do (CPU offload of parameters, FSDP1 flat parameters, DeepSpeed).
    """
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        raise ValueError("DeepSpeed is not supported by sktune train; launch with an FSDP config instead "
                         "(examples/accelerate/fsdp-7b.yaml): it shards the frozen backbone the same way ZeRO-3 does.")
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return None
    if os.environ.get("FSDP_OFFLOAD_PARAMS", "false").lower() == "true":
        raise ValueError("fsdp_offload_params is not supported: set it to false in the accelerate config.")
    if os.environ.get("FSDP_VERSION", "1") == "2":  # FSDP2 configs say it directly
        reshard = os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() == "true"
    else:  # an FSDP1 config: its strategy, carried over to FSDP2
        strategy = os.environ.get("FSDP_SHARDING_STRATEGY", "FULL_SHARD").upper()
        if strategy in ("1", "FULL_SHARD"):
            reshard = True
        elif strategy in ("2", "SHARD_GRAD_OP"):
            reshard = False
        else:
            raise ValueError(f"FSDP sharding strategy {strategy!r} is not supported: use FULL_SHARD or SHARD_GRAD_OP "
                             "(or fsdp_version: 2 with fsdp_reshard_after_forward).")
    return {"reshard_after_forward": reshard,
            "activation_checkpointing": os.environ.get("FSDP_ACTIVATION_CHECKPOINTING", "false").lower() == "true"}


def shard_backbone(model: nn.Module, device: torch.device | str, reshard_after_forward: bool = True) -> int:
    """Shard `model.backbone` over the default process group, one FSDP unit per transformer block.

    The input-embedding layer is a unit of its own because SK-Prompt calls it directly, outside the
    backbone's forward. The adapter and head stay whole, on `device`. Returns the unit count.
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if not dist.is_initialized():
        raise ValueError("FSDP needs several processes: launch with torchrun or accelerate launch.")
    backbone = model.backbone
    if any(p.requires_grad for p in backbone.parameters()):
        raise ValueError("FSDP here shards a frozen backbone; this one has trainable parameters.")
    if getattr(model, "lm_head", None) is not None and _shares_weight(model.lm_head, backbone.get_input_embeddings()):
        raise ValueError("FSDP cannot shard a backbone whose LM head is tied to its input embeddings; train "
                         "causal-lm on such a model without --fsdp (data parallel) instead.")
    block_names = set(getattr(base_model_of(backbone), "_no_split_modules", None) or [])
    blocks = [m for m in backbone.modules() if type(m).__name__ in block_names]
    if not blocks:
        raise ValueError(f"{type(backbone).__name__} names no transformer block class (_no_split_modules), so "
                         "there is no layer to shard by; train it without --fsdp.")
    device = torch.device(device)
    for name, child in model.named_children():  # FSDP leaves the parameters it ignores where they are
        if name != "backbone":
            child.to(device)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    units = [backbone.get_input_embeddings(), *blocks]
    for unit in units:
        fully_shard(unit, mesh=mesh, reshard_after_forward=reshard_after_forward)
    # the root is the whole model (FSDP2 must see the forward start there, before SK-Prompt calls the
    # embedding unit); it shards what is left of the backbone (norms) and ignores the trainable part
    outside = {p for name, p in model.named_parameters() if not name.startswith("backbone.")}
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward, ignored_params=outside)
    return len(units) + 1


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def _shares_weight(a: nn.Module, b: nn.Module) -> bool:
    weight_a, weight_b = getattr(a, "weight", None), getattr(b, "weight", None)
    return weight_a is not None and weight_b is not None and weight_a.data_ptr() == weight_b.data_ptr()
