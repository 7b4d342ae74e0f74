import json
from pathlib import Path

import pytest

from survey_app.manifest import ManifestError, load_run_input

from .support import IDENTITIES, PHOTOS_PER_IDENTITY, write_png

RECORD = {"evalkit_version": "0.1.0", "created": "2026-11-30T08:00:00+00:00", "splits": ["seen"],
          "generator": {"kind": "wav2pix", "name": "g.safetensors", "sha256": "ab" * 32, "image_size": 64,
                        "audio_seconds": 1.0, "provenance": {"epochs": 4}},
          "results": {"fid": {"status": "ok"}},
          "provenance": {"data": {"content_sha256": "cd" * 32}, "code_version": "0.1.0+abc", "seed": 0,
                         "command_line": "evalkit run", "weights": {"dlib": {}}}}


def test_loads_pairs_with_paths_relative_to_the_csv_and_run_metadata(run_dir: Path) -> None:
    (run_dir / "results.json").write_text(json.dumps(RECORD))
    run_input = load_run_input(run_dir)
    assert len(run_input.pairs) == len(IDENTITIES) * PHOTOS_PER_IDENTITY
    first = run_input.pairs[0]
    assert (first.split, first.identity) == ("test", "id00")
    assert first.real == run_dir / "real/id00_0.png" and first.generated.is_file()
    assert run_input.run_metadata == {
        "evalkit_version": "0.1.0", "created": "2026-11-30T08:00:00+00:00", "splits": ["seen"],
        "generator": RECORD["generator"], "data": {"content_sha256": "cd" * 32}, "code_version": "0.1.0+abc",
        "seed": 0, "command_line": "evalkit run"}
    assert len(run_input.manifest_sha256) == 64


def _manifest(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_png(folder / "a.png", 1)
    (folder / "pairs.csv").write_text(text)
    return folder


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("split,identity,real\n", "lacks column(s) generated"),
        ("split,identity,real,generated\n", "lists no pairs"),
        ("split,identity,real,generated\ntest,,a.png,a.png\n", "pairs.csv:2: column identity is empty"),
        ("split,identity,real,generated\ntest,p,a.png,missing.png\n", "image missing.png does not exist"),
        ("split,identity,real,generated\ntest,p,a.png,pairs.csv\n", "pairs.csv is not a readable image"),
        ("split,identity,real,generated\ntest,p,/etc/passwd,a.png\n", "must be relative"),
    ],
)
def test_bad_manifests_are_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_run_input(_manifest(tmp_path / "run", text))


def test_missing_folder_and_missing_manifest_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        load_run_input(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="has no pairs.csv"):
        load_run_input(tmp_path / "empty")


@pytest.mark.parametrize("content", ["[1, 2]", '{"provenance": [1]}'])
def test_run_record_must_be_a_json_object(run_dir: Path, content: str) -> None:
    (run_dir / "results.json").write_text(content)
    with pytest.raises(ManifestError, match="must hold an evalkit run record"):
        load_run_input(run_dir)
    (run_dir / "results.json").write_text("{not json")
    with pytest.raises(ManifestError, match="is not valid JSON"):
        load_run_input(run_dir)
