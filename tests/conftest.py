"""Shared fixtures for the data-layer and generator tests: synthetic audio, faces, corpora, checkpoints and the CLI.

Everything is built in ``tmp_path``; nothing touches the network (see ``tests/no_network.py``). Real-data tests use
the ``shared_data`` fixture, which skips with a clear reason when ``../shared/data/wav2pix-youtubers`` is absent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from tests.support import (
    COMMITTED_SPLIT,
    IDENTITY_COLOURS,
    SHARED_DATA,
    SHARED_REFERENCE,
    SR,
    TINY_TRAINING,
    Corpus,
    build_corpus,
    check_cli_error,
    noise,
    small_generator,
    to_authors_layout,
    write_audio,
    write_csv,
    write_face,
)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The machine has 2 cores shared with background jobs: one intra-op thread keeps timings stable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def _no_weight_downloads():
    """Tests never download weights (they would leave loopback): EVALKIT_OFFLINE=1, as ``--offline``, from before the
    first session fixture runs. The download tests (tests/evalkit/test_weights.py) lift it and serve files from
    127.0.0.1."""
    previous = os.environ.get("EVALKIT_OFFLINE")
    os.environ["EVALKIT_OFFLINE"] = "1"
    yield
    if previous is None:
        os.environ.pop("EVALKIT_OFFLINE", None)
    else:
        os.environ["EVALKIT_OFFLINE"] = previous


@pytest.fixture
def make_audio() -> Callable[..., Path]:
    return write_audio


@pytest.fixture
def make_face() -> Callable[..., Path]:
    return write_face


@pytest.fixture
def make_noise() -> Callable[..., np.ndarray]:
    return noise


@pytest.fixture
def make_csv() -> Callable[..., Path]:
    return write_csv


@pytest.fixture
def make_corpus(tmp_path) -> Callable[..., Corpus]:
    """Factory: ``make_corpus(name="corpus", **build_corpus options)`` in a fresh folder under tmp_path."""

    def make(name: str = "corpus", **options) -> Corpus:
        return build_corpus(tmp_path / name, **options)

    return make


@pytest.fixture
def corpus(make_corpus) -> Corpus:
    """Three identities, four faces each, three 0.3-s clips per face; faces alternately train / test."""
    return make_corpus()


@pytest.fixture(scope="session")
def train_manifest(tmp_path_factory) -> Path:
    """A tiny training set: 3 identities x 2 faces x 3 clips of 0.3 s, one 'seen', the rest 'train' (do not damage)."""

    def seen_or_train(face: int, clip: int) -> str:
        return "seen" if (face, clip) == (0, 0) else "train"

    return build_corpus(tmp_path_factory.mktemp("tiny"), faces_per_identity=2, splits=seen_or_train).manifest


@pytest.fixture
def make_original_layout(tmp_path) -> Callable[..., Path]:
    """Factory for the authors' layout ``<root>/<identity>/cropped_face_frame_N.png`` + ``preprocessed_frame_N.wav``;
    ``layout={identity: [N, ...]}``; returns the root."""

    def make(layout: dict[str, Sequence[int]], root: Path | None = None, samples: int = 4800) -> Path:
        root = root or tmp_path / "original"
        for ident, (name, indices) in enumerate(layout.items()):
            for n in indices:
                write_face(root / name / f"cropped_face_frame_{n}.png", IDENTITY_COLOURS[ident % 5])
                write_audio(root / name / f"preprocessed_frame_{n}.wav", noise(samples, seed=100 * ident + n))
        root.mkdir(parents=True, exist_ok=True)
        return root

    return make


@pytest.fixture
def make_generator() -> Callable[..., torch.nn.Module]:
    return small_generator


@pytest.fixture
def authors_layout() -> Callable[[torch.nn.Module], dict[str, torch.Tensor]]:
    """``authors_layout(model)``: a state dict as the authors' ``gen_<epoch>.pth`` would hold it."""
    return to_authors_layout


@pytest.fixture(scope="session")
def saved_checkpoint(tmp_path_factory) -> Path:
    """A 64 px, 0.3 s generator for identities alice/bob saved in our format (read-only: copy before damaging)."""
    from generator.checkpoint import save_generator

    path = tmp_path_factory.mktemp("ckpt") / "gen.safetensors"
    info = {"data": {"normalisation": "peak", "output_order": "rgb"}, "training": {"epochs": 3, "seed": 0}}
    return save_generator(path, small_generator(), ["alice", "bob"], info)


@pytest.fixture
def checkpoint_copy(saved_checkpoint, tmp_path) -> Path:
    """A private copy of ``saved_checkpoint`` (weights + sidecar) that a test may damage."""
    import shutil

    target = tmp_path / "copy" / saved_checkpoint.name
    target.parent.mkdir()
    shutil.copy(saved_checkpoint, target)
    shutil.copy(saved_checkpoint.with_suffix(".json"), target.with_suffix(".json"))
    return target


@pytest.fixture
def speech_batch() -> Callable[[int, float], torch.Tensor]:
    """``speech_batch(n, seconds)``: a seeded (n, 1, samples) batch of pre-emphasised-looking model inputs."""

    def make(n: int, seconds: float = 0.3, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand(n, 1, int(round(seconds * SR)), generator=g) * 2 - 1

    return make


@pytest.fixture(scope="session")
def tiny_overrides(train_manifest) -> Callable[..., list[str]]:
    """``key=value`` overrides for a fast CPU training run on ``train_manifest``: ``tiny_overrides(out, epochs=2)``."""

    def make(out: Path, **extra) -> list[str]:
        items = [f"manifest={train_manifest}", f"out={out}", *TINY_TRAINING]
        return items + [f"{k}={v}" for k, v in extra.items()]

    return make


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli("data", "audit", ...)``: run ``wav2pix`` in-process (stderr kept apart from stdout)."""
    from generator.cli import main

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)

    return run


@pytest.fixture
def cli_error() -> Callable[..., str]:
    return check_cli_error


# ---------------------------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "pairs.csv").is_file():
        pytest.skip(f"real Wav2Pix data not present at {SHARED_DATA} (the ../shared folder beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def paper_reference() -> str:
    if not SHARED_REFERENCE.is_file():
        pytest.skip(f"reference notes not present at {SHARED_REFERENCE}")
    return SHARED_REFERENCE.read_text()


@pytest.fixture(scope="session")
def committed_split(shared_data) -> Path:
    return COMMITTED_SPLIT
