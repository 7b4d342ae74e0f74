"""Fixtures of the build tests: the GRID clips from ../shared (skipped when absent) and synthetic video folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.generator.dataset_builder.media import GRID_SAMPLES, talking_face_video


@pytest.fixture(scope="session")
def grid_samples() -> Path:
    if not (GRID_SAMPLES / "README.md").is_file():
        pytest.skip(f"GRID sample clips not present at {GRID_SAMPLES} (the ../shared folder beside the checkout)")
    return GRID_SAMPLES


@pytest.fixture
def make_talking_video():
    return talking_face_video
