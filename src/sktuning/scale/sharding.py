"""Shard the frozen backbone over the processes: PyTorch FSDP2 or DeepSpeed ZeRO-3.

Only the backbone is large, and only the backbone is frozen. Either engine splits its weights over
the processes (each keeps 1/N and gathers one layer at a time for the forward and the backward),
while the adapter and head, a few hundred thousand parameters, stay whole on every rank and are
averaged by `distributed.average_gradients` as under plain data parallelism. So the training loop,
its exact checkpoints and the saved adapter are the same whatever the engine, and saving never
gathers the model.

The text's representation is computed before sharding, from the whole model, once: SK-Prefix's
keys and values are plain tensors on this process's device, which is the device of every layer.
The price: every process first reads the whole backbone into CPU memory.

Choose with `sktune train --shard fsdp|zero3` under torchrun, or let `accelerate launch` choose with
an FSDP or DeepSpeed config file (see `plan_from_env`; examples/accelerate/ has both for a 7B model).
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import json
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from sktuning.core.backbone import base_model_of
from sktuning.core.config import check_shardable

ENGINES = ("fsdp", "zero3")


@dataclass
class ShardingPlan:
    engine: str                               # "fsdp" (torch FSDP2) or "zero3" (DeepSpeed ZeRO stage 3)
    reshard_after_forward: bool = True        # FSDP: FULL_SHARD (True) or SHARD_GRAD_OP (False)
    activation_checkpointing: bool = False
    zero_optimization: dict = field(default_factory=dict)  # ZeRO-3: DeepSpeed's zero_optimization section


def _flag(name: str, default: str = "false") -> bool:
    return os.environ.get(name, default).lower() in ("true", "1")


def plan_from_env() -> ShardingPlan | None:
    """What `accelerate launch` asks of its processes, or None when it asks for no sharding.

    Honoured: the engine, FSDP's resharding and activation checkpointing, ZeRO-3's parameter offload
    and a DeepSpeed config file's `zero_optimization`. What cannot be honoured is refused, by name.
    """
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
        zero: dict = {}
        if os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE"):
            with open(os.environ["ACCELERATE_DEEPSPEED_CONFIG_FILE"], encoding="utf-8") as handle:
                zero = dict(json.load(handle).get("zero_optimization", {}))
            stage = str(zero.get("stage", stage))
        if stage != "3":
            raise UsageError(f"DeepSpeed ZeRO stage {stage} shards optimiser states and gradients, which here are the "
                             "small adapter's: nothing to gain. Use zero_stage: 3, which shards the backbone.")
        device = os.environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "none")
        if device not in ("none", ""):
            zero.setdefault("offload_param", {"device": device})
        return ShardingPlan("zero3", zero_optimization={**zero, "stage": 3})
    if not _flag("ACCELERATE_USE_FSDP"):
        return None
    if _flag("FSDP_OFFLOAD_PARAMS"):
        raise UsageError("fsdp_offload_params is not supported: set it to false in the accelerate config (or use "
                         "the DeepSpeed ZeRO-3 config with offload_param_device: cpu).")
    if os.environ.get("FSDP_VERSION", "1") == "2":  # FSDP2 configs say it directly
        reshard = _flag("FSDP_RESHARD_AFTER_FORWARD", "true")
    else:  # an FSDP1 config: its strategy, carried over to FSDP2
        strategy = os.environ.get("FSDP_SHARDING_STRATEGY", "FULL_SHARD").upper()
        if strategy not in ("1", "FULL_SHARD", "2", "SHARD_GRAD_OP"):
            raise UsageError(f"FSDP sharding strategy {strategy!r} is not supported: use FULL_SHARD or SHARD_GRAD_OP "
                             "(or fsdp_version: 2 with fsdp_reshard_after_forward).")
        reshard = strategy in ("1", "FULL_SHARD")
    return ShardingPlan("fsdp", reshard_after_forward=reshard,
                        activation_checkpointing=_flag("FSDP_ACTIVATION_CHECKPOINTING"))


def shard_backbone(model: nn.Module, device: torch.device | str, plan: ShardingPlan) -> int:
    """Shard `model.backbone` over the default process group; the adapter and head go whole to `device`.

    Returns how many of the backbone's parameters this process now holds.
    """
    import torch.distributed as dist

    if plan.engine not in ENGINES:
        raise UsageError(f"Unknown sharding engine {plan.engine!r}: choose from {', '.join(ENGINES)}.")
    if not dist.is_initialized():
        raise UsageError("Sharding needs several processes: launch with torchrun or accelerate launch.")
    backbone = model.backbone
    if any(p.requires_grad for p in backbone.parameters()):
        raise UsageError("Sharding here is for a frozen backbone; this one has trainable parameters.")
    check_shardable(getattr(model, "sk_config", None) and model.sk_config.adapter, plan.engine)
    lm_head = getattr(model, "lm_head", None)
    if lm_head is not None and _shares_weight(lm_head, backbone.get_input_embeddings()):
        raise UsageError("A backbone whose LM head is tied to its input embeddings cannot be sharded; train "
                         "causal-lm on such a model without --shard (data parallel) instead.")
    device = torch.device(device)
    for name, child in model.named_children():  # the engines leave what is outside the backbone alone
        if name != "backbone":
            child.to(device)
    (_fsdp if plan.engine == "fsdp" else _zero3)(model, device, plan)
    return held_parameters(backbone)


def _fsdp(model: nn.Module, device: torch.device, plan: ShardingPlan) -> None:
    """One FSDP2 unit per transformer block (the model's `_no_split_modules`) and one for the embeddings."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    backbone = model.backbone
    block_names = set(getattr(base_model_of(backbone), "_no_split_modules", None) or [])
    blocks = [m for m in backbone.modules() if type(m).__name__ in block_names]
    if not blocks:
        raise UsageError(f"{type(backbone).__name__} names no transformer block class (_no_split_modules), so "
                         "FSDP has no layer to shard by; use --shard zero3 or no sharding.")
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    # the embeddings are a unit of their own: SK-Prompt calls them outside the backbone's forward
    for unit in [backbone.get_input_embeddings(), *blocks]:
        fully_shard(unit, mesh=mesh, reshard_after_forward=plan.reshard_after_forward)
    # the root is the whole model (FSDP2 must see the forward start there, before SK-Prompt's call to
    # the embeddings); it takes what is left of the backbone (norms) and ignores the trainable part
    outside = {p for name, p in model.named_parameters() if not name.startswith("backbone.")}
    fully_shard(model, mesh=mesh, reshard_after_forward=plan.reshard_after_forward, ignored_params=outside)


def _zero3(model: nn.Module, device: torch.device, plan: ShardingPlan) -> None:
    """DeepSpeed's ZeRO-3 partitioning, with no optimiser: its hooks gather each module's weights when
    the module runs (SK-Prompt's direct call to the embeddings included), forward and backward."""
    try:
        import deepspeed
    except ImportError:
        raise UsageError("--shard zero3 needs DeepSpeed: pip install 'sktuning[deepspeed]'.") from None
    import logging

    from deepspeed.accelerator import get_accelerator

    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    own = torch.device(get_accelerator().current_device_name())
    if own.type != device.type or (device.index is not None and own.index not in (None, device.index)):
        raise UsageError(f"DeepSpeed places this process's partitions on {own}, not on --device {device}: leave "
                         "--device at auto (the launcher's LOCAL_RANK picks the GPU).")
    zero = {k: v for k, v in plan.zero_optimization.items() if v != "auto"}  # "auto": DeepSpeed's default
    config = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {**zero, "stage": 3}}
    backbone = model.backbone
    offload = (zero.get("offload_param") or {}).get("device")
    # partitioned in place, one tensor at a time: no whole replica ever reaches the accelerator
    deepspeed.zero.Init(module=backbone, config_dict_or_path=config, dtype=next(backbone.parameters()).dtype,
                        remote_device=offload if offload not in (None, "none") else None)
    for module in backbone.modules():  # buffers (rotary tables, ...) are not partitioned: moved by hand
        for name, buffer in module._buffers.items():
            if buffer is not None:
                module._buffers[name] = buffer.to(device)
    engine, *_ = deepspeed.initialize(model=backbone, config=config)
    model.zero3_engine = [engine]  # a list: the engine keeps its hooks' state, but is not a submodule


def reshard(model: nn.Module) -> None:
    """Give back the gathered weights of every FSDP unit (a no-op on a model that is not sharded)."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def held_parameters(backbone: nn.Module) -> int:
    """How many backbone parameters this process stores (all of them, unsharded)."""
    from torch.distributed.tensor import DTensor

    total = 0
    for p in backbone.parameters():
        if isinstance(p, DTensor):
            total += p.to_local().numel()
        elif hasattr(p, "ds_tensor") and not getattr(p, "ds_persist", False):  # a ZeRO-3 partition
            total += p.ds_tensor.numel()
        else:  # whole: unsharded, or small enough for ZeRO-3 to keep on every rank
            total += getattr(p, "ds_numel", p.numel())
    return total


def _shares_weight(a: nn.Module, b: nn.Module) -> bool:
    weight_a, weight_b = getattr(a, "weight", None), getattr(b, "weight", None)
    return weight_a is not None and weight_b is not None and weight_a.data_ptr() == weight_b.data_ptr()
