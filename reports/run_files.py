"""What a report reads from a run folder besides results.json: the saved face images and the training log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from generator.data.faces import read_image_rgb

TRAIN_LOG = "train_log.jsonl"


def _images(folder: Path, limit: int) -> list[np.ndarray]:
    return [np.asarray(read_image_rgb(p)) for p in sorted(folder.glob("*.png"))[:limit]]


def face_rows(run_dir: Path, splits: list[str], identity: str, limit: int) -> list[tuple[str, list[np.ndarray]]]:
    """Up to ``limit`` real faces of the identity, then up to ``limit`` generated faces per split (sorted by name)."""
    rows = [("real", _images(run_dir / "real" / identity, limit))]
    rows += [(f"generated: {split}", _images(run_dir / "generated" / split / identity, limit)) for split in splits]
    return [(label, images) for label, images in rows if images]


def identities_on_disk(run_dir: Path) -> list[str]:
    """Identities with saved real or generated faces."""
    folders = [p for p in (run_dir / "real").glob("*") if p.is_dir()]
    folders += [p for p in (run_dir / "generated").glob("*/*") if p.is_dir()]
    return sorted({p.name for p in folders})


def training_log_path(checkpoint: dict) -> Path | None:
    """The checkpoint's train_log.jsonl: the sidecar's ``training.log`` (relative to the checkpoint's folder; absolute
    in sidecars written before 0.2), else beside the checkpoint or one folder up (``wav2pix train`` writes
    OUT/train_log.jsonl and OUT/epoch_NNNN/generator.safetensors)."""
    candidates = []
    folder = Path(checkpoint["path"]).parent if checkpoint.get("path") else None
    recorded = (checkpoint.get("training") or {}).get("log")
    if recorded:
        candidates.append(folder / recorded if folder is not None else Path(recorded))
    if folder is not None:
        candidates += [folder / TRAIN_LOG, folder.parent / TRAIN_LOG]
    return next((p for p in candidates if p.is_file()), None)


def read_training_log(path: Path) -> list[dict]:
    """The per-epoch records of a training log (lines that are not JSON objects with an epoch are skipped)."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "epoch" in record:
            records.append(record)
    return records
