"""``wav2pix data build INPUT --out DIR``: the click command (registered under ``wav2pix data``)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from generator.cli_support import FriendlyCommand
from generator.dataset_builder.extract import ExtractOptions
from generator.dataset_builder.faces import Detector
from generator.dataset_builder.sources import Layout
from generator.dataset_builder.splitting import SINGLE_RECORDING_POLICIES, SingleRecording

DEFAULTS = ExtractOptions()


@click.command("build", cls=FriendlyCommand)
@click.argument("source", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="output folder (faces/, audio/, manifest.csv, build_report.md); rerun to resume")
@click.option("--layout", type=click.Choice(["identity-folders", "one-per-identity"]), default="identity-folders",
              show_default=True, help="INPUT/<identity>/<video>, or INPUT/<video> with one person per video")
@click.option("--fps", default=DEFAULTS.rate, show_default=True, help="frames sampled per second of video")
@click.option("--detector", type=click.Choice(["hog", "cnn"]), default=DEFAULTS.detector, show_default=True,
              help="dlib HOG frontal detector, or the (slower) CNN detector")
@click.option("--upsample", default=DEFAULTS.upsample, show_default=True, help="detector upsampling (small faces)")
@click.option("--similar-faces", default=DEFAULTS.similar_faces, show_default=True,
              help="reject a frame whose second face has at least this share of the largest face's area")
@click.option("--margin", default=DEFAULTS.margin, show_default=True, help="crop margin on each side, share of the box")
@click.option("--align/--no-align", default=DEFAULTS.align, show_default=True, help="dlib 5-point alignment")
@click.option("--size", default=DEFAULTS.size, show_default=True, help="side of the face crops in pixels")
@click.option("--audio-context", default=DEFAULTS.context, show_default=True,
              help="seconds of audio on each side of the frame that windows are cut from")
@click.option("--windows", default=DEFAULTS.windows, show_default=True, help="random audio windows per face")
@click.option("--window-seconds", default=DEFAULTS.window_seconds, show_default=True)
@click.option("--vad-mode", default=DEFAULTS.vad_mode, show_default=True, help="WebRTC VAD aggressiveness 0-3")
@click.option("--min-speech", default=0.5, show_default=True, help="least share of voiced 30 ms frames in a window")
@click.option("--min-pauses", default=0.0, show_default=True,
              help="least share of quiet 30 ms frames in a window (music / third-voice heuristic; 0: off)")
@click.option("--max-distance", default=0.6, show_default=True,
              help="largest descriptor distance from the identity's robust centroid")
@click.option("--max-pairs", type=int, default=None, help="cap on pairs per identity (random, seeded)")
@click.option("--equalise", is_flag=True, help="cut every identity down to the smallest one's pair count")
@click.option("--seed", default=0, show_default=True, help="audio windows, balancing and split")
@click.option("--test-fraction", default=0.1, show_default=True, help="share of each identity held out")
@click.option("--seen-fraction", default=0.1, show_default=True, help="share of training pairs marked 'seen'")
@click.option("--unseen-identity", "unseen_identities", multiple=True, help="identity to hold out entirely (repeat)")
@click.option("--single-recording", type=click.Choice(SINGLE_RECORDING_POLICIES), default="unseen-identity",
              show_default=True, help="identities whose speech is one audio group: hold out whole, or drop")
@click.option("--workers", default=1, show_default=True, help="videos extracted in parallel")
def build(source: Path, out: Path, layout: str, fps: float, detector: str, upsample: int, similar_faces: float,
          margin: float, align: bool, size: int, audio_context: float, windows: int, window_seconds: float,
          vad_mode: int, min_speech: float, min_pauses: float, max_distance: float, max_pairs: int | None,
          equalise: bool, seed: int,
          test_fraction: float, seen_fraction: float, unseen_identities: tuple[str, ...], single_recording: str,
          workers: int) -> None:
    """Build a cleaned audio-face dataset from talking-face videos in INPUT (identity folders or a CSV with
    columns identity, video)."""
    from generator.data.split import SplitOptions
    from generator.dataset_builder.cleaning import CleaningOptions
    from generator.dataset_builder.pipeline import BuildOptions, build_dataset

    # click.Choice has checked the three choices against the Literal types' values
    options = BuildOptions(
        extract=ExtractOptions(fps, cast(Detector, detector), upsample, similar_faces, margin, align, size,
                               audio_context, windows, window_seconds, vad_mode, seed),
        cleaning=CleaningOptions(max_distance, min_speech, min_pauses),
        split=SplitOptions(seed, test_fraction, seen_fraction, unseen_identities),
        layout=cast(Layout, layout), single_recording=cast(SingleRecording, single_recording), max_pairs=max_pairs,
        equalise=equalise, workers=workers,
    )
    result = build_dataset(source, out, options)
    for error in result.errors:
        click.echo(f"warning: {error.source}: {error.message}", err=True)
    totals = result.figures["totals"]
    click.echo(f"wrote {result.manifest} ({result.figures['pairs']} pairs, {totals['faces_kept']} of "
               f"{totals['frames']} sampled frames kept, {len(result.errors)} video(s) failed)")
    click.echo(f"report: {result.report}")
