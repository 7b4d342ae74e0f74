import json
from pathlib import Path

import pytest

from survey_app.manifest import ManifestError, load_run_input

from .conftest import IDENTITIES, PHOTOS_PER_IDENTITY, write_png


def test_loads_pairs_with_paths_relative_to_the_csv_and_run_metadata(run_dir: Path) -> None:
    (run_dir / "run.json").write_text(json.dumps({"checkpoint": "epoch_0004"}))
    run_input = load_run_input(run_dir)
    assert len(run_input.pairs) == len(IDENTITIES) * PHOTOS_PER_IDENTITY
    first = run_input.pairs[0]
    assert (first.split, first.identity) == ("test", "id00")
    assert first.real == run_dir / "real/id00_0.png" and first.generated.is_file()
    assert run_input.run_metadata == {"checkpoint": "epoch_0004"}
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


def test_run_metadata_must_be_a_json_object(run_dir: Path) -> None:
    (run_dir / "run.json").write_text("[1, 2]")
    with pytest.raises(ManifestError, match="must hold a JSON object"):
        load_run_input(run_dir)
