"""Leak-free splits on synthetic data: groups of shared audio / shared faces, held out whole, deterministic."""

from __future__ import annotations

from collections import Counter

import pytest

from generator.data.audit import audit_report, find_overlaps, load_clips
from generator.data.manifest import Manifest, read_manifest
from generator.data.split import SplitOptions, group_clips, leak_free_split
from generator.errors import DataError

TRAINING = ("train", "seen")


def _split(corpus, **options):
    m = read_manifest(corpus.manifest)
    overlaps = find_overlaps(load_clips(m, progress=False), progress=False)
    return m, overlaps, leak_free_split(m, overlaps, SplitOptions(**options))


@pytest.fixture
def big_corpus(make_corpus):
    """Three identities with eight faces each: four audio groups per identity at least."""
    return make_corpus("big", faces_per_identity=8)


def test_no_training_clip_shares_audio_with_unseen_speech(big_corpus):
    m, overlaps, pairs = _split(big_corpus, seed=3, test_fraction=0.25)
    splits = [p.split for p in pairs]
    assert set(splits) == {"train", "seen", "unseen_speech"}
    # ground truth from the offsets the clips were cut at, independent of the audit code
    for (i, j), n in big_corpus.true_overlaps(1600).items():
        pair = {splits[i], splits[j]}
        assert not (pair & set(TRAINING) and "unseen_speech" in pair), (i, j, n, pair)
    # shorter shared runs do not count as leaks, but the audit of the result must show none at 1600
    report = audit_report(Manifest(tuple(pairs)), overlaps, 1600)
    for row in report["split_pairs"]:
        if {row["split"], row["against"]} in ({"train", "unseen_speech"}, {"seen", "unseen_speech"}):
            assert row["clips_overlapping"] == 0 and row["max_overlap_samples"] == 0
    # the authors'-style labels leaked: the split had real work to do
    assert any(big_corpus.clips[i].split != big_corpus.clips[j].split for i, j in big_corpus.true_overlaps())


def test_every_identity_holds_out_about_the_test_fraction(big_corpus):
    _, _, pairs = _split(big_corpus, seed=0, test_fraction=0.25, seen_fraction=0.2)
    for identity in ("person0", "person1", "person2"):
        counts = Counter(p.split for p in pairs if p.identity == identity)
        total = sum(counts.values())
        assert 0 < counts["unseen_speech"] < total
        assert abs(counts["unseen_speech"] - 0.25 * total) <= 6  # whole groups: at most about one group off
        training = counts["train"] + counts["seen"]
        assert counts["seen"] == round(0.2 * training)


def test_deterministic_for_a_seed_and_different_across_seeds(big_corpus):
    m = read_manifest(big_corpus.manifest)
    overlaps = find_overlaps(load_clips(m, progress=False), progress=False)
    runs = {seed: leak_free_split(m, overlaps, SplitOptions(seed=seed, test_fraction=0.25)) for seed in range(4)}
    assert leak_free_split(m, overlaps, SplitOptions(seed=2, test_fraction=0.25)) == runs[2]
    assert len({tuple(p.split for p in pairs) for pairs in runs.values()}) > 1


def test_clips_sharing_a_face_stay_in_one_group_and_one_side(big_corpus):
    _, _, pairs = _split(big_corpus, seed=1, test_fraction=0.25)
    by_face: dict = {}
    for p in pairs:
        by_face.setdefault(p.face, set()).add((p.group, p.split == "unseen_speech"))
    assert len(by_face) == 24
    for face, labels in by_face.items():
        assert len({g for g, _ in labels}) == 1, face
        assert len({held for _, held in labels}) == 1, face


def test_groups_join_shared_audio_and_shared_faces(corpus):
    m = read_manifest(corpus.manifest)
    overlaps = find_overlaps(load_clips(m, progress=False), progress=False)
    groups = group_clips(m, overlaps)
    for o in overlaps:
        assert groups[o.first] == groups[o.second]
    for i, p in enumerate(m.pairs):
        for j, q in enumerate(m.pairs):
            if p.face == q.face:
                assert groups[i] == groups[j]
    # without audio overlaps only faces join clips: one group per face
    assert len(set(group_clips(m, []))) == 12
    assert groups[0] == "g00000"


def test_a_face_spelled_two_ways_in_a_manifest_is_one_face(corpus, make_csv):
    """Hand-written manifests may reach one file by two relative paths; it is still one face (one group)."""
    rows = []
    for k, c in enumerate(corpus.clips):
        face = c.face.relative_to(corpus.root).as_posix()
        rows.append([c.identity, f"faces/../{face}" if k % 2 else face, c.audio.relative_to(corpus.root).as_posix(),
                     c.split])
    m = read_manifest(make_csv(corpus.root / "spelled.csv", ["identity", "face", "audio", "split"], rows))
    assert len(set(group_clips(m, []))) == 12


def test_unseen_identity_holds_out_whole_identities(make_corpus):
    corpus = make_corpus("three", faces_per_identity=4)
    _, _, pairs = _split(corpus, seed=0, test_fraction=0.25, unseen_identities=("person1",))
    for p in pairs:
        if p.identity == "person1":
            assert p.split == "unseen_identity"
        else:
            assert p.split in ("train", "seen", "unseen_speech")
    assert {p.split for p in pairs if p.identity != "person1"} >= {"train", "unseen_speech"}


def test_unseen_identity_needs_three_identities(make_corpus):
    corpus = make_corpus("two", identities=2)
    with pytest.raises(DataError, match="holding out 1 of 2 identities leaves fewer than 2"):
        _split(corpus, unseen_identities=("person0",))


def test_unknown_unseen_identity(corpus):
    with pytest.raises(DataError, match=r"unseen identities \['nobody'\] are not in the manifest"):
        _split(corpus, unseen_identities=("nobody",))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_test_fraction_must_be_between_0_and_1(corpus, fraction):
    with pytest.raises(DataError, match="--test-fraction must be between 0 and 1"):
        _split(corpus, test_fraction=fraction)


def test_bad_seen_fraction(corpus):
    with pytest.raises(DataError, match="seen fraction"):
        _split(corpus, seen_fraction=1.0)


def test_identity_whose_audio_is_one_group_cannot_be_split(make_corpus):
    corpus = make_corpus("one", faces_per_identity=1)
    with pytest.raises(DataError, match="identity 'person0': all 3 clips share audio in one group"):
        _split(corpus)
