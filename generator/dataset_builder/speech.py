"""Audio windows around a frame, and how much of a window is speech (WebRTC voice activity detection)."""

from __future__ import annotations

import numpy as np
import webrtcvad

from generator.data.audio import PCM16_SCALE, SAMPLE_RATE, num_samples, to_pcm16
from generator.dataset_builder.video import Soundtrack

VAD_FRAME_SECONDS = 0.03  # webrtcvad accepts 10, 20 or 30 ms frames
VAD_MODES = (0, 1, 2, 3)  # webrtcvad aggressiveness: 3 rejects the most non-speech


def window_starts(track: Soundtrack, time: float, context: float, seconds: float, count: int,
                  rng: np.random.Generator) -> list[int]:
    """Start samples of ``count`` random windows of ``seconds`` inside [time - context, time + context].

    The context is clipped to the soundtrack; an empty list when less than one window's length of it remains.
    """
    length = num_samples(seconds)
    low = max(track.index(time - context), 0)
    high = min(track.index(time + context), len(track.samples))
    if high - low < length:
        return []
    return [int(s) for s in rng.integers(low, high - length + 1, size=count)]


def _frames(samples: np.ndarray) -> list[np.ndarray]:
    step = int(round(VAD_FRAME_SECONDS * SAMPLE_RATE))
    return [samples[i : i + step] for i in range(0, len(samples) - step + 1, step)]


def pause_share(samples: np.ndarray) -> float:
    """Share of the window's 30 ms frames whose RMS is below half the window's mean frame RMS.

    Scheirer and Slaney's "percentage of low-energy frames" (ICASSP 1997): one person speaking pauses between
    syllables and words, while music, steady noise and several people talking at once fill those pauses.
    """
    frames = _frames(samples)
    if not frames:
        return 0.0
    rms = np.sqrt(np.mean(np.square(np.array(frames, dtype=np.float64)), axis=1))
    return float(np.mean(rms < 0.5 * rms.mean()))


def vad_gain(track: Soundtrack) -> float:
    """The gain that brings the soundtrack's peak to full scale (1 for digital silence): the voice activity detector
    then sees a quiet recording, or a float track peaking above full scale, at the level of a normal one, instead of
    rounded to zero or clipped by the 16-bit conversion."""
    peak = float(np.max(np.abs(track.samples))) if len(track.samples) else 0.0
    return 1.0 / peak if peak > 0 else 1.0


def speech_fraction(samples: np.ndarray, mode: int) -> float:
    """Share of the window's 30 ms frames that WebRTC VAD (aggressiveness ``mode``) calls speech.

    ``samples``: float, full scale 1.0; WebRTC VAD takes 16-bit samples, so they are rounded (and clipped) to int16
    here. Its decisions depend on the level: scale the soundtrack to a common level first (``vad_gain``).
    """
    vad = webrtcvad.Vad(mode)
    frames = _frames(to_pcm16(np.asarray(samples, np.float64) * PCM16_SCALE))
    if not frames:
        return 0.0
    voiced = sum(vad.is_speech(np.ascontiguousarray(f).tobytes(), SAMPLE_RATE) for f in frames)
    return voiced / len(frames)
