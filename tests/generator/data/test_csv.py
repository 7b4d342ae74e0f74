"""The one CSV reading rule, through every CSV reader of the product: manifests (``evalkit run --data``, ``wav2pix
data audit``, training), the release's pairs.csv, the dataset builder's video list."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.data.importers import PAIRS_CSV_COLUMNS, import_pairs_csv
from generator.data.manifest import read_csv_rows, read_manifest
from generator.dataset_builder.sources import find_videos
from generator.errors import DataError

ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8 with BOM (Excel CSV UTF-8)": lambda text: text.encode("utf-8-sig"),
}
SEPARATORS = {"comma": ",", "semicolon (Excel, decimal-comma locales)": ";", "tab": "\t"}


def _write(path: Path, rows: list[list[str]], encoding: str, separator: str, newline: str = "\r\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ENCODINGS[encoding](newline.join(separator.join(r) for r in rows) + newline))
    return path


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("separator", SEPARATORS)
def test_manifest_reads_the_same_in_every_accepted_form(corpus, tmp_path, encoding, separator):
    reference = read_manifest(corpus.manifest)
    rows = [["identity", "face", "audio", "split"]] + [[p.identity, str(p.face), str(p.audio), p.split]
                                                         for p in reference.pairs]
    path = _write(tmp_path / "m.csv", rows, encoding, SEPARATORS[separator])
    assert [(p.identity, p.face, p.audio, p.split) for p in read_manifest(path).pairs] == \
        [(p.identity, p.face, p.audio, p.split) for p in reference.pairs]


def test_non_ascii_identity_with_bom_is_kept(tmp_path):
    path = _write(tmp_path / "m.csv", [["identity", "note"], ["Zoë Ñúñez", "ok"]], "utf-8 with BOM (Excel CSV UTF-8)",
                  ",")
    header, rows = read_csv_rows(path, "manifest")
    assert header == ["identity", "note"] and rows[0]["identity"] == "Zoë Ñúñez"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_pairs_file_and_video_list_follow_the_same_rule(tmp_path, make_face, make_audio, make_noise, encoding):
    root = tmp_path / "release"
    face = make_face(root / "faces" / "a.jpg")
    audio = make_audio(root / "audio" / "a.wav", make_noise(4800, 1))
    pairs = _write(root / "pairs.csv", [list(PAIRS_CSV_COLUMNS), ["train", "ana", "1", "faces/a.jpg", "audio/a.wav"]],
                   encoding, ",")
    imported = import_pairs_csv(pairs)
    assert [(p.identity, p.face, p.audio) for p in imported] == [("ana", face, audio)]
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"")
    listing = _write(tmp_path / "videos.csv", [["identity", "video"], ["ann", "clips/a.mp4"]], encoding, ",")
    assert [(v.identity, v.path.name) for v in find_videos(listing)] == [("ann", "a.mp4")]


@pytest.mark.parametrize("data, fragment", [
    ("identity,face\nZoë,x\n".encode("utf-16"), "UTF-16 text; save it as CSV UTF-8"),
    ("identity,face\nZoë,x\n".encode("cp1252"), "not a CSV manifest in UTF-8"),
])
def test_other_encodings_are_one_error_saying_how_to_save(tmp_path, data, fragment):
    path = tmp_path / "m.csv"
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        read_manifest(path)
    assert str(path) in str(err.value) and fragment in str(err.value)
