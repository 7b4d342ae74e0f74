"""``wav2pix``: data, training and synthesis commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from generator.cli_support import FriendlyGroup
from generator.dataset_builder.cli import build

if TYPE_CHECKING:  # imported where used: the CLI starts without the data layer
    from generator.data.manifest import Manifest


@click.group(cls=FriendlyGroup)
@click.version_option(package_name="wav2pix-evalkit")
def main() -> None:
    """Wav2Pix speech-to-face generator: data preparation, training and synthesis."""


@main.group(cls=FriendlyGroup)
def data() -> None:
    """Manifests, leak audits and leak-free splits."""


@data.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="manifest CSV to write")
@click.option("--layout", type=click.Choice(["pairs-csv", "original"]), default=None,
              help="pairs-csv: the published release's pairs.csv; original: <root>/<identity>/cropped_face_frame_N.png")
@click.option("--face-order", type=click.Choice(["bgr", "rgb"]), default="bgr", show_default=True,
              help="channel order the crops were stored in (the Wav2Pix release is BGR)")
@click.option("--split", default="train", show_default=True, help="split name for the original layout")
def import_cmd(source: Path, out: Path, layout: str | None, face_order: str, split: str) -> None:
    """Write a manifest for SOURCE (a pairs.csv file or a folder in the original layout)."""
    from generator.data.importers import import_original_layout, import_pairs_csv
    from generator.data.manifest import write_manifest

    layout = layout or ("pairs-csv" if source.suffix == ".csv" else "original")
    if layout == "pairs-csv":
        pairs = import_pairs_csv(source, face_order)
    else:
        pairs = import_original_layout(source, split, face_order)
    write_manifest(pairs, out)
    click.echo(f"wrote {out} ({len(pairs)} pairs)")


data.add_command(build)


def _load_any(source: Path) -> Manifest:
    from generator.data.importers import import_pairs_csv
    from generator.data.manifest import Manifest, read_manifest

    if source.is_file() and source.name == "pairs.csv":
        return Manifest(tuple(import_pairs_csv(source)), source)
    return read_manifest(source)


@data.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--min-run", default=1600, show_default=True, help="shortest shared run of identical samples counted")
@click.option("--silence", default=64, show_default=True, help="blocks with peak below this (int16 units) are ignored")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def audit(manifest: Path, min_run: int, silence: int, as_json: bool) -> None:
    """Find clips of one split that share speech with clips of another (MANIFEST or the release's pairs.csv)."""
    from generator.data.audit import audit_report, find_overlaps, format_audit, load_clips

    m = _load_any(manifest)
    overlaps = find_overlaps(load_clips(m), min_run, silence)
    report = audit_report(m, overlaps, min_run)
    click.echo(json.dumps(report, indent=2) if as_json else format_audit(report))


@data.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="folder for manifest.csv and split report")
@click.option("--seed", default=0, show_default=True)
@click.option("--test-fraction", default=0.1, show_default=True, help="share of each identity's clips held out")
@click.option("--seen-fraction", default=0.1, show_default=True, help="share of training clips marked 'seen'")
@click.option("--unseen-identity", "unseen_identities", multiple=True, help="identity to hold out entirely (repeat)")
@click.option("--min-run", default=1600, show_default=True)
@click.option("--silence", default=64, show_default=True)
def split(manifest: Path, out: Path, seed: int, test_fraction: float, seen_fraction: float,
          unseen_identities: tuple[str, ...], min_run: int, silence: int) -> None:
    """Leak-free train / seen / unseen_speech (/ unseen_identity) split of MANIFEST, grouped by shared audio."""
    from generator.data.audit import audit_report, find_overlaps, format_audit, load_clips
    from generator.data.manifest import Manifest, write_manifest
    from generator.data.split import SplitOptions, leak_free_split

    m = _load_any(manifest)
    overlaps = find_overlaps(load_clips(m), min_run, silence)
    options = SplitOptions(seed, test_fraction, seen_fraction, unseen_identities)
    pairs = leak_free_split(m, overlaps, options)
    path = write_manifest(pairs, out / "manifest.csv")
    result = Manifest(tuple(pairs), path)
    report = audit_report(result, overlaps, min_run)
    report["counts"] = result.counts()
    report["groups"] = len({p.group for p in pairs})
    report["options"] = {"seed": seed, "test_fraction": test_fraction, "seen_fraction": seen_fraction,
                         "unseen_identities": list(unseen_identities), "source": str(manifest)}
    (out / "split_report.json").write_text(json.dumps(report, indent=2) + "\n")
    click.echo(f"wrote {path}: {json.dumps(result.counts())}")
    click.echo(format_audit(report))


