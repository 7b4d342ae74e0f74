"""The ``wav2pix`` generator kind: our safetensors checkpoints and the authors' ``gen_<epoch>.pth``, behind the
generator interface (``--checkpoint PATH`` is the shorthand for ``--generator wav2pix --generator-arg
checkpoint=PATH``)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import torch

from evalkit.errors import EvalError
from generator.checkpoint import Checkpoint, load_generator
from generator.data.faces import array_to_image
from generator.runtime import pick_device
from generator.synthesis import SAMPLING_MODES, Sampling, generate

NORMALISATIONS = {"peak": "peak+preemphasis", "legacy_py2": "legacy_py2+preemphasis"}


class Wav2PixGenerator:
    """A loaded Wav2Pix checkpoint as a speech-to-face generator.

    ``sampling``: ``eval`` (deterministic), ``dropout`` (dropout noise, seeded) or ``train`` (the original code's
    train-mode inference; a face depends on its batch) — see ``generator.synthesis``.
    """

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto", sampling: str = "eval") -> None:
        if sampling not in SAMPLING_MODES:
            raise EvalError(f"unknown sampling mode {sampling!r} (use one of {SAMPLING_MODES})")
        self.checkpoint: Checkpoint = load_generator(checkpoint, pick_device(device))
        self.sampling = cast(Sampling, sampling)  # checked above
        config = self.checkpoint.config
        self.image_size = config.image_size
        self.audio_seconds = config.audio_seconds
        self.sample_rate = 16_000
        self.normalisation = NORMALISATIONS[self.checkpoint.normalisation]
        self.identities = self.checkpoint.identities

    def generate(self, speech: np.ndarray, seed: int) -> np.ndarray:
        model = self.checkpoint.model
        inputs = torch.from_numpy(np.ascontiguousarray(speech, dtype=np.float32))[:, None]
        faces = generate(model, inputs.to(next(model.parameters()).device), self.sampling, seed,
                         self.checkpoint.output_order)
        return np.stack([np.asarray(array_to_image(face)) for face in faces.cpu().numpy()])

    def provenance(self) -> dict:
        return {**self.checkpoint.describe(), "sampling": self.sampling}
