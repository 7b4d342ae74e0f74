"""Each experiment end to end on tiny random checkpoints (mechanics, not model quality), and ``evalkit compare``,
through the ``evalkit`` command (which renders the report folder an experiment returns)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from generator.checkpoint import load_generator
from tests.reports.support import save_tiny_checkpoint
from tests.support import check_cli_error, noise, write_audio

pytestmark = pytest.mark.slow


def invoke(*args: str | Path):
    return CliRunner().invoke(main, [str(a) for a in args])


def experiment(*args: str | Path):
    return invoke("experiment", *args)


def section(report_dir: Path, name: str) -> dict:
    return json.loads((report_dir / "experiments" / name / "experiment.json").read_text())


def check_generator_recorded(record: dict, checkpoint: Path) -> None:
    """The section's settings describe the evaluated checkpoint (not a ``"checkpoint": null`` option)."""
    assert "checkpoint" not in record["settings"]
    assert record["settings"]["generator"] == json.loads(json.dumps(load_generator(checkpoint).describe()))


def drawn(report_dir: Path, name: str, spec: dict) -> Path:
    """Where the report drew a section's figure (and the report links it)."""
    path = report_dir / "report_files" / "experiments" / name / spec["file"]
    assert path.is_file() and path.read_bytes().startswith(b"\x89PNG")
    assert f"report_files/experiments/{name}/{spec['file']}" in (report_dir / "report.md").read_text()
    return path


def check_voices(report_dir: Path, name: str, spec: dict, count: int) -> None:
    """The grid's voices are Ogg/Vorbis files in the experiment folder, linked in report.md and embedded in the HTML."""
    import soundfile as sf

    assert len(spec["voices"]) == count
    for label, path in spec["voices"]:
        file = report_dir / "experiments" / name / path
        assert sf.info(str(file)).subtype == "VORBIS"
        assert f"[{label}](experiments/{name}/{path})" in (report_dir / "report.md").read_text()
    assert (report_dir / "report.html").read_text().count('<audio controls preload="metadata" src="data:audio/ogg') \
        >= count


def common(eval_set: Path, out: Path) -> list:
    return ["--data", eval_set, "--out", out, "--device", "cpu", "--bootstrap", "20",
            "--cache-dir", out.parent / "features"]


def test_interpolation_adds_strip_probabilities_and_detection(isolated_home, checkpoint, eval_set, tmp_path):
    out = tmp_path / "report"
    result = experiment("interpolation", "--checkpoint", checkpoint, "--steps", "5",
                    *common(eval_set, out))
    assert result.exit_code == 0, result.output
    record = section(out, "interpolation")
    data = record["data"]
    assert data["alpha"] == [0.0, 0.25, 0.5, 0.75, 1.0] and data["identities"] == ["alice", "bob"]
    for k in range(5):
        assert data["probability"]["alice"][k] + data["probability"]["bob"][k] == pytest.approx(1.0)
    assert len(data["detected"]) == 5
    assert "Experiment: interpolation between two speakers" in (out / "report.md").read_text()
    check_generator_recorded(record, checkpoint)
    strip, curves = record["figures"]
    assert (strip["kind"], curves["kind"]) == ("image_grid", "curves")
    [(label, faces)] = strip["rows"]
    assert label == "embedding" and len(faces) == 5
    assert all((out / "experiments" / "interpolation" / face).is_file() for face in faces)
    assert curves["x"] == data["alpha"] and curves["series"]["P(alice)"] == data["probability"]["alice"]
    drawn(out, "interpolation", strip)
    drawn(out, "interpolation", curves)
    check_voices(out, "interpolation", strip, 2)


