"""Multi-process training (DistributedDataParallel) on CPU: gloo backend, 2 processes.

``torch.multiprocessing.spawn`` runs the trainer in two ranks and each rank reports its weights, so the test can see
that gradients really are averaged (identical weights on both ranks); a second test runs the documented command,
``torchrun --nproc_per_node 2 -m generator.cli train ...``.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from generator.training import TrainConfig, Wav2PixTrainer

pytestmark = pytest.mark.slow  # two fresh Python processes importing torch: about 20-40 s on 2 busy cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, overrides: list[str], report: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        trainer = Wav2PixTrainer(TrainConfig.load(None, overrides))
        batches = len(trainer.batches())
        trainer.rng.manual_seed(trainer.config.seed)  # batches() drew from it: start the run from the seed again
        trainer.train()
        state = {f"G.{k}": v for k, v in trainer.G.state_dict().items()}
        state.update({f"D.{k}": v for k, v in trainer.D.state_dict().items()})
        torch.save({"state": state, "batches": batches, "distributed": trainer.distributed, "world": trainer.world},
                   Path(report) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _spawn(overrides: list[str], report: Path, deadline_s: float = 240) -> list[dict]:
    report.mkdir(parents=True, exist_ok=True)
    context = mp.spawn(_worker, args=(2, _free_port(), overrides, str(report)), nprocs=2, join=False)
    end = time.monotonic() + deadline_s
    while not context.join(timeout=5):
        if time.monotonic() > end:
            for process in context.processes:
                process.kill()
            pytest.fail(f"distributed training did not finish in {deadline_s} s (ranks out of step?)")
    return [torch.load(report / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_two_cpu_ranks_keep_identical_weights(tiny_overrides, tmp_path):
    out = tmp_path / "run"
    ranks = _spawn(tiny_overrides(out, epochs=1, batch_size=4, seed=1), tmp_path / "report")
    assert all(r["distributed"] and r["world"] == 2 for r in ranks)
    a, b = ranks[0]["state"], ranks[1]["state"]
    for name in a:
        if name.startswith(("G.", "D.")) and "running" not in name and "num_batches" not in name:
            assert torch.equal(a[name], b[name]), name  # gradients were all-reduced
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["pairs"] == 16  # 9 pairs per rank, batches of 4: 8 used on each
    sidecar = json.loads((out / "epoch_0001" / "generator.json").read_text())
    assert sidecar["training"]["world_size"] == 2


def test_ranks_with_unequal_shards_stay_in_step(train_manifest, tiny_overrides, tmp_path):
    """11 pairs on 2 ranks: 6 and 5. With batches of 4 that was 2 batches on rank 0 and 1 on rank 1 (the last
    single-sample batch is dropped), so rank 0 waited forever in an all-reduce that rank 1 never joined."""
    with train_manifest.open() as handle:
        rows = list(csv.reader(handle))
    small = train_manifest.parent / "eleven.csv"
    with small.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows[:12])
    overrides = [o for o in tiny_overrides(tmp_path / "run", epochs=1, batch_size=4) if not o.startswith("manifest=")]
    ranks = _spawn([f"manifest={small}", *overrides], tmp_path / "report", deadline_s=150)
    assert ranks[0]["batches"] == ranks[1]["batches"]


def test_torchrun_command(tiny_overrides, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), "-m", "generator.cli", "train",
               *tiny_overrides(out, epochs=1, batch_size=4)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"last checkpoint: {out / 'epoch_0001' / 'generator.safetensors'}" in proc.stdout
    sidecar = json.loads((out / "epoch_0001" / "generator.json").read_text())
    assert sidecar["training"]["world_size"] == 2
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 1
