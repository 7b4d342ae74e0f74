"""``evalkit experiment averages``: faces from the average of N clips of one identity (speech embeddings averaged,
or waveforms), for several N; each N is scored by the landmark ratio and identity accuracy over ``--draws`` random
sets of clips per identity."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

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
from evalkit.record import metric_cell
from evalkit.sections import Bars, ImageGrid, Section, Table
from evalkit.stats import seeded_rng
from generator.data.manifest import read_manifest

NAME = "averages"
SCORED_METRICS = ("landmark_ratio", "identity_accuracy")


def parse_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(n) for n in text.split(",")})
    except ValueError:
        raise EvalError(f"--n must be comma-separated whole numbers, got {text!r}") from None
    if not counts or counts[0] < 1:
        raise EvalError(f"--n values must be at least 1, got {text!r}")
    return counts


def averaged_face(loaded, clips: list[Path], space: str) -> np.ndarray:
    speech = speech_batch(loaded, clips)
    if space == "embedding":
        return faces_from_embeddings(loaded, embed(loaded.model, speech).mean(dim=0, keepdim=True))[0]
    return faces_from_speech(loaded, speech.mean(dim=0, keepdim=True))[0]


@click.command(NAME)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="[default: the included one]")
@click.option("--n", "counts", default="1,2,4,8,16", show_default=True, help="numbers of clips averaged")
@click.option("--draws", type=int, default=10, show_default=True, help="random sets of clips per identity and N")
@click.option("--split", default="unseen_speech", show_default=True, help="split the clips are drawn from")
@click.option("--space", type=click.Choice(SPACES), default="embedding", show_default=True,
              help="average speech embeddings or waveforms")
@evaluation_options
def command(checkpoint: Path | None, counts: str, draws: int, split: str, space: str, **values) -> Path:
    """Faces from the average of N clips of one identity, scored per N."""
    options = run_options(**values)
    sizes = parse_counts(counts)
    if draws < 1:
        raise EvalError(f"--draws must be at least 1, got {draws}")
    loaded = load_model(checkpoint, options.device)
    manifest = read_manifest(options.data)
    pairs = manifest.select(split).pairs
    identities = [i for i in list(loaded.identities) if any(p.identity == i for p in pairs)]
    if not identities:
        raise EvalError(f"split {split!r} has no clips of the checkpoint's identities {list(loaded.identities)}")
    rng = seeded_rng(options.seed, NAME)
    faces, owners, groups, heard = [], [], [], []
    for identity in identities:
        clips = [p.audio for p in pairs if p.identity == identity]
        for n in sizes:
            if n > len(clips):
                raise EvalError(f"--n {n} is more than the {len(clips)} clips of {identity} in split {split!r}")
            for draw in range(draws):
                chosen = [clips[k] for k in rng.choice(len(clips), n, replace=False)]
                if n == sizes[0] and draw == 0:
                    heard += [(f"{identity}: clip {c + 1} of its first N = {n} face ({clip.name})", clip)
                              for c, clip in enumerate(chosen)]
                faces.append(averaged_face(loaded, chosen, space))
                owners.append(identity)
                groups.append(f"N={n}")
    report_dir, folder = start(options.out, NAME)
    owners_array, groups_array = np.array(owners), np.array(groups)
    split_items = {f"N={n}": np.flatnonzero(groups_array == f"N={n}") for n in sizes}
    stand_ins = StandIns(np.stack(faces), np.arange(len(faces)), owners_array, split_items,
                         {g: np.zeros(0, dtype=np.int64) for g in split_items})
    real = load_reference(manifest, loaded.config.image_size)
    results = scorer(options, real, stand_ins, folder / "work", SCORED_METRICS).score()
    table = Table(f"Faces from averages of N clips ({space} space, {draws} draws per identity and N)",
                  ["N", "Landmark ratio", "Identity accuracy"],
                  [[g, metric_cell(results, "landmark_ratio", "ratio", g),
                    metric_cell(results, "identity_accuracy", "accuracy", g)] for g in split_items])
    chart = Bars("averages.png", "Faces from averaged speech",
                 "Landmark ratio and identity accuracy per N, 95 % intervals.", list(split_items),
                 {label: [results[metric].get("rows", {}).get(g, {}).get(figure) for g in split_items]
                  for label, metric, figure in (("landmark ratio", "landmark_ratio", "ratio"),
                                                ("identity accuracy", "identity_accuracy", "accuracy"))}, "share")
    grid = ImageGrid("faces.png", "First draw per N", "Faces from the first draw of each N (columns: N ascending); "
                     f"each identity's speech behind its N = {sizes[0]} face is playable under the grid.",
                     save_faces(folder, "faces", [(identity, [faces[k] for k in range(len(faces))
                                                              if owners[k] == identity][::draws])
                                                  for identity in identities]),
                     save_voices(folder, heard, loaded.config.audio_seconds))
    section = Section(NAME, "averages of N clips", f"Speech of one identity from split {split!r}, {space}s of N "
                      "randomly drawn clips averaged, one face per average.", command_line(),
                      settings(options, generator=loaded.describe(), n=sizes, draws=draws, split=split, space=space),
                      [table], [chart, grid], {"results": results})
    return finish(report_dir, folder, section)
