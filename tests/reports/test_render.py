"""``reports.render`` and ``evalkit report`` on a real tiny run; experiment sections in a report."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from evalkit.cli import main
from reports.render import render
from tests.support import check_cli_error

pytestmark = pytest.mark.slow


def test_report_has_verdict_headline_references_gallery_curves_and_provenance(run_copy):
    html_path = render(run_copy)
    assert html_path == run_copy / "report.html"
    markdown = (run_copy / "report.md").read_text()
    html = html_path.read_text()
    document = json.loads((run_copy / "results.json").read_text())
    for label in ("Real data", "Seen speech", "Unseen speech", "Unseen identities"):
        assert f"| {label} |" in markdown
    assert "unavailable¹" in markdown and "unavailable (see note)" not in markdown
    assert "fid, kid, precision_recall unavailable: FID Inception weights" in markdown
    headline = markdown[markdown.index("### Headline results"):markdown.index("### The seed's")]
    mark = re.search(r"\| Unseen identities \| not evaluated([¹²³⁴⁵⁶⁷⁸⁹]) \|", headline).group(1)
    assert headline.count(f"{mark} not evaluated: split not in the data.") == 1
    assert "— (no real-data row" not in markdown and "(split not in" not in markdown
    assert "50.08 %" in markdown and "chance 10 %" in markdown and "2 identities (chance 50 %)" in markdown
    assert "ICASSP 2019 (arXiv:1903.10195)" in markdown and "shared/reference" not in markdown
    for label in ("Per-identity mean face: seen", "Random face, random identity: seen",
                  "Nearest training face (oracle): unseen speech", "Constant face: seen"):
        assert label in markdown
    assert document["generator"]["sha256"] in markdown
    assert markdown.index("## Verdict") < markdown.index("the model beats the best trivial generator on") < \
        markdown.index("Verdict: the model against the best trivial generator") < markdown.index("Headline results")
    assert "Model − best [95 %]" in markdown and "Nearest training face (oracle): " not in \
        markdown[markdown.index("| Figure | Split | Model |"):markdown.index("Headline results")]
    assert "Training curves from" in markdown
    for name in ("verdict.png", "training.png", "bars_landmark_ratio.png", "confusion_seen.png"):
        assert f"report_files/{name}" in markdown and (run_copy / "report_files" / name).is_file()
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == markdown.count("![") and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_the_paired_gallery_shows_each_sampled_clip_with_its_faces_and_speech(run_copy):
    render(run_copy)
    markdown = (run_copy / "report.md").read_text()
    html = (run_copy / "report.html").read_text()
    sample = json.loads((run_copy / "results.json").read_text())["gallery"]["sample"]
    assert sample and {(row["split"], row["identity"]) for row in sample} == \
        {("seen", "alice"), ("seen", "bob"), ("unseen_speech", "alice"), ("unseen_speech", "bob")}
    for row in sample:
        assert f"[{row['clip']}]({row['audio']})" in markdown
        assert f"![nearest training face]({row['nearest']})" in markdown
    players = re.findall(r'<audio controls preload="metadata" src="([^"]+)"', html)
    assert len(players) == len(sample) and all(p.startswith("data:audio/ogg;base64,") for p in players)
    full = (run_copy / "gallery.html").read_text()
    with (run_copy / "gallery.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(c["clips"] for c in json.loads((run_copy / "results.json").read_text())["data"].values())
    assert full.count('<div class="gallery-row">') == len(rows) and f'src="{rows[0]["audio"]}"' in full
    assert 'href="gallery.html"' in html


def test_run_folder_pairs_csv_has_clip_audio_and_group_columns(run_dir):
    """Contract 1: clip ids <split>/<identity>/<stem>, Ogg/Vorbis 16 kHz mono copies of the generator's input."""
    with (run_dir / "pairs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["split", "identity", "real", "generated", "clip", "audio", "group"]
    document = json.loads((run_dir / "results.json").read_text())
    assert [r["clip"] for r in rows] == [c for split in document["splits"] for c in document["clips"][split]]
    for row in rows:
        assert row["clip"] == f"{row['split']}/{row['identity']}/{Path(row['generated']).stem}"
        assert row["audio"] == f"audio/{row['clip']}.ogg" and row["group"] == ""
        info = sf.info(str(run_dir / row["audio"]))
        assert (info.subtype, info.samplerate, info.channels) == ("VORBIS", 16_000, 1)
        assert info.duration == pytest.approx(document["settings"]["audio_seconds"], abs=0.01)
    assert set(document["per_clip"]["landmark_ratio"]) == set(document["splits"])


def test_a_study_adds_its_figures_beside_the_automatic_ones_and_their_agreement(study_run):
    render(study_run)
    markdown = (study_run / "report.md").read_text()
    section = markdown[markdown.index("## Human study: Simulated raters (test fixture)"):]
    for text in ("People's judgements (95 % intervals)", "Voice-to-face matching 1 of 2 (real)",
                 "People beside the automatic metrics, split by split", "Automatic: Identity accuracy",
                 "Agreement per item", "matching (generated) | identity_similarity.same_clip_cosine",
                 "percentile bootstrap over items"):
        assert text in section, text
    assert "report_files/human_study.png" in section


def test_an_export_of_today_without_items_shows_its_figures_and_says_why_there_is_no_agreement(run_copy, tmp_path):
    from tests.reports.study_fixture import write_study_export

    clips = json.loads((run_copy / "results.json").read_text())["clips"]
    export = write_study_export(tmp_path / "legacy", clips, headline=None, items=None)
    result = CliRunner().invoke(main, ["report", str(run_copy), "--study-results", str(export)])
    assert result.exit_code == 0, result.output
    markdown = (run_copy / "report.md").read_text()
    assert "Recognised the person (yes) (generated)" in markdown
    assert "The export has no per-item rows" in markdown


def test_a_second_render_draws_nothing_and_writes_the_same_report(run_copy, monkeypatch):
    from reports import figures

    render(run_copy)
    first = (run_copy / "report.html").read_text()
    monkeypatch.setattr(figures, "_pyplot", lambda: pytest.fail("a figure was drawn again"))
    render(run_copy)
    assert (run_copy / "report.html").read_text() == first


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