def test_averages_scores_each_n(isolated_home, checkpoint, eval_set, tmp_path):
    out = tmp_path / "report"
    result = experiment("averages", "--checkpoint", checkpoint, "--n", "1,2", "--draws", "2",
                    "--space", "waveform", *common(eval_set, out))
    assert result.exit_code == 0, result.output
    record = section(out, "averages")
    rows = record["data"]["results"]["landmark_ratio"]["rows"]
    assert rows["N=1"]["ratio"]["n"] == 4 and rows["N=2"]["ratio"]["n"] == 4
    check_generator_recorded(record, checkpoint)
    bars, grid = record["figures"]
    assert bars["groups"] == ["N=1", "N=2"] and bars["series"]["landmark ratio"][0] == rows["N=1"]["ratio"]
    assert [(label, len(faces)) for label, faces in grid["rows"]] == [("alice", 2), ("bob", 2)]
    drawn(out, "averages", bars)
    drawn(out, "averages", grid)
    check_voices(out, "averages", grid, 2)  # each identity's clip behind its N = 1 face
    bad = experiment("averages", "--checkpoint", checkpoint, "--n", "50", *common(eval_set, out))
    check_cli_error(bad, "--n 50 is more than the")


def test_unseen_identities_from_a_folder_of_wavs(isolated_home, checkpoint, eval_set, tmp_path):
    speech = tmp_path / "speech"
    for s, speaker in enumerate(("carol", "dave")):
        for k in range(3):
            write_audio(speech / speaker / f"clip_{k}.wav", noise(16_000, seed=50 + 10 * s + k))
    out = tmp_path / "report"
    result = experiment("unseen-identities", "--checkpoint", checkpoint, "--speech", speech,
                    *common(eval_set, out))
    assert result.exit_code == 0, result.output
    record = section(out, "unseen-identities")
    data = record["data"]
    assert data["landmark_ratio"]["rows"]["carol"]["ratio"]["n"] == 3
    check_generator_recorded(record, checkpoint)
    assert [(label, len(faces)) for label, faces in record["figures"][1]["rows"]] == [("carol", 3), ("dave", 3)]
    for spec in record["figures"]:
        drawn(out, "unseen-identities", spec)
    shares = data["classified_as"]["all unseen speakers"]
    assert shares["alice"]["value"] + shares["bob"]["value"] == pytest.approx(1.0)
    assert shares["alice"]["n"] == 6 and shares["alice"]["chance"] == 0.5
    write_audio(speech / "alice" / "clip.wav", noise(16_000))
    check_cli_error(experiment("unseen-identities", "--checkpoint", checkpoint, "--speech", speech,
                           *common(eval_set, out)), "speakers ['alice'] are identities the checkpoint was trained on")


def test_audio_length_runs_each_checkpoint_and_resolution_refuses_a_confound(isolated_home, checkpoint, eval_set,
                                                                             tmp_path):
    longer = save_tiny_checkpoint(tmp_path / "c07", audio_seconds=0.7)
    out = tmp_path / "report"
    result = experiment("audio-length", "--checkpoint", longer, "--checkpoint", checkpoint,
                    *common(eval_set, out))
    assert result.exit_code == 0, result.output
    record = section(out, "audio-length")
    table = record["tables"][0]
    assert [row[0] for row in table["rows"]] == ["0.3 s", "0.7 s"]
    assert "checkpoint" not in record["settings"]
    assert {label: g["sha256"] for label, g in record["settings"]["generators"].items()} == \
        {"0.3 s": load_generator(checkpoint).sha256, "0.7 s": load_generator(longer).sha256}
    assert [spec["kind"] for spec in record["figures"]] == ["bars", "bars"]
    for spec in record["figures"]:
        drawn(out, "audio-length", spec)
    assert [row[2] for row in table["rows"]] == ["81.16 % (10 identities)", "89.12 % (10 identities)"]
    assert (out / "experiments" / "audio-length" / "runs" / "0" / "results.json").is_file()
    check_cli_error(experiment("resolution", "--checkpoint", longer, "--checkpoint", checkpoint,
                           *common(eval_set, out)), "the checkpoints must differ in image_size")


def test_compare_reports_differences_with_intervals(run_dir, tmp_path):
    result = invoke("compare", run_dir, run_dir, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(r["difference"]["value"] == 0 and not r["difference"]["excludes_zero"] for r in rows)
    out = tmp_path / "report"
    assert invoke("compare", run_dir, run_dir, "--out", out).exit_code == 0
    assert "Experiment: comparison of two runs" in (out / "report.md").read_text()
    check_cli_error(invoke("compare", run_dir, tmp_path), "no results.json")
