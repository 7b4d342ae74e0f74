"""The manifest format: write/read round trip and every bad manifest giving one clear error naming the file."""

from __future__ import annotations

from dataclasses import replace

import pytest

from generator.data.manifest import COLUMNS, Pair, read_manifest, with_splits, write_manifest
from generator.errors import DataError


def test_round_trip_keeps_every_field(corpus, tmp_path):
    original = read_manifest(corpus.manifest)
    pairs = [
        Pair(p.identity, p.face, p.audio, p.split, f"g{i % 3}", "bgr" if i % 2 else "rgb",
             "female" if p.identity.endswith("0") else "")
        for i, p in enumerate(original.pairs)
    ]
    path = write_manifest(pairs, tmp_path / "out" / "m.csv")
    again = read_manifest(path)
    assert again.pairs == tuple(pairs)
    assert again.path == path
    header = path.read_text().splitlines()[0]
    assert header == ",".join(COLUMNS)


def test_paths_are_written_relative_and_resolved_on_reading(corpus, tmp_path):
    m = read_manifest(corpus.manifest)
    inside = write_manifest(m.pairs, corpus.root / "copy.csv")
    text = inside.read_text()
    assert str(corpus.root) not in text and "faces/person0/face_0.png" in text
    elsewhere = write_manifest(m.pairs, tmp_path / "elsewhere" / "deep" / "m.csv")
    assert "../../corpus/faces/person0/face_0.png" in elsewhere.read_text()
    for manifest in (read_manifest(inside), read_manifest(elsewhere)):
        assert [p.face for p in manifest.pairs] == [p.face for p in m.pairs]
        assert all(p.face.is_absolute() and p.face.is_file() for p in manifest.pairs)


def test_reading_a_folder_reads_its_manifest_csv(corpus):
    assert read_manifest(corpus.root).pairs == read_manifest(corpus.manifest).pairs


def test_optional_columns_default(corpus):
    m = read_manifest(corpus.manifest)  # only the four required columns
    assert {p.group for p in m.pairs} == {""} and {p.face_order for p in m.pairs} == {"rgb"}


def test_identities_splits_counts_select(corpus):
    m = read_manifest(corpus.manifest)
    assert m.identities == ["person0", "person1", "person2"]
    assert m.splits == ["test", "train"]
    assert m.counts() == {s: {f"person{i}": 6 for i in range(3)} for s in ("test", "train")}
    assert len(m.select("train")) == 18 and len(m.select(["train", "test"])) == 36
    with pytest.raises(DataError, match=r"no pairs in split\(s\) \['unseen_speech'\]"):
        m.select("unseen_speech")


def test_with_splits_relabels_and_checks_lengths(corpus):
    m = read_manifest(corpus.manifest)
    pairs = with_splits(m, ["x"] * len(m), [f"g{i}" for i in range(len(m))])
    assert {p.split for p in pairs} == {"x"} and pairs[5].group == "g5" and pairs[5].audio == m.pairs[5].audio
    with pytest.raises(ValueError):
        with_splits(m, ["x"], ["g"])


def test_content_hash_follows_file_bytes_and_labels(corpus, make_audio, make_noise):
    m = read_manifest(corpus.manifest)
    before = m.content_hash()
    assert before == read_manifest(corpus.manifest).content_hash()
    relabelled = with_splits(m, ["train"] * len(m), [""] * len(m))
    write_manifest(relabelled, corpus.root / "r.csv")
    assert read_manifest(corpus.root / "r.csv").content_hash() != before
    make_audio(m.pairs[0].audio, make_noise(4800, seed=999))  # same name, new bytes
    assert m.content_hash() != before


# --- bad manifests --------------------------------------------------------------------------------------------


def _rows(corpus, n=2):
    return [[c.identity, str(c.face), str(c.audio), c.split] for c in corpus.clips[:n]]


def test_missing_manifest(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="manifest not found") as err:
        read_manifest(path)
    assert str(path) in str(err.value)


def test_empty_manifest(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="manifest is empty") as err:
        read_manifest(path)
    assert str(path) in str(err.value)


def test_header_only_manifest(tmp_path, make_csv):
    path = make_csv(tmp_path / "header.csv", ["identity", "face", "audio", "split"])
    with pytest.raises(DataError, match="header but no rows") as err:
        read_manifest(path)
    assert str(path) in str(err.value)


