"""Experiment sections: an experiment writes ``<report folder>/experiments/<name>/experiment.json`` (title, summary,
settings, tables, figures beside it) and the report of that folder shows one section per experiment."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from reports.tables import Table

EXPERIMENTS_DIR = "experiments"
SECTION_FILE = "experiment.json"


@dataclass(frozen=True)
class Figure:
    path: Path
    caption: str


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    summary: str
    command_line: str
    settings: dict
    tables: list[Table]
    figures: list[Figure]


def section_dir(report_dir: Path, name: str) -> Path:
    folder = Path(report_dir) / EXPERIMENTS_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_section(folder: Path, section: Section, data: dict) -> Path:
    """Store ``section`` (figures must lie in ``folder``) and the experiment's raw figures ``data``."""
    record = {"name": section.name, "title": section.title, "summary": section.summary,
              "command_line": section.command_line, "settings": section.settings,
              "tables": [t.to_dict() for t in section.tables],
              "figures": [{"file": f.path.relative_to(folder).as_posix(), "caption": f.caption}
                          for f in section.figures],
              "data": data}
    path = folder / SECTION_FILE
    path.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    return path


def read_sections(report_dir: Path) -> list[Section]:
    """The experiment sections stored under ``report_dir``, by folder name."""
    sections = []
    for path in sorted((Path(report_dir) / EXPERIMENTS_DIR).glob(f"*/{SECTION_FILE}")):
        record = json.loads(path.read_text())
        sections.append(Section(
            record["name"], record["title"], record["summary"], record["command_line"], record["settings"],
            [Table.from_dict(t) for t in record["tables"]],
            [Figure(path.parent / f["file"], f["caption"]) for f in record["figures"]],
        ))
    return sections
