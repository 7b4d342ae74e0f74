"""What every experiment shares: the evaluation options it accepts, generating faces from speech (or from speech
embeddings), and writing its section record (``evalkit.sections``). An experiment command returns its report folder;
the command layer (``evalkit.cli``) renders that folder's report."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import torch
from PIL import Image

from evalkit.errors import EvalError
from evalkit.options import EMBEDDED_DATA, RunOptions, default_cache_dir
from evalkit.runner import make_run_dir, validate
from evalkit.sections import Section, section_dir, write_section
from generator.checkpoint import Checkpoint, load_generator
from generator.data.audio import load_speech
from generator.data.faces import array_to_image
from generator.errors import DataError
from generator.model import Generator
from generator.runtime import pick_device
from generator.synthesis import generate, set_sampling_mode

SPACES = ("embedding", "waveform")


def evaluation_options(command: Callable) -> Callable:
    """The options of ``evalkit run`` that an experiment passes on to the metrics."""
    decorators = [
        click.option("--data", type=click.Path(path_type=Path), default=EMBEDDED_DATA, show_default="embedded set",
                     help="manifest CSV (or folder with manifest.csv): real faces for the metrics"),
        click.option("--out", type=click.Path(path_type=Path), default=None,
                     help="report folder to add the section to (an existing run folder works) [default: runs/<time>]"),
        click.option("--device", default="auto", show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--identity-backbone", default="dlib-resnet", show_default=True),
        click.option("--vggface-weights", type=click.Path(path_type=Path), default=None),
        click.option("--detector-size", type=int, default=256, show_default=True),
        click.option("--detector-upsample", type=int, default=0, show_default=True),
        click.option("--bootstrap", type=int, default=200, show_default=True),
        click.option("--cache-dir", type=click.Path(path_type=Path), default=None),
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def run_options(data: Path, out: Path | None, device: str, seed: int, identity_backbone: str,
                vggface_weights: Path | None, detector_size: int, detector_upsample: int, bootstrap: int,
                cache_dir: Path | None, **extra) -> RunOptions:
    """``RunOptions`` from ``evaluation_options``' values (``extra``: further RunOptions fields)."""
    options = RunOptions(data=data, out=out, device=device, seed=seed, identity_backbone=identity_backbone,
                         vggface_weights=vggface_weights, detector_size=detector_size,
                         detector_upsample=detector_upsample, bootstrap=bootstrap,
                         cache_dir=cache_dir or default_cache_dir(), **extra)
    validate(options)
    return options


def command_line() -> str:
    return shlex.join(sys.argv)


def start(out: Path | None, name: str) -> tuple[Path, Path]:
    """The report folder and the experiment's own folder inside it."""
    report_dir = make_run_dir(out)
    return report_dir, section_dir(report_dir, name)


def finish(report_dir: Path, folder: Path, section: Section) -> Path:
    """Store the section; returns the report folder (for the command layer to render)."""
    write_section(folder, section)
    return report_dir


def settings(options: RunOptions, **extra) -> dict:
    """An experiment's recorded settings: the evaluation options without ``checkpoint`` (a path or None: ``extra``
    records the evaluated generators' descriptions instead), and ``extra``."""
    return {**{k: v for k, v in options.to_dict().items() if k != "checkpoint"}, **extra}


def save_faces(folder: Path, name: str, rows: list[tuple[str, list[np.ndarray]]]) -> list[tuple[str, list[str]]]:
    """Save the faces of an image grid's rows (uint8 RGB (S, S, 3) each) as ``folder/name/RR_CC.png``; returns the
    rows with each face's path relative to ``folder`` (an ``ImageGrid``'s rows)."""
    (folder / name).mkdir(parents=True, exist_ok=True)
    stored = []
    for r, (label, faces) in enumerate(rows):
        paths = []
        for c, face in enumerate(faces):
            relative = f"{name}/{r:02d}_{c:02d}.png"
            Image.fromarray(np.asarray(face, dtype=np.uint8)).save(folder / relative)
            paths.append(relative)
        stored.append((label, paths))
    return stored


def save_voices(folder: Path, clips: list[tuple[str, Path]], seconds: float) -> list[tuple[str, str]]:
    """Listening copies (``evalkit.clip_files``: the generator's crop of ``seconds``, Ogg/Vorbis) of labelled clips,
    as ``folder/voices/NN.ogg``; returns ``(label, path relative to folder)`` pairs (an ``ImageGrid``'s voices).
    Raises EvalError for an unreadable or silent clip."""
    from evalkit.clip_files import encode_ogg, listening_wave

    (folder / "voices").mkdir(parents=True, exist_ok=True)
    stored = []
    for k, (label, clip) in enumerate(clips):
        relative = f"voices/{k:02d}.ogg"
        try:
            (folder / relative).write_bytes(encode_ogg(listening_wave(clip, seconds)))
        except DataError as exc:
            raise EvalError(str(exc)) from None
        stored.append((label, relative))
    return stored


def load_model(checkpoint: Path | None, device: str) -> Checkpoint:
    loaded = load_generator(checkpoint, pick_device(device))
    set_sampling_mode(loaded.model, "eval")
    return loaded


def speech_batch(checkpoint: Checkpoint, files: list[Path]) -> torch.Tensor:
    """Model inputs (B, 1, N) for audio files, normalised as the checkpoint was trained."""
    speech = np.stack([load_speech(f, checkpoint.config.audio_seconds, checkpoint.normalisation) for f in files])
    return torch.from_numpy(speech)[:, None].to(next(checkpoint.model.parameters()).device)


def to_uint8(faces: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) faces in [-1, 1] to uint8 RGB (B, S, S, 3)."""
    return np.stack([np.asarray(array_to_image(face)) for face in faces.cpu().numpy()])


def faces_from_speech(checkpoint: Checkpoint, speech: torch.Tensor) -> np.ndarray:
    """Deterministic faces (eval mode) for model inputs (B, 1, N)."""
    return to_uint8(generate(checkpoint.model, speech, "eval", 0, checkpoint.output_order))


@torch.no_grad()
def faces_from_embeddings(checkpoint: Checkpoint, embeddings: torch.Tensor) -> np.ndarray:
    """Deterministic faces (eval mode) for speech embeddings (B, 128)."""
    faces = checkpoint.model.decoder(embeddings)
    return to_uint8(faces.flip(1) if checkpoint.output_order == "bgr" else faces)


@torch.no_grad()
def embed(model: Generator, speech: torch.Tensor) -> torch.Tensor:
    return model.encoder(speech)
