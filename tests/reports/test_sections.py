"""Experiment section records (``evalkit.sections``) and their rendering: figures are specs drawn at render time
from the numbers in experiment.json and the face PNGs beside it; a bad section is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from evalkit.cli import main
from evalkit.record import RecordError
from evalkit.sections import (
    SECTION_FILE,
    Bars,
    Curves,
    ImageGrid,
    Section,
    Table,
    read_section,
    section_dir,
    write_section,
)
from reports.render import render
from tests.support import check_cli_error

CELL = {"value": 0.5, "ci95": [0.25, 0.75], "n": 8, "chance": 0.5, "ci_method": "wilson"}


def write_example(report_dir: Path) -> tuple[Path, Section]:
    folder = section_dir(report_dir, "example")
    faces = []
    for k in range(3):
        (folder / "faces").mkdir(exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), 60 * k, dtype=np.uint8)).save(folder / "faces" / f"{k}.png")
        faces.append(f"faces/{k}.png")
    section = Section(
        "example", "an example", "Summary.", "evalkit experiment example", {"generator": {"sha256": "ab"}},
        [Table("Numbers", ["Row", "Value"], [["a", "0.5 [0.25, 0.75]"]], note="A note.")],
        [Bars("bars.png", "Bars", "Bar caption.", ["g1", "g2"], {"s": [CELL, None]}, "share"),
         ImageGrid("grid.png", "Grid", "Grid caption.", [("row a", faces), ("row b", faces[:1])]),
         Curves("curves.png", "Curves", "Curve caption.", [0.0, 0.5, 1.0], {"p": [0.1, 0.5, 0.9]}, "α", "p")],
        {"raw": [1, 2, 3]})
    return write_section(folder, section), section


def test_a_section_round_trips_through_its_record(tmp_path):
    path, section = write_example(tmp_path)
    record = json.loads(path.read_text())
    assert [f["kind"] for f in record["figures"]] == ["bars", "image_grid", "curves"]
    assert record["figures"][1]["rows"][0] == ["row a", ["faces/0.png", "faces/1.png", "faces/2.png"]]
    assert read_section(path) == section


def test_sections_are_drawn_at_render_time_into_the_report(tmp_path):
    write_example(tmp_path)
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    drawn = tmp_path / "report_files" / "experiments" / "example"
    for name in ("bars.png", "grid.png", "curves.png"):
        assert (drawn / name).read_bytes().startswith(b"\x89PNG")
    markdown = (tmp_path / "report.md").read_text()
    assert "## Experiment: an example" in markdown and "![Grid caption.](report_files/experiments/example/grid.png)" \
        in markdown and "| a | 0.5 [0.25, 0.75] |" in markdown
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "Curve caption." in html


@pytest.mark.parametrize("change, message", [
    (lambda path: path.write_text("{not json"), "not a JSON experiment section"),
    (lambda path: path.write_text(json.dumps({"name": "x", "figures": [{"file": "a.png", "caption": "c"}]})),
     "experiment section version None, this evalkit reads version 2; rerun the experiment"),
    (lambda path: path.write_text(path.read_text().replace('"kind": "curves"', '"kind": "pie"')),
     "malformed experiment section (KeyError: 'pie')"),
    (lambda path: path.write_text(path.read_text().replace('"title": "Numbers"', '"heading": "Numbers"')),
     "malformed experiment section"),
    (lambda path: (path.parent / "faces" / "1.png").unlink(), "faces/1.png: face of an experiment's image grid"),
    (lambda path: (path.parent / "faces" / "2.png").write_bytes(b"not a png"), "faces/2.png: face of an experiment"),
])
def test_a_bad_section_is_one_clear_error(tmp_path, change, message):
    path, _ = write_example(tmp_path)
    change(path)
    check_cli_error(CliRunner().invoke(main, ["report", str(tmp_path)]), message)
    with pytest.raises(RecordError):
        render(tmp_path)


def test_a_grid_without_its_faces_is_not_written(tmp_path):
    folder = section_dir(tmp_path, "example")
    section = Section("example", "t", "s", "c", {}, [], [ImageGrid("g.png", "G", "c", [("r", ["missing.png"])])], {})
    with pytest.raises(ValueError, match="missing.png"):
        write_section(folder, section)
    assert not (folder / SECTION_FILE).exists()
