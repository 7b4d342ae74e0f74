"""Decoding: frames sampled exactly by timestamp, the soundtrack at 16 kHz mono, and unreadable videos."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from generator.dataset_builder.video import decode_video
from generator.errors import DataError
from tests.generator.dataset_builder.media import index_frame, speech_like, write_video


def decoded_indices(path, rate):
    decoded = decode_video(path, rate, lambda t, rgb: (t, int(round(rgb.mean() / 8)) % 32))
    return decoded, decoded.results


@pytest.mark.parametrize("fps", [25, Fraction(30000, 1001), 7])
def test_sampled_frame_is_the_one_on_screen(tmp_path, fps):
    seconds = 4
    count = int(seconds * fps)
    path = write_video(tmp_path / "v.mp4", index_frame, count, fps, speech_like(seconds))
    decoded, results = decoded_indices(path, rate=1.5)
    times = [t for t, _ in results]
    expected_times = [(k + 0.5) / 1.5 for k in range(math.ceil(count / fps * 1.5 - 0.5))]
    assert times == pytest.approx(expected_times)
    assert [i for _, i in results] == [math.floor(t * fps) % 32 for t in times]
    assert decoded.duration == pytest.approx(count / fps, abs=1e-6)


def test_variable_frame_rate_uses_timestamps(tmp_path):
    gaps = np.random.default_rng(0).uniform(0.02, 0.3, size=30)
    times = np.concatenate([[0.0], np.cumsum(gaps)[:-1]])
    path = write_video(tmp_path / "vfr.mp4", index_frame, 30, 25, speech_like(times[-1] + 0.1), times=list(times))
    _, results = decoded_indices(path, rate=2)
    for t, index in results:
        on_screen = int(np.searchsorted(times, t, side="right") - 1)
        assert index == on_screen % 32, t


def test_soundtrack_is_16k_mono_float(tmp_path):
    path = write_video(tmp_path / "v.mp4", index_frame, 50, 25, speech_like(2.0, rate=44_100))
    track = decode_video(path, 1, lambda t, rgb: None).soundtrack
    assert track.samples.dtype == np.float32
    end = track.offset + len(track.samples) / 16_000
    assert track.offset == pytest.approx(0, abs=0.05) and end == pytest.approx(2.0, abs=0.05)
    assert track.index(track.offset + 1.0) == 16_000


@pytest.mark.parametrize("level_db", [-72.0])
def test_a_quiet_soundtrack_keeps_its_detail(tmp_path, level_db):
    """Decoded in floating point: a track 72 dB down is not rounded to 16-bit steps (tracks above full scale cannot be
    made here: the AAC encoder clips its input; float WAV above full scale is tested in
    tests/generator/data/test_audio.py)."""
    speech = speech_like(2.0, rate=44_100)
    full = decode_video(write_video(tmp_path / "full.mp4", index_frame, 50, 25, speech), 1, lambda t, rgb: None)
    other = decode_video(write_video(tmp_path / "other.mp4", index_frame, 50, 25, speech * 10 ** (level_db / 20)), 1,
                         lambda t, rgb: None)
    a, b = full.soundtrack.samples.astype(np.float64), other.soundtrack.samples.astype(np.float64)
    assert np.corrcoef(a, b)[0, 1] > 0.99  # AAC itself codes a quiet track less finely; 16-bit decoding gave 0.96
    assert np.max(np.abs(b)) / np.max(np.abs(a)) == pytest.approx(10 ** (level_db / 20), rel=0.2)


def test_no_audio_track(tmp_path):
    path = write_video(tmp_path / "mute.mp4", index_frame, 10, 25)
    with pytest.raises(DataError, match="mute.mp4: no audio track"):
        decode_video(path, 1, lambda t, rgb: None)


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 500])
def test_unreadable_file(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(DataError, match="broken.mp4: not a readable video"):
        decode_video(path, 1, lambda t, rgb: None)


def test_zero_length_video(tmp_path):
    path = write_video(tmp_path / "empty.mkv", index_frame, 0, 25, speech_like(1.0))  # MP4 drops an empty track
    with pytest.raises(DataError, match="empty.mkv: the video stream has no frames"):
        decode_video(path, 1, lambda t, rgb: None)
