"""A complete evalkit generator adapter: copy this file, replace the toy model by yours.

evalkit needs an object with ``image_size``, ``audio_seconds``, ``sample_rate``, ``normalisation``, ``identities``
and ``generate(speech, seed)`` (see ``evalkit.generators.base``), and a factory that builds it from keyword
arguments. Nothing ties it to PyTorch: the toy model below is NumPy. A PyTorch model would do, in ``generate``::

    with torch.inference_mode():
        x = torch.from_numpy(speech).to(self.device)              # (B, N) float32 in [-1, 1]
        faces = self.model(x)                                      # e.g. (B, 3, H, W) in [-1, 1]
    return ((faces.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).byte().cpu().numpy()

Evaluate it (from the repository root; evalkit puts the working folder on the import path like ``python -m``)::

    evalkit run --generator examples.toy_generator:make_generator --generator-arg image_size=64

or install it under a name, in your package's ``pyproject.toml``::

    [project.entry-points."evalkit.generators"]
    toy = "examples.toy_generator:make_generator"

and run ``evalkit run --generator toy``.

The toy model: the speech's log-energy in 32 frequency bands, projected by a fixed random matrix to a skin tone and
a background colour, painted into an oval face. It follows the voice (different voices, different colours) and
knows no identity.
"""

from __future__ import annotations

import numpy as np

BANDS = 32


class ToySpeechToFace:
    """A deterministic NumPy speech-to-face toy (see the module docstring)."""

    sample_rate = 16_000  # evalkit feeds 16 kHz speech
    normalisation = "peak"  # peak-normalised waveform (see evalkit.generators.base.SPEECH_NORMALISATIONS)
    identities = None  # the training identities this model knows, when it has any

    def __init__(self, image_size: int = 64, audio_seconds: float = 1.0, seed: int = 0) -> None:
        self.image_size = image_size
        self.audio_seconds = audio_seconds
        self.seed = seed
        self.projection = np.random.default_rng(seed).normal(0, 0.5, size=(BANDS, 6))
        y, x = np.mgrid[0:image_size, 0:image_size] / image_size - 0.5
        self.oval = ((x / 0.32) ** 2 + (y / 0.42) ** 2 <= 1.0)[None, :, :, None]

    def generate(self, speech: np.ndarray, seed: int) -> np.ndarray:
        """uint8 RGB faces (B, image_size, image_size, 3) for float32 speech (B, N); ``seed`` is unused (the toy
        has no noise)."""
        spectrum = np.abs(np.fft.rfft(speech.astype(np.float64), axis=1)) ** 2
        bands = np.log1p(np.stack([band.mean(axis=1) for band in np.array_split(spectrum, BANDS, axis=1)], axis=1))
        colours = 128 + 100 * np.tanh((bands - bands.mean(axis=1, keepdims=True)) @ self.projection)
        skin, background = colours[:, None, None, :3], colours[:, None, None, 3:]
        faces = np.where(self.oval, skin, background)
        return np.clip(np.round(faces), 0, 255).astype(np.uint8)

    def provenance(self) -> dict:
        """What identifies this model in results.json."""
        return {"model": "toy spectral face", "version": "1", "seed": self.seed}


def make_generator(image_size: int = 64, audio_seconds: float = 1.0, seed: int = 0) -> ToySpeechToFace:
    """The factory evalkit calls with the ``--generator-arg key=value`` pairs as keyword arguments."""
    return ToySpeechToFace(image_size=image_size, audio_seconds=audio_seconds, seed=seed)
