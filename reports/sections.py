"""Experiment sections of a report: each ``<report folder>/experiments/<name>/experiment.json``
(:class:`evalkit.sections.Section`, written by an ``evalkit experiment``) becomes one section, its figure specs drawn
into the report's assets folder. Drawing is all that happens here: every number comes from the section record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from evalkit.record import RecordError
from evalkit.sections import (
    EXPERIMENTS_DIR,
    SECTION_FILE,
    Bars,
    Curves,
    FigureSpec,
    ImageGrid,
    Table,
    read_section,
)
from reports import figures


@dataclass(frozen=True)
class Figure:
    """A drawn figure: a PNG file, its caption, and speech to hear beside it (``(label, audio file)``)."""

    path: Path
    caption: str
    voices: tuple[tuple[str, Path], ...] = ()


@dataclass(frozen=True)
class RenderedSection:
    """What the templates show of one experiment."""

    name: str
    title: str
    summary: str
    command_line: str
    tables: list[Table]
    figures: list[Figure]


def _face(path: Path) -> np.ndarray:
    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise RecordError(f"{path}: face of an experiment's image grid missing or unreadable ({exc})") from None


def draw(spec: FigureSpec, folder: Path, out: Path) -> Figure:
    """Draw ``spec`` (of the experiment stored in ``folder``) to ``out``."""
    if isinstance(spec, Bars):
        path = figures.bar_chart(out, spec.title, spec.groups, spec.series, spec.ylabel)
    elif isinstance(spec, Curves):
        path = figures.curves(out, spec.title, spec.x, spec.series, spec.xlabel, spec.ylabel)
    elif isinstance(spec, ImageGrid):
        path = figures.image_grid(out, spec.title, [(label, [_face(folder / p) for p in paths])
                                                    for label, paths in spec.rows])
        return Figure(path, spec.caption, tuple((label, folder / p) for label, p in spec.voices))
    else:
        raise TypeError(f"not a figure spec: {spec!r}")
    return Figure(path, spec.caption)


def read_sections(report_dir: Path, assets: Path) -> list[RenderedSection]:
    """The experiment sections stored under ``report_dir``, by folder name, with their figures drawn into
    ``assets/experiments/<folder name>/``. Raises RecordError for an unreadable section or a missing face."""
    sections = []
    for path in sorted((Path(report_dir) / EXPERIMENTS_DIR).glob(f"*/{SECTION_FILE}")):
        section = read_section(path)
        out = assets / EXPERIMENTS_DIR / path.parent.name
        drawn = [draw(spec, path.parent, out / Path(spec.file).name) for spec in section.figures]
        sections.append(RenderedSection(section.name, section.title, section.summary, section.command_line,
                                        section.tables, drawn))
    return sections
