"""Data parallelism through torch.distributed, as launched by `torchrun` or `accelerate launch`.

Both launchers set RANK / WORLD_SIZE / MASTER_ADDR in the environment; `init_from_env` joins the
process group (gloo on CPU, NCCL on GPU). Each rank takes its share of every global batch, the
trainable gradients are averaged with one all-reduce per step (what DDP does, without wrapping a
model whose backbone has no gradients at all), and only rank 0 writes files.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.distributed as dist


def init_from_env() -> tuple[int, int]:
    """(rank, world size); joins the process group when a launcher started several processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        # a dead peer must end the run, not hang it: collectives give up after this many seconds
        timeout = timedelta(seconds=float(os.environ.get("SKTUNING_DIST_TIMEOUT", "300")))
        dist.init_process_group(backend, timeout=timeout)
    return rank(), world_size()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Mean of every rank's gradients, in one collective over a flat buffer.

    Every rank must reduce the same layout, so a parameter without a gradient here (unused by this
    rank's batch) enters as zeros, and a flag per parameter, reduced in the same buffer, says which
    ranks had one: a parameter no rank used keeps no gradient, as AdamW would skip it in one process.
    """
    if not dist.is_initialized() or not params:
        return
    # each part in its parameter's own dtype, so the buffer's layout and dtype are the same on every rank
    parts = [(p.grad if p.grad is not None else p.new_zeros(p.shape)).reshape(-1) for p in params]
    parts.append(params[0].new_tensor([float(p.grad is not None) for p in params]))
    flat = torch.cat(parts)
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    used = flat[-len(params):].tolist()
    offset = 0
    for p, anywhere in zip(params, used):
        mean = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
        if p.grad is not None:
            p.grad.copy_(mean)
        elif anywhere:
            p.grad = mean.to(p.dtype).clone()


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum of `value` over the ranks (a copy; `value` itself on one process)."""
    if not dist.is_initialized():
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total


def broadcast_parameters(params: Sequence[torch.nn.Parameter]) -> None:
    """Start every rank from rank 0's adapter and head."""
    if dist.is_initialized():
        for p in params:
            dist.broadcast(p.data, src=0)


def gather_in_order(items: list[Any], indices: list[int], total: int) -> list[Any]:
    """Put each rank's (index, item) pairs back into one list of `total`, every index exactly once."""
    if not dist.is_initialized():
        return items
    shards: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(shards, list(zip(indices, items)))
    merged: list[Any] = [None] * total
    seen = 0
    for shard in shards:
        for index, item in shard:
            merged[index] = item
            seen += 1
    if seen != total:
        raise RuntimeError(f"Gathered {seen} predictions for {total} examples across ranks.")
    return merged


def all_gather_object(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order (`[value]` on one process)."""
    if not dist.is_initialized():
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def broadcast_object(value: Any) -> Any:
    """Rank 0's `value` on every rank (e.g. a decision only rank 0 may take)."""
    if not dist.is_initialized():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
