"""Fixtures of the build tests: the GRID clips from ../shared (skipped when absent) and synthetic video folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.generator.dataset_builder.media import speech_like, with_faces, write_video

REPO = Path(__file__).resolve().parents[2]
GRID_SAMPLES = REPO.parent / "shared" / "data" / "grid-samples"
FACE_SEQUENCE = [(90, 40, 170), (96, 44, 166), (84, 38, 172)]  # the face moves a little between frames


@pytest.fixture(scope="session")
def grid_samples() -> Path:
    if not (GRID_SAMPLES / "README.md").is_file():
        pytest.skip(f"GRID sample clips not present at {GRID_SAMPLES} (the ../shared folder beside the checkout)")
    return GRID_SAMPLES


def talking_face_video(path: Path, seconds: float = 2.0, seed: int = 0, fps: int = 10) -> Path:
    """A face that moves slightly, with speech-like audio, ``seconds`` long."""
    frames = int(seconds * fps)
    return write_video(path, lambda i: with_faces([FACE_SEQUENCE[i % 3]]), frames, fps, speech_like(seconds, seed=seed))


@pytest.fixture
def make_talking_video():
    return talking_face_video
