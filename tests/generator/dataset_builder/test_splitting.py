"""The leak-free split of a build, and identities recorded once."""

from __future__ import annotations

import pytest

from generator.data.manifest import Pair
from generator.data.split import SplitOptions
from generator.dataset_builder.cleaning import UNSPLIT
from generator.dataset_builder.splitting import split_build
from generator.errors import DataError

SR = 16_000


@pytest.fixture
def make_pairs(tmp_path, make_audio, make_noise):
    """``make_pairs({identity: recordings})``: per recording, 8 one-second windows at half-second steps."""

    def make(recordings: dict[str, int]) -> list[Pair]:
        pairs = []
        for ident, (name, count) in enumerate(recordings.items()):
            for rec in range(count):
                sound = make_noise(5 * SR, seed=100 * ident + rec)
                for k in range(8):
                    audio = make_audio(tmp_path / name / f"r{rec}_{k}.wav", sound[k * SR // 2 : k * SR // 2 + SR])
                    face = tmp_path / name / f"r{rec}_{k}.png"
                    pairs.append(Pair(name, face, audio, UNSPLIT))
        return pairs

    return make


def test_identities_with_several_recordings_get_unseen_speech(make_pairs):
    result = split_build(make_pairs({"ann": 3, "bo": 3, "cy": 1}), SplitOptions(test_fraction=0.3), progress=False)
    assert result.single_recording == ["cy"]
    by_identity = {}
    for p in result.pairs:
        by_identity.setdefault(p.identity, set()).add(p.split)
    assert by_identity["cy"] == {"unseen_identity"}
    assert "unseen_speech" in by_identity["ann"] and "train" in by_identity["ann"]
    training = {p.group for p in result.pairs if p.split in ("train", "seen")}
    held = {p.group for p in result.pairs if p.split == "unseen_speech"}
    assert held and training.isdisjoint(held)


def test_single_recording_identities_can_be_dropped(make_pairs):
    result = split_build(make_pairs({"ann": 2, "bo": 2, "cy": 1}), SplitOptions(test_fraction=0.3), "drop",
                         progress=False)
    assert {p.identity for p in result.pairs} == {"ann", "bo"}
    assert all(o.first < len(result.pairs) and o.second < len(result.pairs) for o in result.overlaps)


def test_all_identities_recorded_once_are_all_unseen(make_pairs):
    result = split_build(make_pairs({"ann": 1, "bo": 1}), SplitOptions(), progress=False)
    assert {p.split for p in result.pairs} == {"unseen_identity"}
    assert len({p.group for p in result.pairs}) == 2
    with pytest.raises(DataError, match="nothing is left"):
        split_build(make_pairs({"ann": 1, "bo": 1}), SplitOptions(), "drop", progress=False)


def test_nothing_to_split():
    with pytest.raises(DataError, match="no pairs survived cleaning"):
        split_build([], SplitOptions(), progress=False)
