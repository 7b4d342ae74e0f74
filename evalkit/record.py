"""The run record: what ``evalkit run`` writes into a run folder and what ``reports`` and ``survey-app`` read.

A run folder holds ``results.json`` (a :class:`RunRecord`), the generated and real faces, ``pairs.csv`` (each
generated face with its clip's real face), ``generated.csv`` (each clip's audio and its generated face: the input of
``evalkit run --generated``), and ``references/<name>/results.json``, one record per reference generator scored by the
same metrics on the same clips. This module holds the types, the readers, the formatting of a record's figures as
table cells (shared by the experiments, which put cells into their sections' tables, and by ``reports``), which figures
are the headline ones, and the seed's published figures they are read against. It computes nothing, so ``reports``
imports it (and :mod:`evalkit.sections`) and nothing else of evalkit.

Figures (``Figure``) are ``{"value", "ci95": [low, high], "n", "chance", "ci_method", ...}``; a metric entry is
``{"status": "ok" | "unavailable" | "not applicable", "columns", "rows": {row: {figure: Figure, ...}}, "reason"}``
where rows are ``real`` and the evaluated splits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from evalkit.errors import EvalError

RESULTS_FILE = "results.json"
REFERENCES_DIR = "references"
PAIRS_FILE = "pairs.csv"
STUDY_FILE = "human_study.json"
STUDY_VERSION = 1
RECORD_VERSION = 3


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
    comparisons: NotRequired[dict]
    """{reference name: {metric: {split: {figure: paired difference model - reference}}}} (``evalkit.comparison``);
    a reference generator's own record has ``per_clip`` values instead."""
    warnings: list[str]
    provenance: dict
    verdict: NotRequired[list[dict]]
    """Per verdict figure and split: the best reference generator and the paired difference (``comparison.
    best_reference_verdict``)."""
    per_clip: NotRequired[dict]
    """{metric: {split: {figure: [value per clip, None where undefined]}}}, clips in ``clips[split]`` order."""
    clips: NotRequired[dict[str, list[str]]]
    """Each split's clip ids (``<split>/<identity>/<stem>``, as in pairs.csv) in run order."""
    gallery: NotRequired[dict]
    """The paired gallery's sample and how its nearest training faces were found (``evalkit.paired_gallery``)."""


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


def read_study(run_dir: Path) -> dict | None:
    """The run folder's human study (``human_study.json``, written by ``evalkit.study.import_study``), or None
    without one; raises RecordError when it is not JSON or was written by another version."""
    path = Path(run_dir) / STUDY_FILE
    if not path.is_file():
        return None
    try:
        study = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not JSON ({exc}); import the study again with --study-results") from None
    if not isinstance(study, dict) or study.get("study_version") != STUDY_VERSION:
        raise RecordError(f"{path}: not a human-study record of version {STUDY_VERSION}; import the study again "
                          "with --study-results")
    return study


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


def percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def format_figure(cell: dict) -> str:
    """``value [low, high]``, in per cent for proportions; the chance level is appended where there is one."""
    share = bool(cell.get("proportion")) or cell.get("ci_method") == "wilson"  # "wilson": run records before 0.2
    if share:
        low, high = cell["ci95"]
        text = f"{percent(cell['value'])} [{100 * low:.1f}, {100 * high:.1f}]"
    else:
        text = format_cell(cell)
    if cell.get("chance") is not None:
        chance = cell["chance"]
        text += f" (chance {percent(chance) if share else f'{chance:.3g}'})"
    return text


SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def unavailable_marks(results: dict) -> dict[tuple[str, str], str]:
    """A superscript number per distinct (status, reason) of the metrics not computed, in the order of the metrics: a
    cell shows ``unavailable¹``, the table's note gives reason 1 once (not the whole sentence in every cell)."""
    reasons = dict.fromkeys((entry["status"], entry.get("reason", "")) for entry in results.values()
                            if entry["status"] != "ok")
    return {key: str(k).translate(SUPERSCRIPTS) for k, key in enumerate(reasons, start=1)}


class Footnotes:
    """The notes of one table: each distinct reason why a cell holds no figure is written once in the table's note,
    and the cells carry its superscript number (``unavailable¹``, ``not evaluated²``) instead of the sentence.
    ``results``: the unavailable metrics' reasons are numbered first, in the order of the metrics."""

    def __init__(self, results: dict | None = None) -> None:
        self._marks: dict[str, str] = {}
        for status, reason in unavailable_marks(results or {}):
            self.unavailable(results or {}, status, reason)

    def mark(self, text: str) -> str:
        """The superscript number of ``text`` (a full sentence), numbered on first use."""
        return self._marks.setdefault(text, str(len(self._marks) + 1).translate(SUPERSCRIPTS))

    def unavailable(self, results: dict, status: str, reason: str) -> str:
        """The mark of a metric status and reason; its note names every metric of ``results`` it concerns."""
        metrics = [m for m, entry in results.items() if (entry["status"], entry.get("reason", "")) == (status, reason)]
        return self.mark(f"{', '.join(metrics)} {status}: {reason.rstrip('.')}.")

    def note(self) -> str:
        return " ".join(f"{mark} {text}" for text, mark in self._marks.items())


