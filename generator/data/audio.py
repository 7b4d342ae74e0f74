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

from generator.errors import DataError

SAMPLE_RATE = 16_000
PRE_EMPHASIS = 0.95
AUDIO_SECONDS = (0.3, 0.7, 1.0)
PCM16_SCALE = 32768.0  # int16 units per full scale

Normalisation = Literal["peak", "legacy_py2"]
ShortPolicy = Literal["error", "pad"]


def num_samples(seconds: float) -> int:
    """Samples at 16 kHz for an input length in seconds (0.3 s -> 4800, 0.7 s -> 11200, 1 s -> 16000)."""
    return int(round(seconds * SAMPLE_RATE))


def read_audio(path: str | Path) -> np.ndarray:
    """A WAV/FLAC (any format soundfile reads) as 16 kHz mono float64 in int16 units (full scale = 32768).

    Read in float64 at the file's full precision, then resampled in float64: a 16-bit file reads as its exact integer
    sample values (what the original code saw); 24/32-bit and float files keep every bit, including float peaks above
    full scale (legal in float WAV) and levels far below one 16-bit step. Nothing is clipped or rounded here; only
    a conversion to a fixed-point format does that (``to_pcm16``, and ``normalise``'s legacy mode).
    """
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
        from scipy.signal import resample_poly  # imported when needed: scipy.signal takes seconds to import

        mono = resample_poly(mono, ratio.numerator, ratio.denominator)
    return mono * PCM16_SCALE


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """int16 samples of a wave in int16 units: rounded, and clipped to the format's range (the one place a fixed-point
    format forces clipping)."""
    return np.round(np.clip(wave, -PCM16_SCALE, PCM16_SCALE - 1)).astype(np.int16)


def crop_to_length(wave: np.ndarray, length: int, short: ShortPolicy = "error", source: str = "") -> np.ndarray:
    """Centre-crop to ``length`` samples; shorter clips raise (``error``) or are zero-padded on both sides (``pad``)."""
    if wave.shape[0] >= length:
        start = (wave.shape[0] - length) // 2
        return wave[start : start + length]
    if short == "error":
        raise DataError(
            f"{source or 'audio'}: clip has {wave.shape[0]} samples ({wave.shape[0] / SAMPLE_RATE:.3f} s), "
            f"shorter than the {length} samples ({length / SAMPLE_RATE:.3f} s) requested; `wav2pix synthesize "
            "--pad-short` zero-pads such clips (evaluation and training use clips of the full length)"
        )
    missing = length - wave.shape[0]
    return np.pad(wave, (missing // 2, missing - missing // 2))


def normalise(wave: np.ndarray, mode: Normalisation = "peak", source: str = "") -> np.ndarray:
    """Peak normalisation then pre-emphasis 0.95, as float32 in [-1, 1] (before pre-emphasis).

    ``peak`` divides by the clip's largest absolute sample, so any level that is not digital silence becomes the same
    model input (a clip 100 dB below full scale included). ``legacy_py2`` reproduces the original Python-2 floor
    division on the int16 samples the original read, so it first rounds (and clips) to 16-bit values; a clip whose
    samples all round to 0 there is too quiet for that mode (an error saying so).
    """
    if mode not in ("peak", "legacy_py2"):
        raise DataError(f"unknown audio normalisation {mode!r} (use 'peak' or 'legacy_py2')")
    peak = np.max(np.abs(wave))
    if peak == 0:
        raise DataError(f"{source or 'audio'}: clip is entirely silent (all samples are zero)")
    if mode == "peak":
        scaled = wave / peak
    else:
        samples = to_pcm16(wave).astype(np.int64)
        peak16 = int(np.max(np.abs(samples)))
        if peak16 == 0:
            level = 20 * np.log10(peak / PCM16_SCALE)
            raise DataError(f"{source or 'audio'}: clip is quieter than one 16-bit step (peak {level:.1f} dBFS); the "
                            "legacy_py2 normalisation works on 16-bit samples, use 'peak'")
        scaled = np.floor_divide(samples, peak16).astype(np.float64)
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
