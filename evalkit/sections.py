"""Experiment sections: what an ``evalkit experiment`` writes into ``<report folder>/experiments/<name>/`` and what
``reports`` reads to add one section per experiment to the folder's report.

A section is data: its tables are rows of formatted cells, its figures are specs (the numbers, labels and captions a
chart is drawn from; the faces of an image grid are PNG files in the experiment's folder, referenced by path relative
to it). ``reports`` draws the figures at render time. Like :mod:`evalkit.record`, this module computes nothing and
imports nothing heavy, so ``reports`` may import it.

``experiment.json``::

    {"section_version": 2, "name", "title", "summary", "command_line", "settings": {...},
     "tables": [{"title", "columns", "rows", "note", "row_classes"}],
     "figures": [{"kind": "bars" | "image_grid" | "curves", "file", "title", "caption", ...}],
     "data": {...}}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from evalkit.record import RecordError

EXPERIMENTS_DIR = "experiments"
SECTION_FILE = "experiment.json"
SECTION_VERSION = 2


@dataclass(frozen=True)
class Table:
    """A table as data: ``rows`` are lists of strings, one per column."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""
    row_classes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Table:
        return cls(**data)


@dataclass(frozen=True)
class _Spec:
    """What every figure spec has: the drawn PNG's file name, the chart's title and the caption under it."""

    file: str
    title: str
    caption: str


@dataclass(frozen=True)
class Bars(_Spec):
    """Grouped bars of figure cells (``{"value", "ci95", "chance"}``, None for a gap): ``series[name][k]`` is the bar
    of series ``name`` in group ``groups[k]``; intervals are error bars, chance levels dashed lines."""

    kind: ClassVar[str] = "bars"
    groups: list[str]
    series: dict[str, list[dict | None]]
    ylabel: str


@dataclass(frozen=True)
class ImageGrid(_Spec):
    """Labelled rows of faces: ``rows`` is ``[[label, [PNG path relative to the experiment folder, ...]], ...]``; the
    report puts a player for each of ``voices`` under the grid."""

    kind: ClassVar[str] = "image_grid"
    rows: list[tuple[str, list[str]]]
    voices: list[tuple[str, str]] = field(default_factory=list)
    """Speech to hear beside the faces: ``[[label, audio file relative to the experiment folder], ...]``."""


@dataclass(frozen=True)
class Curves(_Spec):
    """Lines of ``series[name]`` (values in [0, 1]) against ``x``, with markers."""

    kind: ClassVar[str] = "curves"
    x: list[float]
    series: dict[str, list[float]]
    xlabel: str
    ylabel: str


FigureSpec = Bars | ImageGrid | Curves
FIGURE_KINDS: dict[str, type] = {spec.kind: spec for spec in (Bars, ImageGrid, Curves)}


def figure_to_dict(spec: FigureSpec) -> dict:
    return {"kind": spec.kind, **asdict(spec)}


def figure_from_dict(data: dict) -> FigureSpec:
    """Raises KeyError/TypeError on an unknown kind or fields (``read_section`` turns them into RecordError)."""
    values = dict(data)
    spec = FIGURE_KINDS[values.pop("kind")](**values)
    if isinstance(spec, ImageGrid):
        spec = ImageGrid(spec.file, spec.title, spec.caption, [(label, list(paths)) for label, paths in spec.rows],
                         [(label, path) for label, path in spec.voices])
    return spec


@dataclass(frozen=True)
class Section:
    """One experiment's section of a report; ``data`` holds its raw figures (results entries, per-item values)."""

    name: str
    title: str
    summary: str
    command_line: str
    settings: dict
    tables: list[Table]
    figures: list[FigureSpec]
    data: dict[str, Any]

    def to_dict(self) -> dict:
        return {"section_version": SECTION_VERSION, "name": self.name, "title": self.title, "summary": self.summary,
                "command_line": self.command_line, "settings": self.settings,
                "tables": [t.to_dict() for t in self.tables], "figures": [figure_to_dict(f) for f in self.figures],
                "data": self.data}


def section_dir(report_dir: Path, name: str) -> Path:
    """``<report_dir>/experiments/<name>``, created."""
    folder = Path(report_dir) / EXPERIMENTS_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_section(folder: Path, section: Section) -> Path:
    """Store ``section`` as ``folder/experiment.json`` (atomically; NaN and infinity are refused)."""
    for spec in section.figures:
        if isinstance(spec, ImageGrid):
            missing = [p for _, paths in spec.rows for p in paths if not (folder / p).is_file()]
            missing += [p for _, p in spec.voices if not (folder / p).is_file()]
            if missing:
                raise ValueError(f"image grid {spec.file}: files {missing[:3]} are not in {folder}")
    path = folder / SECTION_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(section.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_section(path: Path) -> Section:
    """An ``experiment.json``; raises RecordError (one line naming the file) when it is not JSON, was written by an
    older evalkit, or lacks a field."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not a JSON experiment section ({exc})") from None
    if not isinstance(record, dict):
        raise RecordError(f"{path}: not an experiment section")
    if record.get("section_version") != SECTION_VERSION:
        raise RecordError(f"{path}: experiment section version {record.get('section_version')!r}, this evalkit reads "
                          f"version {SECTION_VERSION}; rerun the experiment")
    try:
        return Section(record["name"], record["title"], record["summary"], record["command_line"],
                       record["settings"], [Table.from_dict(t) for t in record["tables"]],
                       [figure_from_dict(f) for f in record["figures"]], record["data"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"{path}: malformed experiment section ({type(exc).__name__}: {exc})") from None