@data.command("export")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="new, empty folder")
@click.option("--split", "splits", multiple=True, required=True,
              help="split to export, NAME or NAME:COUNT (at most COUNT clips, one per face); repeat")
@click.option("--image-size", default=128, show_default=True, help="faces are resized to this size (RGB JPEG)")
@click.option("--seed", default=0, show_default=True)
@click.option("--notice", type=click.Path(path_type=Path, exists=True), default=None,
              help="source/licence README copied beside the export")
def export_data(manifest: Path, out: Path, splits: tuple[str, ...], image_size: int, seed: int,
                notice: Path | None) -> None:
    """Copy splits of MANIFEST into a self-contained folder (FLAC audio, RGB faces, manifest.csv)."""
    from generator.data.export import SplitSelection, export_subset
    from generator.data.manifest import read_manifest

    path = export_subset(read_manifest(manifest), [SplitSelection.parse(s) for s in splits], out, image_size,
                         seed=seed, notice=notice)
    click.echo(f"wrote {path}")


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="YAML config")
@click.option("--resume", is_flag=True, help="continue from OUT/latest")
@click.argument("overrides", nargs=-1)
def train(config_path: Path | None, resume: bool, overrides: tuple[str, ...]) -> None:
    """Train Wav2Pix; OVERRIDES are key=value (e.g. epochs=40 out=runs/x). Multi-GPU: torchrun ... wav2pix train."""
    from generator.runtime import leave_torchrun
    from generator.training import TrainConfig, Wav2PixTrainer

    config = TrainConfig.load(config_path, list(overrides))
    try:
        folder = Wav2PixTrainer(config).train(resume=resume)
    finally:
        leave_torchrun()
    if folder:
        click.echo(f"last checkpoint: {folder / 'generator.safetensors'}")


@main.command()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="generator .safetensors / folder / authors' .pth (default: the included checkpoint)")
@click.option("--audio", required=True, type=click.Path(path_type=Path), help="a WAV/FLAC file or a folder of them")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--batch-size", default=64, show_default=True)
@click.option("--sampling", type=click.Choice(["eval", "dropout", "train"]), default="eval", show_default=True,
              help="eval: deterministic; dropout: dropout on as noise (seeded); train: the original's train-mode")
@click.option("--seed", default=0, show_default=True)
@click.option("--pad-short", is_flag=True, help="zero-pad clips shorter than the model's input instead of failing")
@click.option("--device", default="auto", show_default=True)
def synthesize(checkpoint: Path | None, audio: Path, out: Path, batch_size: int, sampling: str, seed: int,
               pad_short: bool, device: str) -> None:
    """Write one PNG face per audio file (same stem)."""
    from generator.synthesis import Sampling, synthesize_files

    # click.Choice has checked sampling against the Sampling values
    written = synthesize_files(checkpoint, audio, out, batch_size, cast(Sampling, sampling), seed,
                               "pad" if pad_short else "error", device)
    click.echo(f"wrote {len(written)} image(s) to {out}")


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="checkpoint to convert")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="target .safetensors (sidecar beside it)")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float16", show_default=True)
def export(checkpoint: Path, out: Path, dtype: str) -> None:
    """Convert a generator checkpoint (ours or the authors' .pth) to a compact safetensors file + sidecar."""
    import torch

    from generator.checkpoint import load_generator, rebase_sidecar_paths, relative_path, save_generator

    loaded = load_generator(checkpoint)
    target = out.parent
    info = rebase_sidecar_paths({k: v for k, v in loaded.info.items() if k in ("data", "training", "note")},
                                loaded.path.parent, target)
    info["exported_from"] = {"path": relative_path(loaded.path, target), "sha256": loaded.sha256}
    save_generator(out, loaded.model, list(loaded.identities), info, dtype=getattr(torch, dtype))
    click.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {dtype})")


if __name__ == "__main__":
    main()
