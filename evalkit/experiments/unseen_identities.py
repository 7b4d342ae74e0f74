"""``evalkit experiment unseen-identities``: speech of speakers the checkpoint never saw → the landmark ratio of
their faces and which training identity the identity head classifies each face as.

Speech comes from a manifest (its ``unseen_identity`` split, else its pairs of identities the checkpoint does not
know; e.g. the output of ``wav2pix data build``) or from a folder of .wav/.flac files, where each sub-folder is one
speaker and files directly in the folder belong to a speaker named after the folder.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from evalkit.errors import EvalError
from evalkit.evalset import UNSEEN_IDENTITY
from evalkit.experiments.common import (
    command_line,
    evaluation_options,
    faces_from_speech,
    finish,
    load_model,
    run_options,
    save_faces,
    settings,
    speech_batch,
    start,
)
from evalkit.experiments.scoring import StandIns, load_reference, scorer
from evalkit.record import format_figure, metric_cell
from evalkit.sections import Bars, ImageGrid, Section, Table
from evalkit.stats import proportion_figure
from generator.data.manifest import read_manifest
from generator.synthesis import AUDIO_SUFFIXES, batched

NAME = "unseen-identities"
ALL_SPEAKERS = "all unseen speakers"
BATCH = 32


def speakers_from_folder(folder: Path) -> dict[str, list[Path]]:
    speakers: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
            owner = path.parent.relative_to(folder).parts
            speakers.setdefault(owner[0] if owner else folder.name, []).append(path)
    return speakers


def speakers_from_manifest(path: Path, known: set[str]) -> dict[str, list[Path]]:
    manifest = read_manifest(path)
    pairs = manifest.select(UNSEEN_IDENTITY).pairs if UNSEEN_IDENTITY in manifest.splits else \
        [p for p in manifest.pairs if p.identity not in known]
    speakers: dict[str, list[Path]] = {}
    for pair in pairs:
        speakers.setdefault(pair.identity, []).append(pair.audio)
    return speakers


def collect_speakers(speech: Path, known: set[str], max_clips: int) -> dict[str, list[Path]]:
    """Clips per unseen speaker (at most ``max_clips`` each, by file name)."""
    if speech.is_dir() and not (speech / "manifest.csv").is_file():
        speakers = speakers_from_folder(speech)
    elif speech.exists():
        speakers = speakers_from_manifest(speech, known)
    else:
        raise EvalError(f"{speech}: no such speech folder or manifest")
    seen = sorted(set(speakers) & known)
    if seen:
        raise EvalError(f"{speech}: speakers {seen} are identities the checkpoint was trained on")
    if not speakers:
        raise EvalError(f"{speech}: no speech of unseen speakers (.wav/.flac files, or manifest rows) found")
    return {name: sorted(clips)[:max_clips] for name, clips in speakers.items()}


def classified_as(predicted: np.ndarray, classes: tuple[str, ...]) -> dict[str, dict]:
    """Share of faces classified as each training identity, with Wilson intervals (chance 1 / classes)."""
    return {c: proportion_figure(predicted == k, 1 / len(classes)) for k, c in enumerate(classes)}


@click.command(NAME)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="[default: the included one]")
@click.option("--speech", type=click.Path(path_type=Path), required=True,
              help="folder of .wav/.flac (sub-folder = speaker) or a manifest with unseen speakers")
@click.option("--max-clips", type=int, default=200, show_default=True, help="clips per speaker")
@evaluation_options
def command(checkpoint: Path | None, speech: Path, max_clips: int, **values) -> Path:
    """Landmark ratio and classified training identity of faces from unseen speakers' speech."""
    options = run_options(**values)
    loaded = load_model(checkpoint, options.device)
    speakers = collect_speakers(speech, set(loaded.identities), max_clips)
    files = [f for clips in speakers.values() for f in clips]
    owners = np.array([name for name, clips in speakers.items() for _ in clips])
    faces = np.concatenate([faces_from_speech(loaded, speech_batch(loaded, chunk))
                            for chunk in batched(files, BATCH)])
    report_dir, folder = start(options.out, NAME)
    split_items = {name: np.flatnonzero(owners == name) for name in speakers}
    split_items[ALL_SPEAKERS] = np.arange(len(files))
    stand_ins = StandIns(faces, np.arange(len(faces)), owners, split_items,
                         {s: np.zeros(0, dtype=np.int64) for s in split_items})
    real = load_reference(read_manifest(options.data), loaded.config.image_size)
    scoring = scorer(options, real, stand_ins, folder / "work", ("landmark_ratio", "identity_accuracy"))
    results = {"landmark_ratio": scoring.score()["landmark_ratio"]}
    classes, probabilities = scoring.identity_probabilities()
    predicted = probabilities.argmax(axis=1)
    shares = {s: classified_as(predicted[items], classes) for s, items in split_items.items()}
    table = Table("Faces from unseen speakers' speech", ["Speaker", "Clips", "Landmark ratio",
                                                          *(f"classified as {c}" for c in classes)],
                  [[s, str(len(items)), metric_cell(results, "landmark_ratio", "ratio", s),
                    *(format_figure(shares[s][c]) for c in classes)] for s, items in split_items.items()])
    chart = Bars("classified.png", "Classified training identity", "Share of each speaker's faces classified as "
                 "each training identity, 95 % intervals; dashed: chance.", list(split_items),
                 {c: [shares[s][c] for s in split_items] for c in classes}, "share of faces")
    grid = ImageGrid("faces.png", "Faces from unseen speakers",
                     "Faces generated from each unseen speaker's speech (first 8 clips).",
                     save_faces(folder, "faces", [(name, list(faces[split_items[name][:8]])) for name in speakers]))
    section = Section(NAME, "unseen identities", f"Speech of {len(speakers)} speakers not in the checkpoint's "
                      f"training identities {list(loaded.identities)}, from {speech}; identity head "
                      f"({options.identity_backbone}) trained on the real training faces of {options.data}.",
                      command_line(), settings(options, generator=loaded.describe(), speech=str(speech),
                                               max_clips=max_clips), [table], [chart, grid],
                      {"landmark_ratio": results["landmark_ratio"], "classified_as": shares,
                       "clips": {s: [str(f) for f in c] for s, c in speakers.items()}})
    return finish(report_dir, folder, section)
