"""Faces from speech with a trained generator, in batches.

Sampling modes (reference notes §5.5, item 2):
- ``eval``: BatchNorm running statistics, dropout off: deterministic, independent of the batch (default);
- ``dropout``: BatchNorm running statistics, dropout on as the noise source (the paper's "diversity"), seeded;
- ``train``: the original code's inference, whole model in training mode (dropout on and BatchNorm batch statistics,
  so a face depends on the other clips of its batch); spectral-norm vectors are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize
from tqdm import tqdm

from generator.checkpoint import load_generator
from generator.data.audio import ShortPolicy, load_speech
from generator.data.faces import array_to_image
from generator.errors import DataError
from generator.model import Generator
from generator.runtime import pick_device

Sampling = Literal["eval", "dropout", "train"]
SAMPLING_MODES = ("eval", "dropout", "train")
AUDIO_SUFFIXES = (".wav", ".flac")


def set_sampling_mode(model: Generator, sampling: Sampling) -> None:
    if sampling not in SAMPLING_MODES:
        raise DataError(f"unknown sampling mode {sampling!r} (use one of {SAMPLING_MODES})")
    model.train(sampling == "train")
    if sampling == "dropout":
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.train()


@torch.inference_mode()
def generate(model: Generator, speech: torch.Tensor, sampling: Sampling = "eval", seed: int = 0,
             output_order: str = "rgb") -> torch.Tensor:
    """Faces (B, 3, S, S) in [-1, 1], RGB, for a batch of model inputs (B, 1, N)."""
    snapshot = {k: v.clone() for k, v in model.state_dict().items()} if sampling == "train" else None
    was_training = model.training
    set_sampling_mode(model, sampling)
    device = next(model.parameters()).device
    # parametrize.cached: each spectrally normalised weight is computed once per call, not once per use
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), parametrize.cached():
        torch.manual_seed(seed)
        faces = model(speech.to(device))[0]
    if snapshot is not None:
        model.load_state_dict(snapshot)
    model.train(was_training)
    return faces.flip(1) if output_order == "bgr" else faces


def collect_audio(source: str | Path) -> list[Path]:
    """A WAV/FLAC file, or the WAV/FLAC files of a folder (sorted); stems must be unique."""
    source = Path(source)
    if source.is_file():
        if source.suffix.lower() not in AUDIO_SUFFIXES:
            raise DataError(f"{source}: not a .wav or .flac file")
        return [source]
    if not source.is_dir():
        raise DataError(f"{source}: no such audio file or folder")
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise DataError(f"{source}: folder holds no .wav or .flac files")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise DataError(f"{f}: same name as {stems[f.stem]}; output PNGs are named by stem")
        stems[f.stem] = f
    return files


def batched(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def synthesize_files(
    checkpoint: str | Path | None,
    audio: str | Path,
    out: str | Path,
    batch_size: int = 64,
    sampling: Sampling = "eval",
    seed: int = 0,
    short: ShortPolicy = "error",
    device: str = "auto",
) -> list[Path]:
    """Write ``<out>/<stem>.png`` for every audio file; returns the paths written."""
    if batch_size < 1:
        raise DataError(f"batch size must be >= 1, got {batch_size}")
    if sampling == "train" and batch_size < 2:
        raise DataError("train-mode sampling needs batches of at least 2 clips (BatchNorm batch statistics)")
    files = collect_audio(audio)
    loaded = load_generator(checkpoint, pick_device(device))
    model, seconds = loaded.model, loaded.config.audio_seconds
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, chunk in enumerate(tqdm(list(batched(files, batch_size)), desc="synthesizing", unit="batch",
                                   disable=None)):
        speech = np.stack([load_speech(f, seconds, loaded.normalisation, short) for f in chunk])
        faces = generate(model, torch.from_numpy(speech)[:, None], sampling, seed + i, loaded.output_order)
        for f, face in zip(chunk, faces.cpu().numpy(), strict=True):
            target = out / f"{f.stem}.png"
            array_to_image(face).save(target)
            written.append(target)
    return written
