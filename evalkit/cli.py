"""``evalkit``: ``run`` evaluates a generator; ``metrics`` lists the registered metrics and what each needs; ``report``
renders a run folder.

This module is the command layer: the only place in evalkit that reaches ``reports`` (to render after a run, and
after an experiment: an experiment command returns the report folder it wrote its section record into, and
``main``'s result callback renders that folder); the computing modules never import it."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import cast

import click

from evalkit.options import (
    EMBEDDED_DATA,
    EMBEDDED_GALLERY,
    GALLERY_SCORES,
    INCEPTION_DIMS,
    OFFLINE_ENV,
    REFERENCE_NAMES,
    RunOptions,
    default_cache_dir,
)
from generator.cli_support import FriendlyGroup

FIGURES_DIR = "figures"  # report figures under the cache folder, shared by key across run folders
STUDY_RESULTS_HELP = ("folder written by `survey-app export` (its results_summary.json): the study's figures and "
                      "their agreement per item with this run's metrics join the report")


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in value.split(",") if n.strip()) if value else ()


class EvalkitGroup(FriendlyGroup):
    """The ``evalkit`` group; the experiment commands (which load torch) are imported only when one is invoked or
    listed (click's lazy-loading pattern), so ``evalkit report`` starts without them."""

    LAZY = {"experiment": "experiment_group", "compare": "compare_cmd"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            from evalkit.experiments import cli as experiments

            return getattr(experiments, self.LAZY[name])
        return super().get_command(ctx, name)


@click.group(cls=EvalkitGroup)
@click.version_option(package_name="wav2pix-evalkit")
def main() -> None:
    """Benchmark harness for speech-to-face generators."""


@main.command("run")
@click.option("--generator", "generator", default=None,
              help="wav2pix (default), a reference generator (mean-face, random-face, nearest-face, constant), "
                   "package.module:factory, or an installed evalkit.generators entry point")
@click.option("--generator-arg", "generator_args", multiple=True, metavar="KEY=VALUE",
              help="keyword argument of the generator's factory (repeatable)")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="wav2pix checkpoint (.safetensors + .json, or the authors' .pth) [default: the included one]")
@click.option("--generated", type=click.Path(path_type=Path), default=None,
              help="faces a model already made: an audio,generated CSV, a run folder, or a folder mirroring the "
                   "manifest's audio paths")
@click.option("--references", default=None,
              help=f"reference generators scored beside it, comma-separated, or 'none' [default: all of "
                   f"{', '.join(REFERENCE_NAMES)}]")
@click.option("--data", type=click.Path(path_type=Path), default=EMBEDDED_DATA, show_default="embedded set",
              help="manifest CSV, or a folder holding manifest.csv")
@click.option("--splits", default=None, help="comma-separated splits [default: seen, unseen_speech, unseen_identity "
                                             "where present]")
@click.option("--metrics", default=None, help="comma-separated metrics [default: all; see `evalkit metrics`]")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="run folder [default: runs/<timestamp>]")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--seed", type=int, default=0, show_default=True, help="seeds sampling, KID subsets and the bootstrap")
@click.option("--sampling", default="eval", show_default=True, help="generator sampling mode: eval, dropout or train")
@click.option("--batch-size", type=int, default=64, show_default=True, help="clips per generator batch")
@click.option("--inception-weights", type=click.Path(path_type=Path), default=None,
              help="pytorch-fid Inception weights [default: the torch hub cache file]")
@click.option("--inception-dims", type=int, default=2048, show_default=True, help=f"one of {INCEPTION_DIMS}")
@click.option("--identity-backbone", default="dlib-resnet", show_default=True, help="dlib-resnet or vggface")
@click.option("--vggface-weights", type=click.Path(path_type=Path), default=None,
              help="keras-vggface rcmalli_vggface_tf_(notop_)vgg16.h5 for --identity-backbone vggface")
@click.option("--detector-size", type=int, default=256, show_default=True,
              help="images are resized (bilinear) to this size before dlib face detection")
@click.option("--detector-upsample", type=int, default=0, show_default=True, help="dlib HOG detector upsamplings")
@click.option("--gallery", type=click.Path(path_type=Path), default=EMBEDDED_GALLERY, show_default="8 GRID speakers",
              help="manifest (identity,face[,gender] columns; audio not read) of real faces of distractor "
                   "identities for retrieval and forced matching, e.g. --gallery my_data/gallery/manifest.csv; the "
                   "default GRID studio faces are out of domain for in-the-wild data (easy distractors)")
