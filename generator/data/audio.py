"""Speech loading and the Wav2Pix waveform normalisation.

Any WAV/FLAC (any rate, any channel count) becomes 16 kHz mono float32; the clip is then centre-cropped to the model's
input length, peak-normalised and pre-emphasised (reference notes §6.5). The original code ran under Python 2, where
`int_array / max` is floor division and turns speech into a sign signal; ``legacy_py2`` reproduces that (§5.5).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from generator.errors import DataError

SAMPLE_RATE = 16_000
PRE_EMPHASIS = 0.95
AUDIO_SECONDS = (0.3, 0.7, 1.0)

Normalisation = Literal["peak", "legacy_py2"]
ShortPolicy = Literal["error", "pad"]


def num_samples(seconds: float) -> int:
    """Samples at 16 kHz for an input length in seconds (0.3 s -> 4800, 0.7 s -> 11200, 1 s -> 16000)."""
    return int(round(seconds * SAMPLE_RATE))


def read_audio(path: str | Path) -> np.ndarray:
    """Read a WAV/FLAC file as 16 kHz mono int16-scaled float64 (values in int16 units, as the original code saw)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: audio file not found")
    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable WAV/FLAC audio file ({exc})") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: audio file has zero samples")
    if not np.all(np.isfinite(data)):
        raise DataError(f"{path}: audio contains NaN or infinite samples")
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        ratio = Fraction(SAMPLE_RATE, int(rate)).limit_denominator(1000)
        mono = resample_poly(mono, ratio.numerator, ratio.denominator)
    return np.round(np.clip(mono, -1.0, 1.0 - 1.0 / 32768) * 32768.0)


def crop_to_length(wave: np.ndarray, length: int, short: ShortPolicy = "error", source: str = "") -> np.ndarray:
    """Centre-crop to ``length`` samples; shorter clips raise (``error``) or are zero-padded on both sides (``pad``)."""
    if wave.shape[0] >= length:
        start = (wave.shape[0] - length) // 2
        return wave[start : start + length]
    if short == "error":
        raise DataError(
            f"{source or 'audio'}: clip has {wave.shape[0]} samples ({wave.shape[0] / SAMPLE_RATE:.3f} s), "
            f"shorter than the {length} samples ({length / SAMPLE_RATE:.3f} s) requested"
        )
    missing = length - wave.shape[0]
    return np.pad(wave, (missing // 2, missing - missing // 2))


def normalise(wave: np.ndarray, mode: Normalisation = "peak", source: str = "") -> np.ndarray:
    """Peak normalisation then pre-emphasis 0.95, as float32 in [-1, 1] (before pre-emphasis)."""
    peak = np.max(np.abs(wave))
    if peak == 0:
        raise DataError(f"{source or 'audio'}: clip is entirely silent (all samples are zero)")
    if mode == "peak":
        scaled = wave / peak
    elif mode == "legacy_py2":
        scaled = np.floor_divide(wave.astype(np.int64), int(peak)).astype(np.float64)
    else:
        raise DataError(f"unknown audio normalisation {mode!r} (use 'peak' or 'legacy_py2')")
    emphasised = np.empty_like(scaled)
    emphasised[0] = scaled[0]
    emphasised[1:] = scaled[1:] - PRE_EMPHASIS * scaled[:-1]
    return emphasised.astype(np.float32)


def load_speech(
    path: str | Path,
    seconds: float = 1.0,
    normalisation: Normalisation = "peak",
    short: ShortPolicy = "error",
) -> np.ndarray:
    """The model's input for one file: 16 kHz mono, centre-cropped to ``seconds``, normalised, float32 (N,)."""
    wave = read_audio(path)
    wave = crop_to_length(wave, num_samples(seconds), short, source=str(path))
    return normalise(wave, normalisation, source=str(path))
