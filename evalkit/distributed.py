"""Scale-out under ``torchrun --nproc-per-node N -m evalkit run ...``: generation and feature extraction are split
across processes and gathered on every process; process 0 alone writes images, computes metrics and writes results.

Generation is split by whole batches (batch k keeps seed ``seed + k``) and feature extraction by contiguous blocks of
images, so N processes produce the same images and features as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.distributed as dist

from generator.runtime import join_torchrun, leave_torchrun


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

    def barrier(self) -> None:
        """Wait for every process (no-op with one)."""
        if self.world > 1:
            dist.barrier()

    def blocks(self, n: int) -> list[np.ndarray]:
        """Row indices of ``n`` items split into one contiguous block per process."""
        return np.array_split(np.arange(n), self.world)


def start(device: str) -> tuple[Shard, str]:
    """Join the torchrun process group when launched by torchrun; returns the shard and this process's device."""
    launch = join_torchrun(device)
    return Shard(launch.rank, launch.world), str(launch.device)


def stop() -> None:
    leave_torchrun()