@click.option("--gallery-score", type=click.Choice(GALLERY_SCORES), default="mean", show_default=True,
              help="an identity's score: mean or best cosine over its gallery faces")
@click.option("--bootstrap", type=int, default=200, show_default=True, help="bootstrap replicates per interval")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help=f"feature cache [default: {default_cache_dir()}]")
@click.option("--history", type=click.Path(path_type=Path), default=None,
              help="JSON-lines history to append to [default: history.jsonl beside the run folder]")
@click.option("--save-stats", is_flag=True, help="also write pytorch-fid .npz statistics of both sides of every "
              "Fréchet distance under RUN/stats/ (float64 d x d each: 32 MB at 2048 dimensions)")
@click.option("--offline", is_flag=True, help=f"never download weights (also {OFFLINE_ENV}=1)")
@click.option("--json", "as_json", is_flag=True, help="print results.json instead of the table")
@click.option("--study-results", type=click.Path(path_type=Path), default=None, help=STUDY_RESULTS_HELP)
def run_cmd(generator: str | None, generator_args: tuple[str, ...], checkpoint: Path | None,
            generated: Path | None, references: str | None, data: Path, splits: str | None, metrics: str | None,
            out: Path | None,
            device: str, seed: int, sampling: str, batch_size: int, inception_weights: Path | None,
            inception_dims: int, identity_backbone: str, vggface_weights: Path | None, detector_size: int,
            detector_upsample: int, gallery: Path, gallery_score: str, bootstrap: int, cache_dir: Path | None,
            history: Path | None, save_stats: bool, offline: bool, as_json: bool, study_results: Path | None) -> None:
    """Generate a face for every clip of the evaluated splits, compute the metrics with 95 % intervals, score the
    reference generators the same way, and write the run folder and its report."""
    from evalkit.results import summary_table
    from evalkit.runner import run

    chosen_references = REFERENCE_NAMES if references is None else \
        () if references.strip() == "none" else _names(references)
    options = RunOptions(
        checkpoint=checkpoint, generator=generator, generator_args=generator_args, generated=generated,
        references=chosen_references, data=data, splits=_names(splits), metrics=_names(metrics), out=out, device=device,
        seed=seed, sampling=sampling, batch_size=batch_size, inception_weights=inception_weights,
        inception_dims=inception_dims, identity_backbone=identity_backbone, vggface_weights=vggface_weights,
        detector_size=detector_size, detector_upsample=detector_upsample, gallery=gallery,
        gallery_score=gallery_score, bootstrap=bootstrap,
        cache_dir=cache_dir or default_cache_dir(), history=history, save_stats=save_stats,
        offline=offline,
    )
    export = None
    if study_results is not None:  # read and checked before anything is generated
        from evalkit.study import read_study_export

        export = read_study_export(study_results)
    outcome = run(options, shlex.join(sys.argv))
    if outcome is None:  # a helper process of a torchrun launch; process 0 reports
        return
    document, run_dir = outcome
    for warning in document["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(summary_table(document))
        skipped: dict[tuple[str, str], list[str]] = {}
        for name, entry in document["results"].items():
            if entry["status"] != "ok":
                skipped.setdefault((entry["status"], entry["reason"]), []).append(name)
        for (status, reason), names in skipped.items():
            click.echo(f"{status} ({', '.join(names)}): {reason}")
        click.echo(f"results: {run_dir / 'results.json'}")
    if export is not None:
        _import_study(run_dir, export)
    from evalkit.timing import stage
    from reports.render import render

    with stage("report"):
        html = render(run_dir, options.cache_dir / FIGURES_DIR)
    click.echo(f"report: {html}", err=as_json)


@main.command("metrics")
def metrics_cmd() -> None:
    """List the registered metrics, their table figures and what each needs."""
    from evalkit.metrics import all_metrics

    for metric in all_metrics().values():
        click.echo(f"{metric.name}: {metric.description}")
        click.echo(f"    figures: {', '.join(metric.columns)}; needs: {metric.requires}")


@main.command("fid")
@click.argument("first", type=click.Path(path_type=Path))
@click.argument("second", type=click.Path(path_type=Path))
@click.option("--inception-weights", type=click.Path(path_type=Path), default=None,
              help="pytorch-fid Inception weights [default: the torch hub cache file]")
@click.option("--dims", type=int, default=2048, show_default=True, help=f"one of {INCEPTION_DIMS}")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help=f"feature cache [default: {default_cache_dir()}]")
@click.option("--save-stats", is_flag=True, help="write the statistics of FIRST (a folder) to SECOND (.npz)")
@click.option("--offline", is_flag=True, help=f"never download weights (also {OFFLINE_ENV}=1)")
def fid_cmd(first: Path, second: Path, inception_weights: Path | None, dims: int, device: str,
            cache_dir: Path | None, save_stats: bool, offline: bool) -> None:
    """FID between FIRST and SECOND, each an image folder or a pytorch-fid .npz statistics file."""
    from evalkit.errors import EvalError, FeatureUnavailable
    from evalkit.features import FeatureCache, make_extractor
    from evalkit.features.inception import InceptionExtractor
    from evalkit.fid_paths import fid_of_paths, path_statistics
    from evalkit.stats import write_stats

    options = RunOptions(device=device, inception_weights=inception_weights, inception_dims=dims, offline=offline)
    try:
        extractor = cast(InceptionExtractor, make_extractor("inception", options))
    except FeatureUnavailable as exc:
        raise EvalError(str(exc)) from None
    cache = FeatureCache(cache_dir or default_cache_dir())
    if save_stats:
        if second.exists():
            raise EvalError(f"{second}: already exists; not overwriting it")
        write_stats(second, *path_statistics(first, extractor, cache))
        click.echo(f"wrote {second}")
        return
    click.echo(f"FID: {fid_of_paths(first, second, extractor, cache)}")


