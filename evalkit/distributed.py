"""Scale-out under ``torchrun --nproc-per-node N -m evalkit run ...``: generation and feature extraction are split
across processes and gathered on every process; process 0 alone writes images, computes metrics and writes results.

Generation is split by whole batches (batch k keeps seed ``seed + k``) and feature extraction by contiguous blocks of
images, so N processes produce the same images and features as one.

torch is imported only when a process group is joined or used: a run whose faces and features all come from the
cache needs no torch at all (issue 18's warm re-run).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np


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
        import torch.distributed as dist

        parts: list[dict[int, Any]] = [{} for _ in range(self.world)]
        dist.all_gather_object(parts, local)
        return {k: v for part in parts for k, v in part.items()}

    def main_decides(self, value: Any) -> Any:
        """Process 0's ``value`` on every process."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait for every process (no-op with one)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def blocks(self, n: int) -> list[np.ndarray]:
        """Row indices of ``n`` items split into one contiguous block per process."""
        return np.array_split(np.arange(n), self.world)


def start(device: str) -> tuple[Shard, str]:
    """Join the torchrun process group when launched by torchrun; returns the shard and this process's device."""
    from generator.runtime import join_torchrun

    launch = join_torchrun(device)
    return Shard(launch.rank, launch.world), str(launch.device)


def stop() -> None:
    """Leave the process group, if this process joined one (a process that never imported torch has none)."""
    if "torch" in sys.modules:
        from generator.runtime import leave_torchrun

        leave_torchrun()
