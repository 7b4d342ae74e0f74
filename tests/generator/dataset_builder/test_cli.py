"""The ``build`` click command: one 'error:' line and exit status 2 for bad input, warnings for broken videos."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from generator.data.manifest import read_manifest
from generator.dataset_builder.cli import build


def run(*args):
    return CliRunner().invoke(build, [str(a) for a in args], catch_exceptions=True)


def test_missing_input(tmp_path, cli_error):
    cli_error(run(tmp_path / "nowhere", "--out", tmp_path / "out"), "nowhere", "not a folder of videos")


def test_bad_option(tmp_path, cli_error):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.mp4").write_bytes(b"")
    cli_error(run(tmp_path, "--out", tmp_path / "out", "--fps", "0"), "--fps must be positive")


def test_only_broken_videos(tmp_path, cli_error):
    (tmp_path / "in" / "ann").mkdir(parents=True)
    (tmp_path / "in" / "ann" / "a.mp4").write_bytes(b"not a video")
    cli_error(run(tmp_path / "in", "--out", tmp_path / "out"), "no pairs survived cleaning", "1 of 1 video(s) failed")


@pytest.mark.slow
def test_build_from_a_csv_with_a_broken_video(tmp_path, make_talking_video):
    for name, seed in (("a1", 1), ("a2", 2), ("b1", 3), ("b2", 4)):
        make_talking_video(tmp_path / "v" / f"{name}.mp4", seed=seed)
    (tmp_path / "v" / "bad.mp4").write_bytes(b"junk")
    rows = ["ann,v/a1.mp4", "ann,v/a2.mp4", "bo,v/b1.mp4", "bo,v/b2.mp4", "bo,v/bad.mp4"]
    (tmp_path / "list.csv").write_text("identity,video\n" + "\n".join(rows) + "\n")
    result = run(tmp_path / "list.csv", "--out", tmp_path / "out", "--windows", "2", "--max-pairs", "6",
                 "--test-fraction", "0.3")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().startswith("warning: ") and "bad.mp4: not a readable video" in result.stderr
    assert "1 video(s) failed" in result.stdout and "build_report.md" in result.stdout
    manifest = read_manifest(tmp_path / "out" / "manifest.csv")
    assert {n for c in manifest.counts().values() for n in c} == {"ann", "bo"}
    assert [sum(p.identity == i for p in manifest.pairs) for i in ("ann", "bo")] == [6, 6]


def test_bad_vad_mode(tmp_path, cli_error):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.mp4").write_bytes(b"")
    cli_error(run(tmp_path, "--out", tmp_path / "out", "--vad-mode", "4"), "--vad-mode must be one of (0, 1, 2, 3)")
