"""``evalkit experiment resolution``: 64 px against 128 px checkpoints (same audio length), on the same data."""

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
from evalkit.sections import Section

NAME = "resolution"


@click.command(NAME)
@click.option("--checkpoint", "checkpoints", multiple=True, required=True, type=click.Path(path_type=Path),
              help="a checkpoint per image size (repeat)")
@evaluation_options
def command(checkpoints: tuple[Path, ...], **values) -> Path:
    """Compare checkpoints of different image sizes (same audio length)."""
    options = run_options(**values)
    check_varies(checkpoints, "image_size", "audio_seconds")
    report_dir, folder = start(options.out, NAME)
    documents = evaluate_all(checkpoints, options, folder, command_line(), lambda s: f"{s['image_size']} px")
    documents.sort(key=lambda item: item[1]["settings"]["image_size"])
    table = comparison_table("Headline figures per image size", documents, {})
    section = Section(NAME, "image resolution", "Checkpoints of different output sizes, evaluated on the same data "
                      "(real faces resized to each checkpoint's size; dlib sees every image at the detector size).",
                      command_line(), settings(options, generators=generators(documents)), [table],
                      comparison_charts(NAME, documents), headline_data(documents))
    return finish(report_dir, folder, section)
