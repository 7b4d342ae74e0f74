"""Importers: the published release's pairs.csv and the authors' original folder layout."""

from __future__ import annotations

import pytest

from generator.data.importers import PAIRS_CSV_COLUMNS, import_original_layout, import_pairs_csv
from generator.data.manifest import read_manifest, write_manifest
from generator.errors import DataError


@pytest.fixture
def release(tmp_path, make_face, make_audio, make_noise, make_csv):
    """A miniature of the published release: pairs.csv beside faces/ and audio/ folders."""
    root = tmp_path / "release"
    rows = []
    for split, identity, index in [("train", "ana", 10), ("train", "ana", 11), ("test", "ana", 12),
                                   ("train", "ben", 20), ("test", "ben", 21)]:
        face = make_face(root / "faces" / split / identity / f"face_{index // 2}.jpg", (10, 20, 200))
        audio = make_audio(root / "audio" / split / identity / f"clip_{index}.flac", make_noise(4800, index))
        rows.append([split, identity, str(index), face.relative_to(root).as_posix(),
                     audio.relative_to(root).as_posix()])
    return make_csv(root / "pairs.csv", PAIRS_CSV_COLUMNS, rows)


def test_pairs_csv_import(release):
    pairs = import_pairs_csv(release)
    assert [(p.split, p.identity) for p in pairs] == [("train", "ana"), ("train", "ana"), ("test", "ana"),
                                                      ("train", "ben"), ("test", "ben")]
    assert all(p.face_order == "bgr" for p in pairs)  # the release's crops are BGR-swapped
    assert pairs[0].face == pairs[1].face  # one face, several clips
    assert all(p.face.is_file() and p.audio.is_file() and p.face.is_absolute() for p in pairs)
    assert {p.face_order for p in import_pairs_csv(release, face_order="rgb")} == {"rgb"}


def test_pairs_csv_import_writes_a_readable_manifest(release, tmp_path):
    written = write_manifest(import_pairs_csv(release), tmp_path / "m" / "manifest.csv")
    m = read_manifest(written)
    assert len(m) == 5 and m.splits == ["test", "train"] and m.identities == ["ana", "ben"]


def test_pairs_csv_errors(release, tmp_path, make_csv):
    missing = tmp_path / "none" / "pairs.csv"
    with pytest.raises(DataError, match="pairs.csv not found"):
        import_pairs_csv(missing)
    wrong = make_csv(tmp_path / "wrong.csv", ["identity", "face", "audio"], [["a", "b", "c"]])
    with pytest.raises(DataError, match=r"not a Wav2Pix pairs.csv \(missing column\(s\) \['split', 'source_index'\]"):
        import_pairs_csv(wrong)
    empty = make_csv(tmp_path / "empty" / "pairs.csv", PAIRS_CSV_COLUMNS)
    with pytest.raises(DataError, match="pairs.csv has no rows"):
        import_pairs_csv(empty)
    binary = tmp_path / "binary" / "pairs.csv"
    binary.parent.mkdir()
    binary.write_bytes(b"\xff\xd8\xff\xe0 a JPEG")
    with pytest.raises(DataError, match="pairs.csv: not a CSV pairs file"):
        import_pairs_csv(binary)
    (release.parent / "audio" / "test" / "ben" / "clip_21.flac").unlink()
    with pytest.raises(DataError) as err:
        import_pairs_csv(release)
    assert f"{release}:6: audio file not found" in str(err.value) and "clip_21.flac" in str(err.value)


def test_original_layout_import(make_original_layout):
    root = make_original_layout({"ana": [3, 1, 2], "ben": [7, 10]})
    (root / "ana" / "frame_1.png").write_bytes(b"full frame, ignored")  # other files of the authors' folders
    (root / "ana" / "bbox_1.pkl").write_bytes(b"ignored")
    (root / "notes.txt").write_text("ignored")
    pairs = import_original_layout(root, split="train")
    assert [(p.identity, p.face.name, p.audio.name) for p in pairs] == [
        ("ana", "cropped_face_frame_1.png", "preprocessed_frame_1.wav"),
        ("ana", "cropped_face_frame_2.png", "preprocessed_frame_2.wav"),
        ("ana", "cropped_face_frame_3.png", "preprocessed_frame_3.wav"),
        ("ben", "cropped_face_frame_7.png", "preprocessed_frame_7.wav"),
        ("ben", "cropped_face_frame_10.png", "preprocessed_frame_10.wav"),
    ]
    assert {p.split for p in pairs} == {"train"} and {p.face_order for p in pairs} == {"bgr"}
    assert {p.split for p in import_original_layout(root, split="test", face_order="rgb")} == {"test"}


def test_original_layout_accepts_jpeg_named_faces(make_original_layout, make_face):
    root = make_original_layout({"ana": [1], "ben": [2]})
    (root / "ben" / "cropped_face_frame_2.png").unlink()
    make_face(root / "ben" / "cropped_face_frame_2.jpg")
    assert [p.face.name for p in import_original_layout(root)][-1] == "cropped_face_frame_2.jpg"


def test_identity_with_audio_but_no_faces(make_original_layout):
    root = make_original_layout({"ana": [1, 2], "ben": [5]})
    (root / "ben" / "cropped_face_frame_5.png").unlink()
    with pytest.raises(DataError) as err:
        import_original_layout(root)
    assert str(root / "ben") in str(err.value) and "no faces" in str(err.value)


@pytest.mark.parametrize("orphan", ["cropped_face_frame_4.png", "preprocessed_frame_4.wav"])
def test_orphan_files_are_named(make_original_layout, orphan):
    root = make_original_layout({"ana": [1, 2, 4], "ben": [5]})
    partner = {"cropped_face_frame_4.png": "preprocessed_frame_4.wav",
               "preprocessed_frame_4.wav": "cropped_face_frame_4.png"}[orphan]
    (root / "ana" / partner).unlink()
    with pytest.raises(DataError) as err:
        import_original_layout(root)
    assert f"{root / 'ana' / orphan}: has no partner file with index 4" in str(err.value)


def test_files_not_matching_the_naming_are_ignored(make_original_layout):
    root = make_original_layout({"ana": [1], "ben": [2]})
    (root / "ana" / "preprocessed_frame_final.wav").write_bytes(b"")  # no index: not a pair file
    (root / "ana" / "cropped_face_frame_x.png").write_bytes(b"")
    pairs = import_original_layout(root)
    assert [p.audio.name for p in pairs] == ["preprocessed_frame_1.wav", "preprocessed_frame_2.wav"]


def test_original_layout_root_errors(tmp_path, make_original_layout):
    with pytest.raises(DataError, match="not a folder"):
        import_original_layout(tmp_path / "missing")
    empty = tmp_path / "empty"
    (empty / "ana").mkdir(parents=True)
    with pytest.raises(DataError, match="no <identity>/cropped_face_frame_N.png"):
        import_original_layout(empty)
