"""The generator interface: what evalkit needs from a speech-to-face model, and the typed description of one.

A **speech-to-face generator** (any framework) is an object with

=================  ==========================================================================================
``image_size``     int, side of the square faces it returns, in pixels
``audio_seconds``  float, length of the speech it takes, in seconds (clips are centre-cropped to it)
``sample_rate``    int, Hz; evalkit feeds 16 kHz speech (``16000``), adapters resample internally if needed
``normalisation``  str, how the loader prepares the waveform (``SPEECH_NORMALISATIONS``); default ``peak``
``identities``     tuple of the training identities it knows, or None
``generate``       ``generate(speech, seed) -> faces``: ``speech`` float32 (B, N), N = audio_seconds × 16000,
                   values in [-1, 1] after the declared normalisation; returns uint8 RGB (B, H, W, 3),
                   H = W = image_size. ``seed`` (int) seeds any sampling noise of this batch.
``provenance``     optional ``provenance() -> dict``: JSON-ready version, weights hashes, anything that
                   identifies the model (recorded in results.json)
=================  ==========================================================================================

Subclassing :class:`SpeechToFaceGenerator` is optional; :func:`check_generator` checks the duck type once, before any
face is generated. Inside the harness every generator kind (a model, a folder of finished faces, a reference
generator) is a :class:`FaceSource`: one face per manifest clip.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evalkit.errors import EvalError

if TYPE_CHECKING:
    from evalkit.distributed import Shard
    from evalkit.evalset import ImagePool
    from generator.data.manifest import Pair

SAMPLE_RATE = 16_000
SPEECH_NORMALISATIONS = {
    "none": "the waveform as read, scaled to [-1, 1] (full scale = 1)",
    "peak": "divided by its peak absolute value (peak = 1)",
    "peak+preemphasis": "peak-normalised, then pre-emphasis y[n] = x[n] - 0.95 x[n-1] (Wav2Pix's training input)",
    "legacy_py2+preemphasis": "the original Wav2Pix code's Python-2 floor division (a sign signal), then pre-emphasis",
}


class SpeechToFaceGenerator(ABC):
    """Base class for adapters (optional: any object with the same attributes works; see the module docstring)."""

    image_size: int
    audio_seconds: float
    sample_rate: int = SAMPLE_RATE
    normalisation: str = "peak"
    identities: tuple[str, ...] | None = None

    @abstractmethod
    def generate(self, speech: np.ndarray, seed: int) -> np.ndarray:
        """Faces for a batch of speech: float32 (B, N) in [-1, 1] -> uint8 RGB (B, image_size, image_size, 3)."""

    def provenance(self) -> dict:
        """JSON-ready description of the model (version, weights hashes); recorded in results.json."""
        return {}


@dataclass(frozen=True)
class GeneratorInfo:
    """The typed description of the faces' source that a run record carries.

    ``kind``: ``wav2pix``, ``python``, ``images`` or ``reference``; ``name``: checkpoint path, ``module:factory``,
    entry-point name, image folder or reference name; ``sha256``: identifies the source (weights file hash, hash of the
    provenance dict, or of the image files); ``audio_seconds``, ``sample_rate`` and ``normalisation`` are None for
    sources that do not read speech.
    """

    kind: str
    name: str
    image_size: int
    sha256: str
    audio_seconds: float | None = None
    sample_rate: int | None = None
    normalisation: str | None = None
    identities: tuple[str, ...] | None = None
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        record = asdict(self)
        record["identities"] = list(self.identities) if self.identities is not None else None
        return record


def json_sha256(value: Any) -> str:
    """SHA-256 of a JSON-ready value (keys sorted): identifies a generator that has no weights file of ours."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class RealReference:
    """Real faces a reference generator may draw from: the run's pool of distinct real faces (uint8 RGB at the
    evaluated size), the pool index of each clip's paired face, and each identity's training faces."""

    pool: ImagePool
    paired: np.ndarray
    training: dict[str, np.ndarray]


@dataclass(frozen=True)
class GenerationJob:
    """How to generate: the clips (manifest pairs, in run order), seed, batch size, the torchrun shard, the real
    faces (used only by reference generators) and the cache folder of generated faces (None: no cache)."""

    pairs: list[Pair]
    seed: int
    batch_size: int
    shard: Shard
    real: RealReference
    cache_dir: Path | None = None


class FaceSource(ABC):
    """One face per clip, for the harness: a model, a folder of finished faces or a reference generator."""

    info: GeneratorInfo

    def check(self, pairs: list[Pair]) -> None:  # noqa: B027 (optional hook: a kind with nothing to check keeps it)
        """Raise EvalError when the clips cannot be served (missing faces, clips too short...); runs before any face
        is generated."""

    @abstractmethod
    def faces(self, job: GenerationJob) -> np.ndarray:
        """uint8 RGB (len(job.pairs), S, S, 3), S = ``info.image_size``, on every process of a torchrun launch."""


def check_faces(faces: object, count: int, size: int, who: str) -> np.ndarray:
    """``faces`` as returned by a generator, checked: uint8 (count, size, size, 3).

    Raises:
        EvalError: another type, dtype or shape (one line naming the generator and what it returned).
    """
    if not isinstance(faces, np.ndarray):
        raise EvalError(f"{who}: generate() returned {type(faces).__name__}, expected a numpy uint8 array "
                        f"({count}, {size}, {size}, 3)")
    if faces.dtype != np.uint8 or faces.shape != (count, size, size, 3):
        raise EvalError(f"{who}: generate() returned {faces.dtype} {tuple(faces.shape)}, expected uint8 "
                        f"({count}, {size}, {size}, 3) (batch, height, width, RGB)")
    return faces


def check_generator(model: object, who: str) -> None:
    """Check a speech-to-face generator's declared attributes (see the module docstring).

    Raises:
        EvalError: a missing or invalid attribute, named.
    """
    if not callable(getattr(model, "generate", None)):
        raise EvalError(f"{who}: has no generate(speech, seed) method")
    size = getattr(model, "image_size", None)
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise EvalError(f"{who}: image_size must be an int >= 8 (pixels), got {size!r}")
    seconds = getattr(model, "audio_seconds", None)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= 60:
        raise EvalError(f"{who}: audio_seconds must be a number in (0, 60] seconds, got {seconds!r}")
    rate = getattr(model, "sample_rate", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise EvalError(f"{who}: sample_rate {rate!r} Hz: evalkit feeds {SAMPLE_RATE} Hz speech; resample inside the "
                        "adapter and declare sample_rate = 16000")
    normalisation = getattr(model, "normalisation", "peak")
    if normalisation not in SPEECH_NORMALISATIONS:
        raise EvalError(f"{who}: normalisation {normalisation!r} is not one of {sorted(SPEECH_NORMALISATIONS)}")
    identities = getattr(model, "identities", None)
    if identities is not None and not (isinstance(identities, (list, tuple))
                                       and all(isinstance(i, str) for i in identities)):
        raise EvalError(f"{who}: identities must be None or a sequence of names, got {identities!r}")
    provenance = getattr(model, "provenance", None)
    if provenance is not None and not callable(provenance):
        raise EvalError(f"{who}: provenance must be a method returning a dict")
