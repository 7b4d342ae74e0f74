"""The run folder's clips (contract 1: clip ids, listening copies), the paired gallery's nearest training faces and
seeded sample, and the verdict against the best trivial generator."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from evalkit import clip_files
from evalkit.clip_files import LISTENING_PEAK, clip_id, listening_copy, write_listening_copies
from evalkit.comparison import best_reference_verdict
from evalkit.errors import EvalError
from evalkit.paired_gallery import nearest_rows, sample_positions
from generator.data.manifest import Pair
from tests.support import write_audio


def test_clip_id_is_the_generated_face_path_without_folder_and_suffix():
    assert clip_id("generated/unseen_speech/jaimealtozano/clip_14996.png") == "unseen_speech/jaimealtozano/clip_14996"
    with pytest.raises(ValueError):
        clip_id("real/alice/face_0.png")


def test_listening_copy_is_the_generators_centre_crop_as_ogg_vorbis_and_is_cached(tmp_path, monkeypatch):
    t = np.arange(32_000) / 16_000
    wave = (8000 * np.sin(2 * np.pi * np.where(np.abs(t - 1.0) < 0.5, 440.0, 200.0) * t)).astype(np.int16)
    clip = write_audio(tmp_path / "clip.wav", wave)
    pair = Pair("alice", tmp_path / "face.png", clip, "seen")
    target = listening_copy(pair, 0.5, tmp_path / "run" / "audio" / "seen" / "alice" / "clip.ogg", tmp_path / "cache")
    info = sf.info(str(target))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("OGG", "VORBIS", 16_000, 1)
    decoded, _ = sf.read(str(target))
    assert abs(len(decoded) - 8000) <= 64  # Vorbis frames may pad a little
    assert np.abs(decoded).max() == pytest.approx(LISTENING_PEAK, abs=0.08)
    spectrum = np.abs(np.fft.rfft(decoded))
    assert np.fft.rfftfreq(len(decoded), 1 / 16_000)[spectrum.argmax()] == pytest.approx(440, abs=4)  # the centre
    monkeypatch.setattr(clip_files, "encode_ogg", lambda wave: pytest.fail("encoded again"))
    again = listening_copy(pair, 0.5, tmp_path / "other" / "clip.ogg", tmp_path / "cache")
    assert again.read_bytes() == target.read_bytes()


def test_a_silent_clip_is_one_clear_error(tmp_path):
    clip = write_audio(tmp_path / "silent.wav", np.zeros(16_000, dtype=np.int16))
    with pytest.raises(EvalError, match="entirely silent"):
        listening_copy(Pair("alice", tmp_path / "f.png", clip, "seen"), 1.0, tmp_path / "x.ogg", None)


def test_nearest_rows_match_brute_force():
    rng = np.random.default_rng(0)
    queries, candidates = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    index, distance = nearest_rows(queries, candidates)
    brute = np.linalg.norm(queries[:, None] - candidates[None], axis=2)
    assert index.tolist() == brute.argmin(axis=1).tolist()
    assert distance == pytest.approx(brute.min(axis=1))
    with pytest.raises(ValueError):
        nearest_rows(queries, candidates[:0])


def test_the_gallery_sample_is_fixed_by_the_seed_and_takes_each_identity():
    identities = np.array(["a"] * 10 + ["b"] * 2 + ["c"] * 6)
    first = sample_positions(identities, 4, seed=0, split="seen")
    assert first.tolist() == sample_positions(identities, 4, seed=0, split="seen").tolist()
    assert first.tolist() != sample_positions(identities, 4, seed=1, split="seen").tolist()
    chosen = identities[first]
    assert (chosen == "a").sum() == 4 and (chosen == "b").sum() == 2 and (chosen == "c").sum() == 4
    assert list(first) == sorted(first)


def _cell(model: float, reference: float, low: float, high: float, verdict: str) -> dict:
    return {"value": model - reference, "ci95": [low, high], "n": 10, "chance": 0.0, "ci_method": "m",
            "model": model, "reference": reference, "verdict": verdict}


def test_the_verdict_takes_the_best_trivial_generator_not_the_oracle():
    comparisons = {
        "mean-face": {"landmark_ratio": {"seen": {"ratio": _cell(0.8, 0.9, -0.2, -0.01, "worse")}},
                      "craniofacial": {"seen": {"ratio_error": _cell(0.07, 0.05, 0.01, 0.03, "worse")}}},
        "constant": {"landmark_ratio": {"seen": {"ratio": _cell(0.8, 0.5, 0.2, 0.4, "better")}},
                     "craniofacial": {"seen": {"ratio_error": _cell(0.07, 0.09, -0.03, -0.01, "better")}}},
        "nearest-face": {"landmark_ratio": {"seen": {"ratio": _cell(0.8, 1.0, -0.3, -0.1, "worse")}}},
    }
    rows = best_reference_verdict(comparisons, ["seen", "unseen_speech"], {"mean-face": "Mean face"},
                                  frozenset({"nearest-face"}))
    by_metric = {row["metric"]: row for row in rows}
    assert set(by_metric) == {"landmark_ratio", "craniofacial"}
    assert by_metric["landmark_ratio"]["reference"] == "mean-face"  # 0.9 beats 0.5; the oracle's 1.0 is left out
    assert by_metric["landmark_ratio"]["reference_label"] == "Mean face"
    assert by_metric["landmark_ratio"]["verdict"] == "worse"
    assert by_metric["craniofacial"]["reference"] == "mean-face" and by_metric["craniofacial"]["lower_is_better"]


def listening_jobs(tmp_path, count: int = 6) -> list[tuple[Pair, Path]]:
    """(pair, target) of ``count`` distinct 1.5 s clips (tones of different pitches and levels)."""
    t = np.arange(24_000) / 16_000
    jobs = []
    for k in range(count):
        wave = ((2000 + 1000 * k) * np.sin(2 * np.pi * (150 + 60 * k) * t)).astype(np.int16)
        clip = write_audio(tmp_path / "clips" / f"clip_{k}.wav", wave)
        jobs.append((Pair("alice", tmp_path / "face.png", clip, "seen"), tmp_path / "run" / "audio" / f"c{k}.ogg"))
    return jobs


@pytest.mark.parametrize("threads", [1, 3])
def test_listening_copies_on_threads_decode_to_the_serial_encodings_samples(tmp_path, monkeypatch, threads):
    """Encoded on 1 or 3 threads, each copy decodes to exactly the samples of its own clip encoded alone (the bytes
    differ only where libsndfile draws a random Ogg serial number, as between any two encodings of one clip)."""
    monkeypatch.setattr(clip_files, "compute_threads", lambda others: threads)
    jobs = listening_jobs(tmp_path)
    write_listening_copies(jobs, 1.0, None)
    for pair, target in jobs:
        alone = clip_files.encode_ogg(clip_files.listening_wave(pair.audio, 1.0))
        np.testing.assert_array_equal(sf.read(str(target))[0], sf.read(io.BytesIO(alone))[0])


def test_listening_copies_are_hard_links_to_the_cache_or_copies_across_file_systems(tmp_path, monkeypatch):
    """A run links each copy to the one cached encoding of its clip (a second run encodes nothing and gets the same
    bytes); where hard links fail (another file system) it copies; writing into a folder again replaces each file (a
    linked copy is never written through, so the cache keeps its encodings)."""
    monkeypatch.setattr(clip_files, "compute_threads", lambda others: 2)
    jobs = listening_jobs(tmp_path, 3)
    cache = tmp_path / "cache"
    write_listening_copies(jobs, None, cache)
    cached = sorted((cache / "audio").rglob("*.ogg"))
    assert len(cached) == 3 and not list((cache / "audio").rglob("*.tmp"))
    assert {target.stat().st_ino for _, target in jobs} == {path.stat().st_ino for path in cached}
    first = [target.read_bytes() for _, target in jobs]
    encode_ogg = clip_files.encode_ogg
    monkeypatch.setattr(clip_files, "encode_ogg", lambda wave: pytest.fail("encoded again"))
    write_listening_copies(jobs, None, cache)  # the same run folder again
    assert [target.read_bytes() for _, target in jobs] == first

    def no_link(source, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(clip_files.os, "link", no_link)
    other = [(pair, tmp_path / "other" / target.name) for pair, target in jobs]
    write_listening_copies(other, None, cache)
    assert [target.read_bytes() for _, target in other] == first
    assert all(target.stat().st_nlink == 1 for _, target in other)
    monkeypatch.setattr(clip_files, "encode_ogg", encode_ogg)
    write_listening_copies(jobs[:1], 0.5, None)  # the first run folder again, without a cache: a new file
    assert jobs[0][1].read_bytes() != first[0]
    assert sorted(path.read_bytes() for path in cached) == sorted(first)  # the cached encodings are untouched


def test_a_silent_clip_among_many_stops_the_threaded_writing_with_its_error(tmp_path, monkeypatch):
    monkeypatch.setattr(clip_files, "compute_threads", lambda others: 2)
    jobs = listening_jobs(tmp_path, 4)
    silent = write_audio(tmp_path / "clips" / "silent.wav", np.zeros(16_000, dtype=np.int16))
    jobs.insert(2, (Pair("alice", tmp_path / "face.png", silent, "seen"), tmp_path / "run" / "silent.ogg"))
    with pytest.raises(EvalError, match="silent.wav: clip is entirely silent"):
        write_listening_copies(jobs, None, tmp_path / "cache")
