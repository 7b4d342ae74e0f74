"""The run record: what ``evalkit run`` writes into a run folder and what ``reports`` and ``survey-app`` read.

A run folder holds ``results.json`` (a :class:`RunRecord`), the generated and real faces, ``pairs.csv`` (each
generated face with its clip's real face), ``generated.csv`` (each clip's audio and its generated face: the input of
``evalkit run --generated``), and ``references/<name>/results.json``, one record per reference generator scored by the
same metrics on the same clips. This module holds the types and the readers; it computes nothing, so ``reports``
imports it and nothing else of evalkit.

Figures (``Figure``) are ``{"value", "ci95": [low, high], "n", "chance", "ci_method", ...}``; a metric entry is
``{"status": "ok" | "unavailable" | "not applicable", "columns", "rows": {row: {figure: Figure, ...}}, "reason"}``
where rows are ``real`` and the evaluated splits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypedDict

from evalkit.errors import EvalError

RESULTS_FILE = "results.json"
REFERENCES_DIR = "references"
PAIRS_FILE = "pairs.csv"
RECORD_VERSION = 2


class Figure(TypedDict, total=False):
    value: float
    ci95: list[float]
    n: Any
    chance: float | None
    ci_method: str


class MetricEntry(TypedDict, total=False):
    status: str
    reason: str
    columns: list[str]
    rows: dict[str, dict[str, Any]]


class GeneratorRecord(TypedDict):
    """``evalkit.generators.base.GeneratorInfo.to_dict()``."""

    kind: str
    name: str
    image_size: int
    sha256: str
    audio_seconds: float | None
    sample_rate: int | None
    normalisation: str | None
    identities: list[str] | None
    provenance: dict


class ReferenceEntry(TypedDict):
    name: str
    label: str
    description: str
    results_file: str


class RunRecord(TypedDict):
    record_version: int
    evalkit_version: str
    created: str
    run_dir: str
    splits: list[str]
    data: dict[str, dict[str, int]]
    settings: dict
    generator: GeneratorRecord
    results: dict[str, MetricEntry]
    references: list[ReferenceEntry]
    warnings: list[str]
    provenance: dict


class RecordError(EvalError):
    """A run folder without a readable record (one line naming the file)."""


def write_record(path: Path, record: RunRecord) -> Path:
    """Write a record atomically (temporary file + rename); NaN and infinity are refused."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_record(path: Path) -> RunRecord:
    """A ``results.json``; raises RecordError when missing, not JSON, or not a run record."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: no run record") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not a JSON run record ({exc})") from None
    if not isinstance(record, dict) or not {"results", "splits", "provenance"} <= set(record):
        raise RecordError(f"{path}: not an evalkit run record (no results, splits and provenance)")
    return record  # type: ignore[return-value]


def read_references(run_dir: Path, record: RunRecord) -> list[tuple[ReferenceEntry, RunRecord]]:
    """The reference generators' records listed by a run record (those whose file is missing are skipped)."""
    found = []
    for entry in record.get("references", []):
        path = Path(run_dir) / entry["results_file"]
        if path.is_file():
            found.append((entry, read_record(path)))
    return found


def number(x: float) -> str:
    """Three significant digits (whole numbers from 1,000 up)."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def format_cell(cell: object) -> str:
    """``value [low, high]`` of a Figure; ``-`` for anything else."""
    if not isinstance(cell, dict) or "value" not in cell:
        return "-"
    low, high = cell["ci95"]
    return f"{number(cell['value'])} [{number(low)}, {number(high)}]"
