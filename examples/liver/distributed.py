"""torchrun support: process group setup, sharding of the epoch, rank-0-only side effects.

Run ``torchrun --nproc_per_node=N examples/train_liver.py ...``: torchrun sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; the backend is NCCL on CUDA and gloo on CPU. Each rank trains
on every N-th sample of the same shuffled epoch list (so the global batch is N x ``--batch-size``),
the model is wrapped in DistributedDataParallel, and only rank 0 validates and writes files.
After every epoch :func:`check_same_weights` confirms that the ranks still hold the same weights.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size, and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

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


def shard(items: Sequence, info: DistInfo, batch_size: int) -> list:
    """This rank's part of the epoch: items ``rank, rank + world, ...``, trimmed so that every
    rank runs the same number of full-size steps (DDP needs the ranks in lockstep)."""
    per_rank = (len(items) // (info.world * batch_size)) * batch_size
    if per_rank == 0:
        per_rank = len(items) // info.world
    return list(items[info.rank::info.world])[:per_rank]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


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


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()


def check_same_weights(model: nn.Module, info: DistInfo, when: str) -> list[str]:
    """Each rank's digest of ``model``'s parameters (bitwise), after checking that they agree.

    DDP keeps the ranks in step by broadcasting rank 0's weights once and averaging gradients at
    every step; anything that breaks that (a parameter left out of the reduction, a rank that
    skips a step the others take) shows here. Buffers are not compared: DDP gives every rank
    rank 0's BatchNorm statistics at the next forward pass, and only rank 0's are saved.

    Raises:
        RuntimeError: a parameter differs between rank 0 and another rank (naming both, and ``when``).
    """
    mine = [(name, _digest(p)) for name, p in model.named_parameters()]
    everyone = [mine]
    if info.enabled:
        everyone = [[] for _ in range(info.world)]
        dist.all_gather_object(everyone, mine)
    for rank, theirs in enumerate(everyone):
        for (name, ours), (_, other) in zip(everyone[0], theirs, strict=False):
            if ours != other:
                raise RuntimeError(f"parameter {name!r} differs between rank 0 and rank {rank} {when}: "
                                   "the ranks no longer train the same model")
    return [hashlib.sha1("".join(d for _, d in digests).encode()).hexdigest() for digests in everyone]
