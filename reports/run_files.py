"""What a report reads from a run folder besides results.json: the training log."""

from __future__ import annotations

import json
from pathlib import Path

TRAIN_LOG = "train_log.jsonl"


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
