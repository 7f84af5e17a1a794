"""torchrun support: process group setup, sharding of the epoch, rank-0-only side effects.

Run ``torchrun --nproc_per_node=N examples/train_liver.py ...``: torchrun sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; the backend is NCCL on CUDA and gloo on CPU. Each rank trains
on every N-th sample of the same shuffled epoch list (so the global batch is N x ``--batch-size``),
the model is wrapped in DistributedDataParallel, and only rank 0 validates and writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size, and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> DistInfo:
    """Initialise the process group when launched by torchrun; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device(device)
    if world <= 1:
        return DistInfo(0, 1, dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, dev)


def shard(items: Sequence, info: DistInfo, batch_size: int) -> List:
    """This rank's part of the epoch: items ``rank, rank + world, ...``, trimmed so that every
    rank runs the same number of full-size steps (DDP needs the ranks in lockstep)."""
    per_rank = (len(items) // (info.world * batch_size)) * batch_size
    if per_rank == 0:
        per_rank = len(items) // info.world
    return list(items[info.rank::info.world])[:per_rank]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's boolean, on every rank (e.g. "stop now")."""
    if not info.enabled:
        return flag
    t = torch.tensor([int(flag)], device=info.device)
    dist.broadcast(t, 0)
    return bool(t.item())


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_true(flag: bool, info: DistInfo) -> bool:
    """True on every rank iff ``flag`` is True on every rank (so all ranks skip a step together)."""
    if not info.enabled:
        return flag
    t = torch.tensor([int(flag)], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())