def test_unknown_columns(tmp_path, make_csv, corpus):
    path = make_csv(tmp_path / "extra.csv", ["identity", "face", "audio", "split", "age"],
                    [r + ["30"] for r in _rows(corpus)])
    with pytest.raises(DataError, match=r"unknown column\(s\) \['age'\]") as err:
        read_manifest(path)
    assert str(path) in str(err.value)


def test_gender_column_is_optional_per_row_and_one_value_per_identity(tmp_path, make_csv, corpus):
    rows = _rows(corpus, len(corpus.clips))
    identity = rows[0][0]
    assert sum(r[0] == identity for r in rows) >= 3 and any(r[0] != identity for r in rows)
    genders = [("Female" if r[0] == identity and k % 2 else "") for k, r in enumerate(rows)]
    path = make_csv(tmp_path / "g.csv", ["identity", "face", "audio", "split", "gender"],
                    [r + [g] for r, g in zip(rows, genders, strict=True)])
    manifest = read_manifest(path)
    assert manifest.genders == {identity: "female"}  # lower-cased; rows that leave it empty are unknown, not other
    conflicting = [r + ["female" if k == 0 else "male" if r[0] == identity else ""] for k, r in enumerate(rows)]
    clash = make_csv(tmp_path / "clash.csv", ["identity", "face", "audio", "split", "gender"], conflicting)
    line = 2 + next(k for k, r in enumerate(rows) if k > 0 and r[0] == identity)
    with pytest.raises(DataError, match=rf"clash\.csv:{line}: identity '{identity}' has gender 'male' here but "
                                        r"'female' on line 2"):
        read_manifest(clash)


def test_content_hash_without_genders_is_unchanged_by_the_column(corpus):
    manifest = read_manifest(corpus.manifest)
    assert not manifest.genders
    gendered = type(manifest)(tuple(replace(p, gender="male") for p in manifest.pairs), manifest.path)
    assert gendered.content_hash() != manifest.content_hash()
    assert manifest.content_hash() == _legacy_content_hash(manifest)


def _legacy_content_hash(manifest) -> str:
    """The hash as computed before the gender column existed (provenance of earlier runs stays comparable)."""
    import hashlib

    from generator.data.manifest import file_sha256

    digest = hashlib.sha256()
    for p in manifest.pairs:
        digest.update(f"{p.identity}\0{p.split}\0{p.group}\0{p.face_order}\0".encode())
        digest.update(file_sha256(p.face).encode())
        digest.update(file_sha256(p.audio).encode())
    return digest.hexdigest()


def test_missing_required_column(tmp_path, make_csv, corpus):
    path = make_csv(tmp_path / "nosplit.csv", ["identity", "face", "audio"], [r[:3] for r in _rows(corpus)])
    with pytest.raises(DataError, match=r"missing required column\(s\) \['split'\]"):
        read_manifest(path)


def test_empty_value_names_line_and_column(tmp_path, make_csv, corpus):
    rows = _rows(corpus, 3)
    rows[2][0] = " "
    path = make_csv(tmp_path / "blank.csv", ["identity", "face", "audio", "split"], rows)
    with pytest.raises(DataError, match=r"blank\.csv:4: empty value in column 'identity'"):
        read_manifest(path)


def test_bad_face_order(tmp_path, make_csv, corpus):
    path = make_csv(tmp_path / "order.csv", ["identity", "face", "audio", "split", "face_order"],
                    [r + ["grb"] for r in _rows(corpus)])
    with pytest.raises(DataError, match=r"order\.csv:2: face_order must be one of"):
        read_manifest(path)


@pytest.mark.parametrize("kind", ["face", "audio"])
def test_missing_file_names_line_and_file(tmp_path, make_csv, corpus, kind):
    rows = _rows(corpus, 3)
    column = 1 if kind == "face" else 2
    rows[1][column] = "gone/missing_file.xyz"
    path = make_csv(tmp_path / "m.csv", ["identity", "face", "audio", "split"], rows)
    with pytest.raises(DataError) as err:
        read_manifest(path)
    assert f"{path}:3: {kind} file not found" in str(err.value)
    assert str(tmp_path / "gone" / "missing_file.xyz") in str(err.value)
    assert len(read_manifest(path, check_files=False)) == 3


def test_binary_garbage_is_not_a_csv_manifest(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(DataError) as err:
        read_manifest(path)
    assert str(path) in str(err.value)