@main.group("weights")
def weights_group() -> None:
    """Pretrained weights: where each file goes, and downloading it."""


@weights_group.command("list")
def weights_list_cmd() -> None:
    """Each downloadable weights file, its cache path and whether it is there."""
    from evalkit.weights import WEIGHTS

    for entry in WEIGHTS.values():
        state = "present" if entry.path().is_file() else "missing"
        click.echo(f"{entry.key}: {entry.description}\n    {entry.path()} ({state})\n    from {entry.url}")


@weights_group.command("fetch")
@click.argument("names", nargs=-1, required=True)
def weights_fetch_cmd(names: tuple[str, ...]) -> None:
    """Download NAMES (inception, vggface, vggface-notop) into their caches, checked; present files are kept."""
    from evalkit.errors import EvalError
    from evalkit.weights import WEIGHTS, download, offline_requested

    unknown = [n for n in names if n not in WEIGHTS]
    if unknown:
        raise EvalError(f"unknown weights {unknown}; known: {', '.join(WEIGHTS)}")
    if offline_requested():
        raise EvalError(f"downloads are off ({OFFLINE_ENV} is set)")
    for name in names:
        entry = WEIGHTS[name]
        path = entry.path() if entry.path().is_file() else download(entry)
        click.echo(f"{name}: {path}")


def _import_study(run_dir: Path, export: dict) -> None:
    """Store a study export's figures and agreement beside the run (``human_study.json``)."""
    from evalkit.record import RESULTS_FILE, read_record
    from evalkit.study import import_study

    click.echo(f"human study: {import_study(run_dir, read_record(run_dir / RESULTS_FILE), export)}", err=True)


@main.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--study-results", type=click.Path(path_type=Path), default=None, help=STUDY_RESULTS_HELP)
def report_cmd(run_dir: Path, study_results: Path | None) -> None:
    """Write RUN_DIR/report.md and a self-contained RUN_DIR/report.html from its run record (nothing is computed
    but a given study's agreement with the run, which is stored as RUN_DIR/human_study.json first)."""
    from reports.render import render

    if study_results is not None:
        from evalkit.study import read_study_export

        _import_study(run_dir, read_study_export(study_results))
    html = render(run_dir)
    click.echo(f"report: {html}")
    click.echo(f"report: {html.with_suffix('.md')}")


@main.result_callback()
def _render_written_folder(result: object) -> None:
    """A sub-command that returns a folder (an experiment, ``compare --out``) has added a section record there:
    render the folder's report."""
    if isinstance(result, Path):
        from reports.render import render

        click.echo(f"report: {render(result)}")
