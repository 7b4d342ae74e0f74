"""``wav2pix data import / audit / split``: results, and bad input as one 'error:' line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from generator.data.importers import PAIRS_CSV_COLUMNS
from generator.data.manifest import read_manifest


def test_import_original_layout(cli, make_original_layout, tmp_path):
    root = make_original_layout({"ana": [1, 2], "ben": [3]})
    out = tmp_path / "m.csv"
    result = cli("data", "import", root, "--out", out, "--split", "test")
    assert result.exit_code == 0, result.output
    assert "3 pairs" in result.stdout
    m = read_manifest(out)
    assert m.counts() == {"test": {"ana": 2, "ben": 1}} and {p.face_order for p in m.pairs} == {"bgr"}


@pytest.fixture
def pairs_csv(corpus, make_csv):
    """The corpus described as the published release's pairs.csv."""
    rows = [[c.split, c.identity, str(i), c.face.relative_to(corpus.root).as_posix(),
             c.audio.relative_to(corpus.root).as_posix()] for i, c in enumerate(corpus.clips)]
    return make_csv(corpus.root / "pairs.csv", PAIRS_CSV_COLUMNS, rows)


def test_import_pairs_csv(cli, pairs_csv, tmp_path):
    result = cli("data", "import", pairs_csv, "--out", tmp_path / "m.csv", "--face-order", "rgb")
    assert result.exit_code == 0, result.output
    m = read_manifest(tmp_path / "m.csv")
    assert len(m) == 36 and m.splits == ["test", "train"] and {p.face_order for p in m.pairs} == {"rgb"}


def test_audit_json(cli, corpus):
    result = cli("data", "audit", corpus.manifest, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    truth = corpus.true_overlaps(1600)
    assert report["overlapping_clip_pairs"] == len(truth) and report["min_run_samples"] == 1600
    rows = {(r["split"], r["against"]): r for r in report["split_pairs"]}
    assert rows[("test", "train")]["clips_overlapping"] > 0


def test_audit_min_run_option_and_text_output(cli, corpus):
    strict = json.loads(cli("data", "audit", corpus.manifest, "--json", "--min-run", "4000").stdout)
    assert strict["overlapping_clip_pairs"] == len(corpus.true_overlaps(4000))
    assert strict["overlapping_clip_pairs"] < len(corpus.true_overlaps(1600))
    text = cli("data", "audit", corpus.manifest)
    assert text.exit_code == 0 and text.stdout.startswith("Leak audit of")


def test_split_writes_a_leak_free_manifest_and_report(cli, make_corpus, tmp_path):
    corpus = make_corpus("big", faces_per_identity=8)
    out = tmp_path / "split"
    result = cli("data", "split", corpus.manifest, "--out", out, "--seed", "4", "--test-fraction", "0.25",
                 "--unseen-identity", "person2")
    assert result.exit_code == 0, result.output
    m = read_manifest(out / "manifest.csv")
    assert m.splits == ["seen", "train", "unseen_identity", "unseen_speech"]
    assert all(p.group for p in m.pairs)
    report = json.loads((out / "split_report.json").read_text())
    assert report["options"]["seed"] == 4 and report["counts"] == m.counts()
    for row in report["split_pairs"]:
        if {row["split"], row["against"]} in ({"train", "unseen_speech"}, {"seen", "unseen_speech"}):
            assert row["clips_overlapping"] == 0
    again = tmp_path / "again"
    assert cli("data", "split", corpus.manifest, "--out", again, "--seed", "4", "--test-fraction", "0.25",
               "--unseen-identity", "person2").exit_code == 0
    assert (again / "manifest.csv").read_text() == (out / "manifest.csv").read_text()


def test_audit_accepts_a_release_pairs_csv(cli, corpus, pairs_csv):
    report = json.loads(cli("data", "audit", pairs_csv, "--json").stdout)
    assert report["clips"] == 36 and report["overlapping_clip_pairs"] == len(corpus.true_overlaps(1600))


# --- errors ----------------------------------------------------------------------------------------------------


def test_audit_missing_manifest(cli, cli_error, tmp_path):
    cli_error(cli("data", "audit", tmp_path / "nope.csv"), "nope.csv", "manifest not found")


def test_audit_header_only_manifest(cli, cli_error, tmp_path, make_csv):
    path = make_csv(tmp_path / "h.csv", ["identity", "face", "audio", "split"])
    cli_error(cli("data", "audit", path), "h.csv", "header but no rows")


def test_audit_unknown_column(cli, cli_error, corpus, make_csv):
    path = make_csv(corpus.root / "x.csv", ["identity", "face", "audio", "split", "age"],
                    [[c.identity, str(c.face), str(c.audio), c.split, "3"] for c in corpus.clips])
    cli_error(cli("data", "audit", path), "x.csv", "unknown column(s) ['age']")


@pytest.mark.parametrize("damage, fragment", [
    ("corrupt", "not a readable WAV/FLAC"), ("empty", "zero samples"), ("nan", "NaN"), ("missing", "file not found"),
])
def test_audit_bad_audio_names_the_file(cli, cli_error, corpus, make_audio, damage, fragment):
    import numpy as np

    target = corpus.clips[7].audio
    if damage == "corrupt":
        target.write_bytes(b"not audio at all")
    elif damage == "empty":
        make_audio(target, np.zeros(0, np.int16))
    elif damage == "nan":
        make_audio(target, np.array([0.1, np.nan, 0.2] * 100, np.float32), subtype="FLOAT")
    else:
        target.unlink()
    cli_error(cli("data", "audit", corpus.manifest), str(target), fragment)


def test_split_with_too_few_identities_for_unseen_identity(cli, cli_error, make_corpus, tmp_path):
    corpus = make_corpus("two", identities=2)
    cli_error(cli("data", "split", corpus.manifest, "--out", tmp_path / "o", "--unseen-identity", "person0"),
              "leaves fewer than 2")
    assert not (tmp_path / "o" / "manifest.csv").exists()


def test_split_bad_fraction(cli, cli_error, corpus, tmp_path):
    cli_error(cli("data", "split", corpus.manifest, "--out", tmp_path / "o", "--test-fraction", "1.5"),
              "--test-fraction must be between 0 and 1")


def test_import_errors(cli, cli_error, make_original_layout, tmp_path):
    root = make_original_layout({"ana": [1, 2], "ben": [3]})
    (root / "ana" / "preprocessed_frame_2.wav").unlink()
    cli_error(cli("data", "import", root, "--out", tmp_path / "m.csv"), "cropped_face_frame_2.png", "no partner")
    (root / "ben" / "cropped_face_frame_3.png").unlink()
    (root / "ana" / "cropped_face_frame_2.png").unlink()
    cli_error(cli("data", "import", root, "--out", tmp_path / "m.csv"), str(root / "ben"), "no faces")
    cli_error(cli("data", "import", tmp_path / "nothing", "--out", tmp_path / "m.csv"), "not a folder")
    cli_error(cli("data", "import", tmp_path / "pairs.csv", "--out", tmp_path / "m.csv"), "pairs.csv not found")
    assert not (tmp_path / "m.csv").exists()


def test_console_script_reports_one_line_without_traceback(tmp_path):
    """The installed entry point (a real process), not only the in-process runner."""
    missing = tmp_path / "missing.csv"
    proc = subprocess.run([sys.executable, "-m", "generator.cli", "data", "audit", str(missing)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {missing}: manifest not found"
    assert proc.stdout == ""
