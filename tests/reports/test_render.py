"""``reports.render`` and ``evalkit report`` on a real tiny run; experiment sections in a report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from reports import render
from reports.cli import report_cmd
from tests.conftest import check_cli_error

pytestmark = pytest.mark.slow


def test_report_has_headline_table_baselines_grids_curves_and_provenance(run_copy):
    html_path = render(run_copy)
    assert html_path == run_copy / "report.html"
    markdown = (run_copy / "report.md").read_text()
    html = html_path.read_text()
    document = json.loads((run_copy / "results.json").read_text())
    for label in ("Real data", "Seen speech", "Unseen speech", "Unseen identities"):
        assert f"| {label} |" in markdown
    assert "n/a¹" in markdown and markdown.count("unavailable: FID Inception weights") <= 3  # once per table note
    assert "50.08 %" in markdown and "chance 10 %" in markdown and "2 identities (chance 50 %)" in markdown
    assert "Per-identity mean real face: seen" in markdown and "Random real face, random identity" in markdown
    assert json.loads((run_copy / "baselines.json").read_text())["status"] == "ok"
    assert document["provenance"]["checkpoint"]["sha256"] in markdown
    assert "Training curves from" in markdown
    for name in ("grid_alice.png", "grid_bob.png", "training.png", "bars_landmark_ratio.png", "confusion_seen.png"):
        assert f"report_files/{name}" in markdown and (run_copy / "report_files" / name).is_file()
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == markdown.count("![") and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_baselines_are_reused_until_the_results_change(run_copy):
    render(run_copy)
    stored = (run_copy / "baselines.json").stat().st_mtime_ns
    render(run_copy)
    assert (run_copy / "baselines.json").stat().st_mtime_ns == stored
    results = run_copy / "results.json"
    results.write_text(results.read_text() + "\n")
    render(run_copy)
    assert (run_copy / "baselines.json").stat().st_mtime_ns != stored


def test_baselines_unavailable_when_the_manifest_is_gone(run_copy, tmp_path):
    document = json.loads((run_copy / "results.json").read_text())
    document["provenance"]["data"]["manifest"] = str(tmp_path / "gone.csv")
    (run_copy / "results.json").write_text(json.dumps(document))
    render(run_copy)
    assert f"Unavailable: the run's manifest {tmp_path / 'gone.csv'} is no longer there" in \
        (run_copy / "report.md").read_text()


def test_report_command_prints_paths_and_rejects_a_folder_without_results(run_copy, tmp_path):
    result = CliRunner().invoke(report_cmd, [str(run_copy)])
    assert result.exit_code == 0, result.output
    assert f"report: {run_copy.resolve() / 'report.html'}" in result.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    check_cli_error(CliRunner().invoke(report_cmd, [str(empty)]), "no results.json")


def test_evalkit_run_renders_the_report(run_dir):
    from evalkit.runner import render_report

    target = Path(run_dir)
    assert render_report(target) and (target / "report.html").is_file()
