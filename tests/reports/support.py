"""Helpers of the report tests (not fixtures): a tiny checkpoint, a training log, run options;
``tests/reports/conftest.py`` wraps them as fixtures."""

from __future__ import annotations

import json
from pathlib import Path

from evalkit.options import RunOptions
from generator.checkpoint import save_generator
from tests.evalkit.support import IDENTITIES
from tests.support import small_generator

TRAIN_LOG_KEYS = ("d_loss", "g_loss", "g_loss_l1", "d_score_real", "d_score_fake", "d_score_wrong")


def save_tiny_checkpoint(folder: Path, image_size: int = 64, audio_seconds: float = 0.3,
                         log: Path | None = None) -> Path:
    info = {"data": {"normalisation": "peak", "output_order": "rgb"},
            "training": {"epochs": 2, "seed": 0, **({"log": str(log)} if log else {})}}
    return save_generator(folder / "generator.safetensors", small_generator(image_size, audio_seconds),
                          list(IDENTITIES), info)


def write_train_log(path: Path, epochs: int = 3) -> Path:
    """A train_log.jsonl in ``wav2pix train``'s record layout (one JSON object per epoch)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({**{key: 1.0 / (epoch + k) for k, key in enumerate(TRAIN_LOG_KEYS, 1)}, "epoch": epoch})
             for epoch in range(1, epochs + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def options(checkpoint: Path, data: Path, out: Path, **extra) -> RunOptions:
    """Every metric the data and weights allow (FID and KID are unavailable: no Inception weights)."""
    return RunOptions(checkpoint=checkpoint, data=data, out=out, device="cpu", bootstrap=20,
                      cache_dir=out.parent / "features", **extra)