def metric_cell(results: dict, metric: str, figure: str, row: str, notes: Footnotes | None = None) -> str:
    """One cell of a results dict (a run record's ``results``, or a reference generator's): the formatted figure, or
    why there is none (metric not selected, unavailable or not applicable, split not evaluated, no real-data row, not
    applicable to the split). With ``notes``, every reason is a short word and a numbered mark explained once in the
    table's note; without, unavailable metrics are marked (``unavailable_marks``) and other reasons spelled out."""
    entry = results.get(metric)
    if entry is None:
        return f"not computed{notes.mark('not computed: metric not selected for this run.')}" if notes else \
            "not computed (metric not selected for this run)"
    if entry["status"] != "ok":
        status, reason = entry["status"], entry.get("reason", "")
        mark = notes.unavailable(results, status, reason) if notes else unavailable_marks(results)[status, reason]
        return f"{status}{mark}"
    values = entry["rows"].get(row)
    if values is None and row == "real":
        return f"—{notes.mark('—: no real-data row (the metric compares generated with real faces).')}" if notes \
            else "— (no real-data row: the metric compares generated with real faces)"
    if values is None:
        return f"not evaluated{notes.mark('not evaluated: split not in this run.')}" if notes else \
            "not evaluated (split not in this run)"
    if values.get("status") == "not applicable":
        reason = values["reason"]
        return f"not applicable{notes.mark(f'not applicable: {reason}.')}" if notes else \
            f"not applicable ({reason})"
    cell = values.get(figure)
    return format_figure(cell) if isinstance(cell, dict) else "not reported"


@dataclass(frozen=True)
class Column:
    """A headline figure: ``results[metric]["rows"][row][figure]``, shown as ``label``."""

    metric: str
    figure: str
    label: str


HEADLINE_COLUMNS = (
    Column("landmark_ratio", "ratio", "Landmark ratio"),
    Column("identity_accuracy", "accuracy", "Identity accuracy"),
    Column("fid", "fid", "FID"),
    Column("face_fd", "face_fd", "Face Fréchet distance"),
    Column("kid", "kid", "KID"),
    Column("identity_similarity", "same_clip_cosine", "Identity similarity (same-clip cosine)"),
)

# The figures of the verdict: means over clips (paired with the reference generators' on the same clips).
VERDICT_COLUMNS = (
    Column("landmark_ratio", "ratio", "Landmark ratio"),
    Column("identity_accuracy", "accuracy", "Identity accuracy"),
    Column("identity_similarity", "same_clip_cosine", "Same-clip cosine"),
    Column("retrieval", "recall@1", "Retrieval recall@1"),
    Column("forced_matching", "1:2", "Forced matching 1:2"),
    Column("craniofacial", "ratio_error", "Craniofacial ratio error"),
)

SEED_SOURCE = ("A. Duarte, F. Roldan, M. Tubau, J. Escur, S. Pascual, A. Salvador, E. Mohedano, K. McGuinness, "
               "J. Torres, X. Giro-i-Nieto, \"Wav2Pix: Speech-conditioned face generation using generative "
               "adversarial networks\", ICASSP 2019 (arXiv:1903.10195); figures as stated on the authors' ICASSP and "
               "CVPR-W 2019 posters (github.com/imatge-upc/wav2pix, gh-pages)")


@dataclass(frozen=True)
class SeedFigure:
    """A figure the seed (Wav2Pix) published, with its setting; ``audio_seconds`` None: not tied to a length."""

    label: str
    metric: str
    figure: str
    value: str
    setting: str
    audio_seconds: float | None


SEED_FIGURES = (
    SeedFigure("Landmark ratio", "landmark_ratio", "ratio", "90.25 %",
               "best model, 1 s audio (presumably 128 px), 10 identities, detector settings not stated", 1.0),
    SeedFigure("Landmark ratio", "landmark_ratio", "ratio", "89.12 %", "0.7 s audio, 10 identities", 0.7),
    SeedFigure("Landmark ratio", "landmark_ratio", "ratio", "81.16 %", "0.3 s audio, 10 identities", 0.3),
    SeedFigure("Identity accuracy", "identity_accuracy", "accuracy", "50.08 %",
               "fine-tuned VGG-Face, 10 identities, chance 10 %", None),
)
