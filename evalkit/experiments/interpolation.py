"""``evalkit experiment interpolation``: faces from α·a + (1-α)·b for one clip a of identity A and one clip b of
identity B, α on a grid from 0 to 1, mixed either in the speech-embedding space (default) or in the waveform. For
each α: the face, the identity head's probability of A and B, and whether dlib finds the face and its landmarks."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from evalkit.errors import EvalError
from evalkit.experiments.common import (
    SPACES,
    command_line,
    embed,
    evaluation_options,
    faces_from_embeddings,
    faces_from_speech,
    finish,
    load_model,
    run_options,
    save_faces,
    save_voices,
    settings,
    speech_batch,
    start,
)
from evalkit.experiments.scoring import StandIns, load_reference, scorer
from evalkit.record import percent
from evalkit.sections import Curves, ImageGrid, Section, Table
from evalkit.stats import seeded_rng
from generator.data.manifest import read_manifest

NAME = "interpolation"
SCORED_METRICS = ("landmark_ratio", "identity_accuracy")


def alphas(steps: int) -> np.ndarray:
    if steps < 2:
        raise EvalError(f"--steps must be at least 2, got {steps}")
    return np.linspace(0.0, 1.0, steps)


def pick_clip(manifest, split: str, identity: str, rng: np.random.Generator) -> Path:
    clips = [p.audio for p in manifest.select(split).pairs if p.identity == identity]
    if not clips:
        raise EvalError(f"split {split!r} has no clip of identity {identity!r}")
    return clips[int(rng.integers(len(clips)))]


def interpolated_faces(loaded, clip_a: Path, clip_b: Path, grid: np.ndarray, space: str) -> np.ndarray:
    speech = speech_batch(loaded, [clip_a, clip_b])
    weights = torch.as_tensor(grid, dtype=speech.dtype, device=speech.device)
    if space == "embedding":
        a, b = embed(loaded.model, speech)
        return faces_from_embeddings(loaded, weights[:, None] * a + (1 - weights[:, None]) * b)
    return faces_from_speech(loaded, weights[:, None, None] * speech[0] + (1 - weights[:, None, None]) * speech[1])


@click.command(NAME)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="[default: the included one]")
@click.option("--identities", default=None, help="A,B [default: the checkpoint's first two identities]")
@click.option("--split", default="unseen_speech", show_default=True, help="split the two clips are drawn from")
@click.option("--steps", type=int, default=11, show_default=True, help="values of α from 0 to 1")
@click.option("--space", type=click.Choice(SPACES), default="embedding", show_default=True,
              help="mix speech embeddings or waveforms")
@evaluation_options
def command(checkpoint: Path | None, identities: str | None, split: str, steps: int, space: str,
            **values) -> Path:
    """Faces, identity probabilities and landmark detection along α·a + (1-α)·b for clips of two identities."""
    options = run_options(**values)
    grid = alphas(steps)
    loaded = load_model(checkpoint, options.device)
    pair = identities.split(",") if identities else list(loaded.identities)[:2]
    if len(pair) != 2 or len(set(pair)) != 2:
        raise EvalError(f"--identities needs two different identities A,B, got {identities!r}")
    manifest = read_manifest(options.data)
    rng = seeded_rng(options.seed, NAME)
    clip_a, clip_b = (pick_clip(manifest, split, identity, rng) for identity in pair)
    faces = interpolated_faces(loaded, clip_a, clip_b, grid, space)
    report_dir, folder = start(options.out, NAME)
    real = load_reference(manifest, loaded.config.image_size)
    truth = np.where(grid >= 0.5, pair[0], pair[1])
    scoring = scorer(options, real, StandIns.single_split(NAME, faces, truth), folder / "work", SCORED_METRICS)
    classes, probabilities = scoring.identity_probabilities()
    if not set(pair) <= set(classes):
        raise EvalError(f"identities {sorted(set(pair) - set(classes))} have no real training faces in {options.data}")
    detected = scoring.detected()
    probability = {name: probabilities[:, classes.index(name)] for name in pair}
    table = Table(f"Along α (α = 1: {pair[0]}, α = 0: {pair[1]}; {space} space)",
                  ["α", f"P({pair[0]})", f"P({pair[1]})", "face and landmarks found"],
                  [[f"{a:.2f}", percent(probability[pair[0]][k]), percent(probability[pair[1]][k]),
                    "yes" if detected[k] else "no"] for k, a in enumerate(grid)])
    voices = save_voices(folder, [(f"a: {pair[0]}, α = 1 ({clip_a.name})", clip_a),
                                  (f"b: {pair[1]}, α = 0 ({clip_b.name})", clip_b)], loaded.config.audio_seconds)
    strip = ImageGrid("strip.png", f"α from 0 ({pair[1]}) to 1 ({pair[0]})",
                      "Faces along α; the two voices mixed are playable under the strip.",
                      save_faces(folder, "strip", [(space, list(faces))]), voices)
    curve = Curves("curves.png", "Identity probability and detection along α",
                   "Identity probabilities and dlib detection along α.", grid.tolist(),
                   {f"P({pair[0]})": probability[pair[0]].tolist(), f"P({pair[1]})": probability[pair[1]].tolist(),
                    "landmarks found": detected.astype(float).tolist()}, "α", "probability / found")
    section = Section(NAME, "interpolation between two speakers",
                      f"Clip a = {clip_a} ({pair[0]}), clip b = {clip_b} ({pair[1]}), mixed as α·a + (1-α)·b in the "
                      f"{space} space; identity head ({options.identity_backbone}) trained on the real training faces.",
                      command_line(), settings(options, generator=loaded.describe(), space=space, steps=steps,
                                               split=split),
                      [table], [strip, curve],
                      {"alpha": grid.tolist(), "clips": [str(clip_a), str(clip_b)], "identities": list(pair),
                       "probability": {k: v.tolist() for k, v in probability.items()},
                       "detected": detected.tolist()})
    return finish(report_dir, folder, section)
