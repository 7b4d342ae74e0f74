"""One evaluation run: check the inputs, generate, extract features (cached), compute metrics, write the record."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from evalkit import __version__, distributed, provenance
from evalkit.distributed import Shard
from evalkit.errors import EvalError, FeatureUnavailable, NotApplicable
from evalkit.evalset import EvalSet, build_evalset, check_compatible, choose_splits, save_images, write_pairs
from evalkit.features import FeatureCache, FeatureExtractor, Features, make_extractor
from evalkit.metrics import Metric, MetricContext, resolve_metrics
from evalkit.options import HEAD_HELDOUT_SPLIT, HEAD_TRAIN_SPLITS, IDENTITY_BACKBONES, RunOptions
from evalkit.results import append_history, write_results
from generator.checkpoint import load_generator
from generator.data.manifest import Manifest, read_manifest
from generator.synthesis import SAMPLING_MODES
from generator.train import pick_device

HISTORY_FILE = "history.jsonl"


def validate(options: RunOptions) -> None:
    if options.identity_backbone not in IDENTITY_BACKBONES:
        raise EvalError(f"unknown identity backbone {options.identity_backbone!r} (use one of {IDENTITY_BACKBONES})")
    if options.sampling not in SAMPLING_MODES:
        raise EvalError(f"unknown sampling mode {options.sampling!r} (use one of {SAMPLING_MODES})")
    if options.batch_size < 1 or (options.sampling == "train" and options.batch_size < 2):
        raise EvalError(f"batch size {options.batch_size} is too small for sampling mode {options.sampling!r}")
    if options.bootstrap < 2:
        raise EvalError(f"--bootstrap needs at least 2 replicates, got {options.bootstrap}")
    if options.kid_subset_size < 2 or options.kid_subsets < 1 or options.pr_k < 1:
        raise EvalError("KID subsets need at least 2 samples and 1 subset; precision/recall needs k >= 1")


def make_run_dir(out: Path | None) -> Path:
    """``out``, or ``runs/<UTC timestamp>`` (with a numeric suffix when that folder already exists)."""
    if out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        out = candidate = Path("runs") / stamp
        suffix = 1
        while out.exists():
            out = candidate.with_name(f"{stamp}-{suffix}")
            suffix += 1
    if out.exists() and not out.is_dir():
        raise EvalError(f"{out}: exists and is not a folder (--out)")
    out.mkdir(parents=True, exist_ok=True)
    return out.resolve()


def build_extractors(metrics: list[Metric], options: RunOptions) -> tuple[dict[str, FeatureExtractor], dict[str, str]]:
    """The extractors the metrics need, and why each unavailable one is (weights not installed)."""
    extractors: dict[str, FeatureExtractor] = {}
    unavailable: dict[str, str] = {}
    for name in dict.fromkeys(n for m in metrics for n in m.extractors(options)):
        try:
            extractors[name] = make_extractor(name, options)
        except FeatureUnavailable as exc:
            unavailable[name] = str(exc)
    return extractors, unavailable


def evaluate_metric(metric: Metric, ctx: MetricContext, unavailable: dict[str, str]) -> dict:
    missing = [unavailable[n] for n in metric.extractors(ctx.options) if n in unavailable]
    if missing:
        return {"status": "unavailable", "reason": "; ".join(missing), "columns": list(metric.columns)}
    rows = {"real": _row(metric.reference, ctx)} if metric.reference else {}
    rows.update({split: _row(metric.evaluate, ctx, split) for split in ctx.evalset.splits})
    return {"status": "ok", "columns": list(metric.columns), "rows": rows}


def _row(compute: Callable[..., dict], *args: object) -> dict:
    """One row of a metric; a split too small for it is a "not applicable" row with the reason."""
    try:
        return compute(*args)
    except NotApplicable as exc:
        return {"status": "not applicable", "reason": str(exc)}


def used_pairs(manifest: Manifest, splits: tuple[str, ...], with_head: bool) -> Manifest:
    wanted = set(splits) | (set(HEAD_TRAIN_SPLITS) | {HEAD_HELDOUT_SPLIT} if with_head else set())
    return Manifest(tuple(p for p in manifest.pairs if p.split in wanted), manifest.path)


def feature_source(cache: FeatureCache, extractors: dict[str, FeatureExtractor], evalset: EvalSet
                   ) -> Callable[[str], tuple[Features, Features]]:
    def features(name: str) -> tuple[Features, Features]:
        extractor = extractors[name]
        return cache.features(extractor, evalset.generated.images), cache.features(extractor, evalset.real.images)

    return features


def run(options: RunOptions, command_line: str) -> tuple[dict, Path] | None:
    """Evaluate; returns the results document (also written to ``<run dir>/results.json``) and the run folder, or
    None on the helper processes of a torchrun launch."""
    validate(options)
    metrics = resolve_metrics(options.metrics)
    manifest = read_manifest(options.data)
    splits = choose_splits(manifest, options.splits)
    shard, device_name = distributed.start(options.device)
    try:
        return _evaluate(replace(options, device=device_name), metrics, manifest, splits, shard, command_line)
    finally:
        distributed.stop(shard)


def _evaluate(options: RunOptions, metrics: list[Metric], manifest: Manifest, splits: tuple[str, ...], shard: Shard,
              command_line: str) -> tuple[dict, Path] | None:
    device = pick_device(options.device)
    model, sidecar = load_generator(options.checkpoint, device)
    check_compatible(model, sidecar, manifest, splits)
    extractors, unavailable = build_extractors(metrics, options)
    with_head = any(m.name == "identity_accuracy" for m in metrics)
    run_dir = make_run_dir(options.out) if shard.is_main else None
    evalset = build_evalset(model, sidecar, manifest, splits, options, with_head, shard)
    ctx = MetricContext(options, evalset, run_dir,
                        feature_source(FeatureCache(options.cache_dir, shard), extractors, evalset))
    for name in extractors:  # every process takes part in every extraction, in the same order
        ctx.features(name)
    if not shard.is_main:
        return None
    save_images(evalset.generated, run_dir)
    save_images(evalset.real, run_dir)
    write_pairs(evalset, run_dir)
    results = {m.name: evaluate_metric(m, ctx, unavailable) for m in metrics}
    document = {
        "evalkit_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_dir": str(run_dir),
        "splits": list(splits),
        "data": evalset.counts(),
        "settings": {**options.to_dict(), "device": str(device), "processes": shard.world,
                     "image_size": model.config.image_size, "audio_seconds": model.config.audio_seconds,
                     "features": {name: e.settings() for name, e in extractors.items()}},
        "results": results,
        "warnings": ctx.warnings,
        "provenance": provenance.collect(options, sidecar, used_pairs(manifest, splits, with_head), extractors,
                                         command_line),
    }
    write_results(run_dir, document)
    append_history(options.history or run_dir.parent / HISTORY_FILE, document)
    return document, run_dir


def render_report(run_dir: Path) -> Path | None:
    """``reports.render(run_dir)`` when a ``reports`` module with that function exists: the report's path, else None."""
    try:
        module = importlib.import_module("reports")
    except ModuleNotFoundError as exc:
        if exc.name != "reports":
            raise
        return None
    render = getattr(module, "render", None)
    if not callable(render):
        return None
    return render(run_dir)

