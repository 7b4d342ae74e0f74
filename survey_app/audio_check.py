"""The audio check that comes before any audio trial: clips of 2-5 tones, counted by the rater, made with numpy.

In the manner of P.808's hearing check (digits to report) and of the counted-tone checks of web listening tests: the
tones play at a workable speech level (-20 dBFS peak), at random frequencies with jittered onsets, and every check
clip has the same length, so neither the length nor the file tells the count. A session holds AUDIO_CHECK_TRIALS
checks of different counts; a wrong count ends the session politely (survey_app.rater_sessions.answers) and the
screening reports it (survey_app.results).
"""

from __future__ import annotations

import random

import numpy as np

AUDIO_RATE = 16000  # Hz: the stored WAVs, speech and tones alike
AUDIO_CHECK_COUNTS = (2, 3, 4, 5)  # tones per check clip; the rater answers 1..6
AUDIO_CHECK_VALUES = tuple(str(count) for count in range(1, 7))
AUDIO_CHECK_TRIALS = 2  # per session, of different counts: guessing passes both with p = 1/30
TONE_S, TONE_GAP_S, TONE_LEAD_S = 0.15, 0.25, 0.3
TONE_CLIP_S = TONE_LEAD_S + max(AUDIO_CHECK_COUNTS) * (TONE_S + TONE_GAP_S)
TONE_PEAK = 0.1  # -20 dBFS: a workable speech level, quiet enough that a muted or faint output fails
TONE_HZ = (440.0, 660.0, 880.0)


def tone_clip(count: int, rng: random.Random) -> np.ndarray:
    """`count` tones of TONE_S at random frequencies of TONE_HZ, TONE_GAP_S apart with jittered onsets, in a
    TONE_CLIP_S clip; float32 mono at AUDIO_RATE, peak TONE_PEAK, 10 ms raised-cosine ramps (no clicks)."""
    samples = np.zeros(round(TONE_CLIP_S * AUDIO_RATE), dtype=np.float32)
    tone_length = round(TONE_S * AUDIO_RATE)
    ramp = round(0.01 * AUDIO_RATE)
    envelope = np.ones(tone_length, dtype=np.float32)
    envelope[:ramp] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
    envelope[-ramp:] = envelope[:ramp][::-1]
    time = np.arange(tone_length) / AUDIO_RATE
    for index in range(count):
        onset = TONE_LEAD_S + index * (TONE_S + TONE_GAP_S) + rng.uniform(-0.03, 0.03)
        start = round(onset * AUDIO_RATE)
        frequency = rng.choice(TONE_HZ)
        samples[start : start + tone_length] += TONE_PEAK * envelope * np.sin(2 * np.pi * frequency * time)
    return samples
