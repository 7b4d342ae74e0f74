"""Helpers of the evalkit tests (not fixtures): the embedded faces, a random Inception state, synthetic evaluation
sets; ``tests/evalkit/conftest.py`` wraps them as fixtures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from evalkit.stats import Clusters, cluster_resamples
from tests.support import REPO, noise, write_audio, write_csv

EMBEDDED_FACES = REPO / "evalkit" / "eval_data" / "wav2pix-youtubers" / "faces"
IDENTITIES = ("alice", "bob")


def embedded_face(identity: str = "jaimealtozano", index: int = 0) -> Path:
    """The ``index``-th real face crop (128 px RGB JPEG) of a person in the repository's embedded evaluation set."""
    files = sorted((EMBEDDED_FACES / identity).glob("*.jpg"))
    if len(files) <= index:
        pytest.skip(f"embedded evaluation set not present ({EMBEDDED_FACES / identity})")
    return files[index]


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised state dict of pytorch-fid's FID Inception (its loader and weight loading mocked)."""
    from pytorch_fid import inception

    torch.manual_seed(seed)
    with mock.patch.object(inception, "load_state_dict_from_url", return_value=None), \
            mock.patch("torchvision.models.inception.Inception3.load_state_dict"):
        return inception.fid_inception_v3().state_dict()


def face_image(identity: int, k: int, size: int = 96) -> np.ndarray:
    """A textured face-sized image whose colour depends on the identity."""
    rng = np.random.default_rng(100 * identity + k)
    base = np.array([[200, 60, 50], [40, 90, 210]][identity], dtype=np.float64)
    texture = rng.normal(0, 25, (size, size, 3))
    return np.clip(base + texture, 0, 255).astype(np.uint8)


def build_eval_set(root: Path, faces_per_identity: int = 4, clips_per_face: int = 2, seconds: float = 0.3) -> Path:
    """Splits ``seen`` (one clip per face) and ``unseen_speech`` (``clips_per_face`` clips per other face)."""
    rows = []
    samples = round(seconds * 16_000)
    for i, identity in enumerate(IDENTITIES):
        for k in range(faces_per_identity):
            face = root / "faces" / identity / f"face_{k}.png"
            face.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(face_image(i, k)).save(face)
            split = "seen" if k % 2 == 0 else "unseen_speech"
            for c in range(1 if split == "seen" else clips_per_face):
                audio = write_audio(root / "audio" / identity / f"clip_{k}_{c}.wav",
                                    noise(samples, seed=1000 * i + 10 * k + c))
                rows.append([identity, face.relative_to(root).as_posix(), audio.relative_to(root).as_posix(), split])
    return write_csv(root / "manifest.csv", ["identity", "face", "audio", "split"], rows)


def loop_replicates(statistic: Callable[..., float], clusters: Sequence[Clusters], replicates: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``statistic(*rows)`` over the cluster-bootstrap resamples of ``stats.cluster_resamples``, one at a time on
    the repeated rows: the reference that evalkit's vectorised replicates must reproduce for the same draws."""
    return np.array([statistic(*rows) for rows in cluster_resamples(clusters, replicates, rng)])
