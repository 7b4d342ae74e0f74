"""``reports.render`` and ``evalkit report`` on a real tiny run; experiment sections in a report."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from reports.render import render
from tests.support import check_cli_error

pytestmark = pytest.mark.slow


def test_report_has_headline_table_references_grids_curves_and_provenance(run_copy):
    html_path = render(run_copy)
    assert html_path == run_copy / "report.html"
    markdown = (run_copy / "report.md").read_text()
    html = html_path.read_text()
    document = json.loads((run_copy / "results.json").read_text())
    for label in ("Real data", "Seen speech", "Unseen speech", "Unseen identities"):
        assert f"| {label} |" in markdown
    assert "unavailable¹" in markdown and "unavailable (see note)" not in markdown
    assert "fid, kid, precision_recall unavailable: FID Inception weights" in markdown
    assert "50.08 %" in markdown and "chance 10 %" in markdown and "2 identities (chance 50 %)" in markdown
    for label in ("Per-identity mean face: seen", "Random face, random identity: seen",
                  "Nearest training face (oracle): unseen speech", "Constant face: seen"):
        assert label in markdown
    assert document["generator"]["sha256"] in markdown
    verdict = markdown.index("Verdict: the model against the per-identity mean face")
    assert verdict < markdown.index("Headline results") and "Model − mean face [95 %]" in markdown
    assert "Training curves from" in markdown
    for name in ("grid_alice.png", "grid_bob.png", "training.png", "bars_landmark_ratio.png", "confusion_seen.png"):
        assert f"report_files/{name}" in markdown and (run_copy / "report_files" / name).is_file()
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == markdown.count("![") and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_rendering_reads_the_record_and_computes_nothing(run_copy, monkeypatch):
    """The reference rows come from references/<name>/results.json; no extractor or metric runs at render time."""
    import evalkit.features
    import evalkit.metrics

    def refuse(*args, **kwargs):
        raise AssertionError("the report computed something")

    monkeypatch.setattr(evalkit.features, "make_extractor", refuse)
    monkeypatch.setattr(evalkit.metrics, "resolve_metrics", refuse)
    reference = json.loads((run_copy / "references" / "mean-face" / "results.json").read_text())
    reference["results"]["landmark_ratio"]["rows"]["seen"]["ratio"]["value"] = 0.123456
    (run_copy / "references" / "mean-face" / "results.json").write_text(json.dumps(reference))
    render(run_copy)
    assert "12.3 %" in (run_copy / "report.md").read_text()


def test_reference_rows_are_absent_with_the_reason_when_none_were_scored(run_copy):
    document = json.loads((run_copy / "results.json").read_text())
    document["references"] = []
    (run_copy / "results.json").write_text(json.dumps(document))
    render(run_copy)
    assert "no reference generator was scored in this run" in (run_copy / "report.md").read_text()


def test_report_command_prints_paths_and_rejects_a_folder_without_results(run_copy, tmp_path):
    result = CliRunner().invoke(main, ["report", str(run_copy)])
    assert result.exit_code == 0, result.output
    assert f"report: {run_copy.resolve() / 'report.html'}" in result.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    check_cli_error(CliRunner().invoke(main, ["report", str(empty)]), "no results.json")


def test_evalkit_run_renders_the_report(isolated_home, checkpoint, eval_set, tmp_path):
    out = tmp_path / "rendered"
    result = CliRunner().invoke(main, ["run", "--checkpoint", str(checkpoint), "--data", str(eval_set), "--out",
                                       str(out), "--metrics", "landmark_ratio", "--references", "none",
                                       "--bootstrap", "5", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and f"report: {out / 'report.html'}" in result.output
