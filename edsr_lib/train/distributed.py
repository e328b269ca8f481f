"""PyTorch DDP set-up from the environment ``torchrun`` provides (nothing home-made)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_gather_object", "barrier", "init_distributed", "shutdown_distributed"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: Global rank.
        world_size: Number of processes.
        local_rank: Rank on this machine (picks the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes in ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``.

    A plain ``python`` launch (no ``WORLD_SIZE``, or 1) is a single process and starts no
    group. The backend is NCCL for CUDA and gloo for CPU.

    Args:
        device_type: ``"cuda"`` or ``"cpu"``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order (just ``[obj]`` for a single process)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for a single process)."""
    if info.enabled:
        dist.barrier()


def shutdown_distributed() -> None:
    """Leave the process group, once every rank is done (nothing happens in a single process).

    Each rank waits for the others, then destroys the group: a process that exits with
    the group still open can be killed by its communication threads at interpreter exit
    (``terminate called without an active exception``), and torchrun then fails the run.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
