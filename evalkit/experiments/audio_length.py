"""``evalkit experiment audio-length``: checkpoints trained on different speech lengths (0.3 / 0.7 / 1 s), evaluated
on the same data, in one table beside the seed's published landmark ratios for those lengths."""

from __future__ import annotations

from pathlib import Path

import click

from evalkit.experiments.checkpoints import (
    check_varies,
    comparison_charts,
    comparison_table,
    evaluate_all,
    generators,
    headline_data,
)
from evalkit.experiments.common import (
    command_line,
    evaluation_options,
    finish,
    run_options,
    settings,
    start,
)
from evalkit.record import SEED_FIGURES
from evalkit.sections import Section

NAME = "audio-length"


def published_landmark_ratio(seconds: float) -> str:
    match = [s.value for s in SEED_FIGURES if s.metric == "landmark_ratio" and s.audio_seconds == seconds]
    return f"{match[0]} (10 identities)" if match else "not published"


@click.command(NAME)
@click.option("--checkpoint", "checkpoints", multiple=True, required=True, type=click.Path(path_type=Path),
              help="a checkpoint per audio length (repeat)")
@evaluation_options
def command(checkpoints: tuple[Path, ...], **values) -> Path:
    """Compare checkpoints trained on different speech lengths (same image size)."""
    options = run_options(**values)
    check_varies(checkpoints, "audio_seconds", "image_size")
    report_dir, folder = start(options.out, NAME)
    documents = evaluate_all(checkpoints, options, folder, command_line(), lambda s: f"{s['audio_seconds']:g} s")
    documents.sort(key=lambda item: item[1]["settings"]["audio_seconds"])
    published = [published_landmark_ratio(d["settings"]["audio_seconds"]) for _, d in documents]
    table = comparison_table("Headline figures per audio length", documents,
                             {"Wav2Pix published landmark ratio": published})
    section = Section(NAME, "audio length", "Checkpoints trained on different speech lengths, evaluated on the same "
                      "data; the seed's published landmark ratios are for its own 10-identity setting.",
                      command_line(), settings(options, generators=generators(documents)), [table],
                      comparison_charts(NAME, documents), headline_data(documents))
    return finish(report_dir, folder, section)
