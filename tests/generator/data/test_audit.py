"""Leak audit on synthetic data: clips cut from one random recording at overlapping offsets, across two splits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generator.data.audit import audit_report, find_overlaps, format_audit, load_clips
from generator.data.manifest import read_manifest
from generator.errors import DataError


@pytest.fixture
def audited(corpus):
    m = read_manifest(corpus.manifest)
    overlaps = find_overlaps(load_clips(m, progress=False), progress=False)
    return corpus, m, overlaps


def test_every_overlap_found_with_its_exact_length_and_offset(audited):
    corpus, _, overlaps = audited
    truth = corpus.true_overlaps(1600)
    assert len(truth) > 20  # the corpus is built to overlap a lot
    assert {(o.first, o.second): o.samples for o in overlaps} == truth
    for o in overlaps:
        assert o.first < o.second
        assert o.offset == corpus.clips[o.second].start - corpus.clips[o.first].start


def test_report_counts_cross_split_clips_and_median_overlap(audited):
    corpus, m, overlaps = audited
    truth = corpus.true_overlaps(1600)
    split = [c.split for c in corpus.clips]
    best: dict[str, dict[int, int]] = {"train": {}, "test": {}}
    for (i, j), n in truth.items():
        if split[i] != split[j]:
            for clip in (i, j):
                best[split[clip]][clip] = max(best[split[clip]].get(clip, 0), n)
    assert best["test"], "the authors'-style split of the corpus must leak"
    report = audit_report(m, overlaps, 1600)
    rows = {(r["split"], r["against"]): r for r in report["split_pairs"]}
    assert set(rows) == {("test", "train"), ("train", "test")}
    for own, other in (("test", "train"), ("train", "test")):
        row = rows[(own, other)]
        assert row["clips"] == 18
        assert row["clips_overlapping"] == len(best[own])
        assert row["fraction_overlapping"] == pytest.approx(len(best[own]) / 18)
        assert row["median_overlap_samples"] == pytest.approx(float(np.median(list(best[own].values()))))
        assert row["max_overlap_samples"] == max(best[own].values())
    assert report["overlapping_clip_pairs"] == len(truth)
    assert report["cross_split_clip_pairs"] == sum(split[i] != split[j] for i, j in truth)
    json.dumps(report)  # the --json output is serialisable
    text = format_audit(report)
    assert "test" in text and "train" in text and "median overlap" in text


def test_runs_that_are_silent_or_near_silent_are_ignored(make_noise):
    quiet = np.random.default_rng(7).integers(-40, 41, 4000).astype(np.int16)  # below the 64-unit threshold
    a = np.concatenate([make_noise(3000, 1), np.zeros(4000, np.int16), make_noise(3000, 2), quiet])
    b = np.concatenate([make_noise(2000, 3), quiet, make_noise(3000, 4), np.zeros(4000, np.int16)])
    assert find_overlaps([a, b], progress=False) == []
    # control: the same run made loud is found, at full length
    loud = make_noise(4000, 5)
    a2 = np.concatenate([make_noise(3000, 1), loud, make_noise(3000, 2)])
    b2 = np.concatenate([make_noise(2000, 3), loud, make_noise(3000, 4)])
    (o,) = find_overlaps([a2, b2], progress=False)
    assert (o.first, o.second, o.samples, o.offset) == (0, 1, 4000, 1000)


def test_silence_threshold_is_a_parameter(make_noise):
    quiet = np.random.default_rng(8).integers(-40, 41, 4000).astype(np.int16)
    a = np.concatenate([make_noise(3000, 1), quiet])
    b = np.concatenate([quiet, make_noise(3000, 2)])
    assert find_overlaps([a, b], progress=False) == []
    assert [o.samples for o in find_overlaps([a, b], silence=10, progress=False)] == [4000]


@pytest.mark.parametrize("shared, min_run, found", [
    (1600, 1600, True), (1599, 1600, False), (1000, 1600, False), (1000, 800, True), (1000, 1000, True),
    (1000, 1001, False), (3333, 3000, True), (2999, 3000, False),
])
def test_minimum_run_length_is_respected(make_noise, shared, min_run, found):
    recording = make_noise(20_000, seed=11)
    a, b = recording[:6000], recording[6000 - shared : 12_000 - shared]
    overlaps = find_overlaps([a, b], min_run=min_run, progress=False)
    assert [(o.samples, o.offset) for o in overlaps] == ([(shared, 6000 - shared)] if found else [])


def test_clips_of_different_recordings_do_not_overlap(make_noise):
    assert find_overlaps([make_noise(8000, s) for s in range(6)], progress=False) == []


def test_clips_shorter_than_a_block_are_skipped(make_noise):
    rec = make_noise(9000, 12)
    assert [o.samples for o in find_overlaps([rec[:500], rec[:5000], rec[2000:7000]], progress=False)] == [3000]


def test_min_run_below_two_is_rejected(make_noise):
    with pytest.raises(DataError, match="at least 2"):
        find_overlaps([make_noise(100)], min_run=1)


def test_load_clips_names_a_corrupt_file(corpus):
    m = read_manifest(corpus.manifest)
    m.pairs[4].audio.write_bytes(b"garbage")
    with pytest.raises(DataError) as err:
        load_clips(m, progress=False)
    assert str(m.pairs[4].audio) in str(err.value)
