"""The real Wav2Pix release (../shared/data/wav2pix-youtubers); skipped, with the reason, when it is absent.

The slow audit reads all 6,160 clips once and checks both the authors' split (it leaks) and the committed leak-free
split (it does not).
"""

from __future__ import annotations

import numpy as np
import pytest

from generator.data.audio import read_audio
from generator.data.audit import Overlap, audit_report, find_overlaps, load_clips
from generator.data.faces import load_face
from generator.data.importers import import_pairs_csv
from generator.data.manifest import Manifest, read_manifest

TRAINING = ("train", "seen")


@pytest.fixture(scope="module")
def authors(shared_data) -> Manifest:
    return Manifest(tuple(import_pairs_csv(shared_data / "pairs.csv")), shared_data / "pairs.csv")


@pytest.fixture(scope="module")
def committed(committed_split) -> Manifest:
    return read_manifest(committed_split)


def test_committed_split_covers_the_release(authors, committed):
    assert len(committed) == len(authors) == 6160
    assert {p.audio.resolve() for p in committed.pairs} == {p.audio.resolve() for p in authors.pairs}
    counts = committed.counts()
    assert set(counts) == {"train", "seen", "unseen_speech"}
    for split in counts:
        assert set(counts[split]) == {"jaimealtozano", "javiermuniz"}
    assert {p.face_order for p in committed.pairs} == {"bgr"}


def test_committed_split_shares_no_group_between_training_and_unseen_speech(committed):
    training = {p.group for p in committed.pairs if p.split in TRAINING}
    held = {p.group for p in committed.pairs if p.split == "unseen_speech"}
    assert all(p.group for p in committed.pairs) and training and held
    assert training.isdisjoint(held)
    groups_of_face: dict = {}
    for p in committed.pairs:
        groups_of_face.setdefault(p.face, set()).add(p.group)
    assert len(groups_of_face) == 1232 and all(len(g) == 1 for g in groups_of_face.values())  # one face, one group


def test_real_faces_and_clips_load(committed):
    pair = committed.pairs[0]
    clip = read_audio(pair.audio)
    assert clip.shape == (16_000,)
    face = load_face(pair.face, 64, swap_bgr=True)
    red, blue = face[0].mean(), face[2].mean()
    assert red > blue  # skin after the BGR fix is not blue
    assert load_face(pair.face, 64)[2].mean() > load_face(pair.face, 64)[0].mean()  # as stored it is


@pytest.fixture(scope="module")
def release_overlaps(authors) -> list[Overlap]:
    return find_overlaps(load_clips(authors, progress=False), progress=False)


def _rows(report: dict) -> dict[tuple[str, str], dict]:
    return {(r["split"], r["against"]): r for r in report["split_pairs"]}


@pytest.mark.slow
def test_authors_split_leaks(authors, release_overlaps):
    rows = _rows(audit_report(authors, release_overlaps, 1600))
    test_vs_train = rows[("test", "train")]
    assert test_vs_train["clips"] == 615
    assert test_vs_train["fraction_overlapping"] > 0.90
    assert test_vs_train["median_overlap_samples"] > 1600


@pytest.mark.slow
def test_committed_split_audits_to_zero_overlap(authors, committed, release_overlaps):
    # the overlaps are properties of the audio files: carry them over to the committed manifest's order
    position = {p.audio.resolve(): i for i, p in enumerate(committed.pairs)}
    index = np.array([position[p.audio.resolve()] for p in authors.pairs])
    moved = []
    for o in release_overlaps:
        a, b = sorted((int(index[o.first]), int(index[o.second])))
        moved.append(Overlap(a, b, o.samples))
    rows = _rows(audit_report(committed, moved, 1600))
    for split in TRAINING:
        for own, other in ((split, "unseen_speech"), ("unseen_speech", split)):
            assert rows[(own, other)]["clips_overlapping"] == 0, (own, other)
            assert rows[(own, other)]["max_overlap_samples"] == 0
    assert rows[("unseen_speech", "train")]["clips"] > 300
