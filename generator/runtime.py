"""What training, synthesis and evaluation share about the machine they run on: the device, file hashes, the code
version, and joining a ``torchrun`` launch.

Kept apart from the model and the training loop so that evaluation never imports training code.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

import generator
from generator.errors import ConfigError


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: CUDA asked for on a machine without a CUDA GPU.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but no CUDA GPU is available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def code_version() -> str:
    """Package version plus the git commit when running from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{generator.__version__}+{commit}" if commit else generator.__version__


@dataclass(frozen=True)
class Launch:
    """This process's place in a ``torchrun`` launch (rank 0 of 1 when not launched by torchrun) and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def join_torchrun(device: str) -> Launch:
    """This process's place in a ``torchrun`` launch: joins the process group when started by torchrun (NCCL on
    CUDA, gloo on the CPU) unless the caller already did; each process then uses GPU ``LOCAL_RANK``. Outside
    torchrun: rank 0 of 1 on ``pick_device(device)``."""
    chosen = pick_device(device)
    if not (dist.is_available() and dist.is_initialized()):
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:
            return Launch(0, 1, chosen)
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    if chosen.type == "cuda":
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(chosen)
    return Launch(dist.get_rank(), dist.get_world_size(), chosen)


def leave_torchrun() -> None:
    """Leave the process group (no-op outside torchrun). No barrier: after an error on one process the others must
    not wait for it."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
