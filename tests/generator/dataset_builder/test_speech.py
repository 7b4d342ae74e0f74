"""Audio windows around a frame and their voice activity."""

from __future__ import annotations

import numpy as np
import pytest

from generator.dataset_builder.speech import pause_share, speech_fraction, vad_gain, window_starts
from generator.dataset_builder.video import Soundtrack
from tests.generator.dataset_builder.media import speech_like


def track(seconds: float, offset: float = 0.0) -> Soundtrack:
    return Soundtrack(np.zeros(int(seconds * 16_000), np.float32), offset)


def test_windows_lie_inside_the_context_and_the_audio():
    rng = np.random.default_rng(0)
    starts = window_starts(track(10), 5.0, 2.0, 1.0, 200, rng)
    assert len(starts) == 200
    assert min(starts) >= 3 * 16_000 and max(starts) + 16_000 <= 7 * 16_000
    assert max(starts) - min(starts) > 2.5 * 16_000  # spread over the context, not one place


def test_context_is_clipped_to_the_soundtrack_and_its_offset():
    rng = np.random.default_rng(0)
    starts = window_starts(track(3, offset=0.5), 0.6, 2.0, 1.0, 50, rng)
    assert min(starts) >= 0 and max(starts) + 16_000 <= int(2.1 * 16_000) + 1
    assert window_starts(track(3, offset=0.5), 0.6, 0.6, 1.0, 5, rng) == []  # 0.5 s of audio in reach


def test_windows_are_seeded():
    a = window_starts(track(10), 5.0, 2.0, 1.0, 5, np.random.default_rng(7))
    b = window_starts(track(10), 5.0, 2.0, 1.0, 5, np.random.default_rng(7))
    assert a == b


def test_speech_fraction():
    voiced = speech_like(1.0, rate=16_000)
    assert speech_fraction(voiced, 3) > 0.9
    assert speech_fraction(np.zeros(16_000), 3) == 0.0
    half = voiced.copy()
    half[8000:] = 0
    assert 0.5 <= speech_fraction(half, 3) < 0.75  # half voiced, plus the VAD's hang-over


def test_pause_share_tells_one_voice_from_music():
    t = np.arange(16_000) / 16_000
    voiced = speech_like(1.0, rate=16_000)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330, 440)) * (1 + 0.3 * np.sin(2 * np.pi * 2 * t))
    assert pause_share(voiced) > 0.25
    assert speech_fraction(chord * 6000 / 32768, 3) > 0.5  # VAD alone takes music for speech
    assert pause_share(chord * 6000 / 32768) == 0.0
    assert pause_share(np.zeros(100)) == 0.0  # shorter than one frame


@pytest.mark.parametrize("level_db", [-72.0, -100.0, 12.0])
def test_voice_activity_does_not_depend_on_the_recording_level(level_db):
    voiced = speech_like(4.0, rate=16_000).astype(np.float32)
    voiced[16_000:32_000] = 0  # one silent second
    reference = Soundtrack(voiced, 0.0)
    scaled = Soundtrack((voiced * 10 ** (level_db / 20)).astype(np.float32), 0.0)
    window = slice(8_000, 40_000)
    expected = speech_fraction(reference.samples[window] * vad_gain(reference), 3)
    assert 0.3 < expected < 0.9
    assert speech_fraction(scaled.samples[window] * vad_gain(scaled), 3) == pytest.approx(expected, abs=0.05)
