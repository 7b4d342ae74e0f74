"""Scale-out under ``torchrun --nproc-per-node N -m evalkit run ...``: generation and feature extraction are split
across processes and gathered on every process; process 0 alone writes images, computes metrics and writes results.

Generation is split by whole batches (batch k keeps seed ``seed + k``) and feature extraction by contiguous blocks of
images, so N processes produce the same images and features as one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, k: int) -> bool:
        return k % self.world == self.rank

    def gather(self, local: dict[int, Any]) -> dict[int, Any]:
        """Union of every process's ``{index: value}``."""
        if self.world == 1:
            return local
        parts: list[dict[int, Any]] = [{} for _ in range(self.world)]
        dist.all_gather_object(parts, local)
        return {k: v for part in parts for k, v in part.items()}

    def main_decides(self, value: Any) -> Any:
        """Process 0's ``value`` on every process."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def blocks(self, n: int) -> list[np.ndarray]:
        """Row indices of ``n`` items split into one contiguous block per process."""
        return np.array_split(np.arange(n), self.world)


def start(device: str) -> tuple[Shard, str]:
    """Join the torchrun process group when launched by torchrun; returns the shard and this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Shard(), device
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    return Shard(dist.get_rank(), dist.get_world_size()), f"cuda:{local_rank}" if use_cuda else "cpu"


def stop(shard: Shard) -> None:
    if shard.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
