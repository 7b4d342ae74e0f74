"""Identity-level cleaning rules and balancing, on hand-made extraction records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generator.dataset_builder.cleaning import (
    NO_AUDIO,
    NO_SPEECH,
    OUTLIER,
    CleaningOptions,
    balance,
    clean_identity,
    robust_centroid,
)
from generator.dataset_builder.extract import FACE, NO_FACE, SEVERAL_FACES, FrameRecord, VideoRecord, Window
from generator.errors import DataError

OUT = Path("/build")


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def face_frame(time: float, descriptor: np.ndarray, speech: list[float], pauses: float = 0.3) -> FrameRecord:
    windows = [Window(f"audio/a/v/{time}_{k}.wav", time, s, pauses) for k, s in enumerate(speech)]
    return FrameRecord(time, FACE, face=f"faces/a/v/{time}.png", descriptor=descriptor.tolist(), windows=windows)


def record(frames: list[FrameRecord], error: str | None = None, duration: float = 10.0) -> VideoRecord:
    return VideoRecord("a", "v", "v.mp4", [1, 1], {}, duration, error, frames)


def test_robust_centroid_ignores_a_minority_of_other_faces():
    rng = np.random.default_rng(0)
    speaker = rng.normal(0, 0.02, (8, 128)) + 0.1
    other = rng.normal(0, 0.02, (3, 128)) - 0.1
    centroid = robust_centroid(np.vstack([speaker, other]), 0.6)
    assert np.linalg.norm(centroid - speaker.mean(0)) < 0.05
    assert np.linalg.norm(centroid - np.vstack([speaker, other]).mean(0)) > 0.3


def test_every_reason_is_counted_and_the_rest_becomes_pairs():
    rng = np.random.default_rng(1)
    speaker = unit(rng.normal(size=128)) * 0.5
    stranger = speaker + unit(rng.normal(size=128)) * 0.9
    frames = [face_frame(t, speaker + rng.normal(0, 0.01, 128), [0.9, 0.2, 0.7]) for t in range(6)]
    frames += [
        face_frame(10, stranger, [0.9, 0.9]),  # someone else
        face_frame(11, speaker, [0.1, 0.3]),  # face fine, never speaking
        face_frame(12, speaker, []),  # no audio within reach
        face_frame(13, speaker, [0.9, 0.95], pauses=0.0),  # music: voiced without a pause
        FrameRecord(14, NO_FACE, thumbnail="rejected/a/v/14_no_face.png"),
        FrameRecord(15, SEVERAL_FACES, thumbnail="rejected/a/v/15_several_faces.png"),
    ]
    failed = record([], error="v2.mp4: no audio track", duration=0)
    result = clean_identity("a", [record(frames), failed], OUT, CleaningOptions(0.6, 0.5, min_pauses=0.1))
    assert (result.videos, result.failed_videos, result.frames) == (2, 1, 12)
    assert dict(result.removed) == {NO_FACE: 1, SEVERAL_FACES: 1, OUTLIER: 1, NO_SPEECH: 2, NO_AUDIO: 1}
    assert result.faces_kept == 6
    assert (result.windows, result.windows_no_speech, result.windows_no_pauses) == (6 * 3 + 2 + 2, 6 + 2, 2)
    assert len(result.pairs) == 12 and {p.face.name for p in result.pairs} == {f"{t}.png" for t in range(6)}
    assert all(p.face.is_absolute() and p.audio.is_relative_to(OUT) for p in result.pairs)
    assert {r.reason: r.image.name for r in result.rejections}[OUTLIER] == "10.png"


def test_balance_caps_and_equalises_with_a_seed():
    def results():
        out = []
        for name, n in (("a", 10), ("b", 4), ("c", 0)):
            r = clean_identity(name, [record([face_frame(t, np.zeros(128), [1.0]) for t in range(n)])], OUT,
                               CleaningOptions())
            out.append(r)
        return out

    capped = results()
    assert balance(capped, 6, False, 0) == {"a": 4, "b": 0, "c": 0}
    assert [len(r.pairs) for r in capped] == [6, 4, 0]
    equal = results()
    assert balance(equal, None, True, 0) == {"a": 6, "b": 0, "c": 0}
    again = results()
    balance(again, None, True, 0)
    assert [p.face for p in again[0].pairs] == [p.face for p in equal[0].pairs]
    with pytest.raises(DataError, match="--max-pairs"):
        balance(results(), 0, False, 0)


def test_bad_options():
    with pytest.raises(DataError, match="--min-speech"):
        CleaningOptions(min_speech=1.5).check()
    with pytest.raises(DataError, match="--min-pauses"):
        CleaningOptions(min_pauses=-0.1).check()
    with pytest.raises(DataError, match="--max-distance"):
        CleaningOptions(max_distance=0).check()
