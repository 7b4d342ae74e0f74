"""What training, synthesis and evaluation share about the machine they run on: the device, file hashes, the code
version, and joining a ``torchrun`` launch.

Kept apart from the model and the training loop so that evaluation never imports training code.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
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


HASH_MEMO_MIN_BYTES = 1 << 20  # files this large have their hash remembered across runs
RACY_NS = 2_000_000_000  # a file changed this recently is not remembered: a rewrite within one clock tick keeps the key
_HASHES: dict[tuple, str] = {}


def _hash_memo() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wav2pix" / "file-sha256.jsonl"


def _file_key(path: Path) -> tuple:
    """What changes when a file's bytes can have changed: path, size, modification and status-change times (the
    latter cannot be set back by a user), inode."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def _read_memo(memo: Path) -> None:
    try:
        lines = memo.read_text().splitlines()
    except OSError:
        return
    for line in lines:
        try:
            entry = json.loads(line)
            _HASHES.setdefault(tuple(entry["key"]), entry["sha256"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn or foreign line: that file is hashed again


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks.

    Files of ``HASH_MEMO_MIN_BYTES`` or more (weights, model files: 30-100 MB, hashed on every run for provenance)
    are remembered in ``$XDG_CACHE_HOME/wav2pix/file-sha256.jsonl`` by path, size, modification and status-change
    times and inode, as git's index and make remember files; any write to the file changes the key, and it is hashed
    again; a file changed in the last ``RACY_NS`` is not remembered (git's "racy clean" rule: timestamps have clock-tick
    granularity). An unwritable cache folder only costs the re-hashing."""
    path = Path(path)
    key = _file_key(path)
    large = key[1] >= HASH_MEMO_MIN_BYTES
    if large and key not in _HASHES:
        _read_memo(_hash_memo())
    if key in _HASHES:
        return _HASHES[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    _HASHES[key] = digest.hexdigest()
    if large and time.time_ns() - key[3] > RACY_NS:
        try:
            _hash_memo().parent.mkdir(parents=True, exist_ok=True)
            with open(_hash_memo(), "a", encoding="utf-8") as memo:  # one short line: appends do not interleave
                memo.write(json.dumps({"key": list(key), "sha256": _HASHES[key]}) + "\n")
        except OSError:
            pass
    return _HASHES[key]


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
