"""One evaluation run: check every input, generate one face per clip, extract features (cached), compute the metrics,
score the reference generators the same way, and write the run record (``evalkit.record``).

Every check that can fail (options, data, generator, metric applicability, weights) runs before the first face is
generated.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from tqdm import tqdm

from evalkit import __version__, distributed, provenance
from evalkit.clip_files import write_clip_files
from evalkit.comparison import PerClip, best_reference_verdict, compare, from_json, to_json
from evalkit.distributed import Shard
from evalkit.errors import EvalError, FeatureUnavailable, NotApplicable
from evalkit.evalset import (
    EvalSet,
    RealFaces,
    assemble,
    check_compatible,
    choose_splits,
    evaluated_pairs,
    load_real_faces,
    save_images,
)
from evalkit.features import FeatureCache, FeatureExtractor, Features, images_sha256, make_extractor
from evalkit.gallery import gallery_content_hash
from evalkit.generators import open_source
from evalkit.generators.base import FaceSource, GenerationJob, json_sha256
from evalkit.generators.images import write_generated_csv
from evalkit.generators.reference import DESCRIPTIONS, LABELS, LEARNED, ORACLES, REFERENCE_NAMES, reference_source
from evalkit.generators.voice_only import NOT_APPLICABLE as DESCRIPTOR_ONLY
from evalkit.generators.voice_only import VOICE_ONLY, DescriptorSource, VoiceOnlySource
from evalkit.metrics import Metric, MetricContext, resolve_metrics
from evalkit.options import HEAD_TRAIN_SPLITS, RunOptions
from evalkit.paired_gallery import paired_gallery
from evalkit.record import (
    RECORD_VERSION,
    REFERENCES_DIR,
    RESULTS_FILE,
    GeneratorRecord,
    MetricEntry,
    ReferenceEntry,
    RunRecord,
    read_record,
    write_record,
)
from evalkit.results import append_history
from evalkit.timing import stage
from generator.data.manifest import Manifest, Pair, read_manifest
from generator.runtime import code_version
from generator.synthesis import SAMPLING_MODES

HISTORY_FILE = "history.jsonl"
NOT_APPLICABLE = "not applicable"


def validate(options: RunOptions) -> None:
    """Option values that need no data; raises EvalError."""
    from evalkit.options import GALLERY_SCORES, IDENTITY_BACKBONES

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
    unknown = [r for r in options.references if r not in REFERENCE_NAMES]
    if unknown:
        raise EvalError(f"unknown reference generator(s) {unknown} (use {', '.join(REFERENCE_NAMES)} or none)")
    if not Path(options.gallery).exists():
        raise EvalError(f"--gallery {options.gallery}: manifest not found")
    if options.gallery_score not in GALLERY_SCORES:
        raise EvalError(f"unknown --gallery-score {options.gallery_score!r} (use one of {GALLERY_SCORES})")
    if options.gallery_faces < 1 or options.matching_n < 2 or options.permutations < 19:
        raise EvalError("gallery faces per identity must be >= 1, forced matching 1:N needs N >= 2 and the permutation "
                        "test at least 19 permutations")


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


@dataclass(frozen=True)
class Plan:
    """The metrics a run computes, and for each it cannot: its status (``unavailable``: weights missing; ``not
    applicable``: the data lacks its inputs) and the reason."""

    metrics: list[Metric]
    extractors: dict[str, FeatureExtractor]
    skipped: dict[str, tuple[str, str]]

    def entry(self, metric: Metric) -> dict | None:
        if metric.name not in self.skipped:
            return None
        status, reason = self.skipped[metric.name]
        return {"status": status, "reason": reason, "columns": list(metric.columns)}


def plan_metrics(options: RunOptions, real: RealFaces, strict: bool | None = None) -> Plan:
    """Which metrics run. With ``--metrics`` left at its default, a metric whose inputs are absent is skipped with its
    reason; a metric asked for by name that cannot run is an EvalError (``strict``: whether to raise; default:
    whether metrics were named)."""
    metrics = resolve_metrics(options.metrics)
    extractors, unavailable = build_extractors(metrics, options)
    skipped: dict[str, tuple[str, str]] = {}
    for metric in metrics:
        missing = [unavailable[n] for n in metric.extractors(options) if n in unavailable]
        reason = metric.applies(real)
        if missing:
            skipped[metric.name] = ("unavailable", "; ".join(dict.fromkeys(missing)))
        elif reason:
            skipped[metric.name] = (NOT_APPLICABLE, reason)
    if (bool(options.metrics) if strict is None else strict) and skipped:
        name, (status, reason) = next(iter(skipped.items()))
        raise EvalError(f"{name} ({status}): {reason}")
    needed = {n for m in metrics if m.name not in skipped for n in m.extractors(options)}
    return Plan(metrics, {n: e for n, e in extractors.items() if n in needed}, skipped)


def evaluate_metric(metric: Metric, ctx: MetricContext, plan: Plan) -> dict:
    skipped = plan.entry(metric)
    if skipped is not None:
        return skipped
    rows = {"real": _row(metric.reference, ctx)} if metric.reference else {}
    rows.update({split: _row(metric.evaluate, ctx, split) for split in ctx.evalset.splits})
    return {"status": "ok", "columns": list(metric.columns), "rows": rows}


def _row(compute: Callable[..., dict], *args: object) -> dict:
    """One row of a metric; a split too small for it is a "not applicable" row with the reason."""
    try:
        return compute(*args)
    except NotApplicable as exc:
        return {"status": NOT_APPLICABLE, "reason": str(exc)}


def feature_source(cache: FeatureCache, extractors: dict[str, FeatureExtractor], evalset: EvalSet
                   ) -> Callable[[str], tuple[Features, Features]]:
    def features(name: str) -> tuple[Features, Features]:
        extractor = extractors[name]
        return cache.features(extractor, evalset.generated.images), cache.features(extractor, evalset.real.images)

    return features


def used_pairs(manifest: Manifest, splits: tuple[str, ...]) -> Manifest:
    """The manifest rows a run reads: the evaluated splits and the training splits (identity head, references)."""
    from evalkit.options import HEAD_HELDOUT_SPLIT, HEAD_TRAIN_SPLITS

    wanted = set(splits) | set(HEAD_TRAIN_SPLITS) | {HEAD_HELDOUT_SPLIT}
    return Manifest(tuple(p for p in manifest.pairs if p.split in wanted), manifest.path)


@dataclass
class Inputs:
    """Everything a run reads, checked: the clips, the real faces, the face source and the metric plan."""

    options: RunOptions
    manifest: Manifest
    splits: tuple[str, ...]
    pairs: list[Pair]
    source: FaceSource
    real: RealFaces
    plan: Plan

    @functools.cached_property
    def used(self) -> Manifest:
        """The manifest rows the run reads (``used_pairs``)."""
        return used_pairs(self.manifest, self.splits)

    @functools.cached_property
    def data_hash(self) -> str:
        """``used``'s content hash (every file's bytes), computed once per run and shared by the cache keys."""
        return self.used.content_hash()


def prepare(options: RunOptions) -> Inputs:
    """Read and check every input of a run (no face is generated yet); raises EvalError."""
    manifest = read_manifest(options.data)
    splits = choose_splits(manifest, options.splits)
    pairs = evaluated_pairs(manifest, splits)
    source = open_source(options.generator, options.generator_args, options.checkpoint, options.generated,
                         manifest.path.parent if manifest.path else Path.cwd(), options.device, options.sampling)
    source.check(pairs)
    check_compatible(source.info.identities, source.info.name, manifest, splits)
    real = load_real_faces(manifest, splits, source.info.image_size, options.cache_dir)
    return Inputs(options, manifest, splits, pairs, source, real, plan_metrics(options, real))


def run(options: RunOptions, command_line: str) -> tuple[RunRecord, Path] | None:
    """Evaluate; returns the run record (also written to ``<run dir>/results.json``) and the run folder, or None on
    the helper processes of a torchrun launch."""
    validate(options)
    shard, device = distributed.start(options.device)
    try:
        with stage("prepare"):
            inputs = prepare(replace(options, device=device))
        outcome = _evaluate(inputs, shard, command_line)
        shard.barrier()
        return outcome
    finally:
        distributed.stop()


def _score(inputs: Inputs, source: FaceSource, shard: Shard, cache: FeatureCache, run_dir: Path | None
           ) -> tuple[EvalSet, MetricContext]:
    """Generate the source's faces and extract their features (every process takes part in every extraction, in
    the same order); the context's metrics are computed by process 0 alone."""
    options = inputs.options
    job = GenerationJob(inputs.pairs, options.seed, options.batch_size, shard, inputs.real.reference(inputs.pairs),
                        options.cache_dir)
    with stage("generate"):
        evalset = assemble(source.faces(job), inputs.pairs, inputs.splits, inputs.real)
    features = (source.feature_source(job, cache, inputs.plan.extractors, evalset.real.images)
                if isinstance(source, DescriptorSource) else feature_source(cache, inputs.plan.extractors, evalset))
    ctx = MetricContext(options, evalset, run_dir, features)
    with stage("features"):
        for name in inputs.plan.extractors:
            ctx.features(name)
    return evalset, ctx


def per_clip_values(ctx: MetricContext, plan: Plan, splits: tuple[str, ...]) -> PerClip:
    """Every computed metric's per-clip values (``Metric.per_clip``), by metric, split and figure."""
    values: PerClip = {}
    for metric in plan.metrics:
        if metric.per_clip is None or metric.name in plan.skipped:
            continue
        for split in splits:
            try:
                figures = metric.per_clip(ctx, split)
            except NotApplicable:
                continue
            if figures:
                values.setdefault(metric.name, {})[split] = figures
    return values


@dataclass
class Scores:
    """A generator's metric entries (``results``), per-clip values and the warnings computing them raised."""

    results: dict
    per_clip: PerClip
    warnings: list[str]

    def to_json(self) -> dict:
        return {"results": self.results, "per_clip": to_json(self.per_clip), "warnings": self.warnings}

    @classmethod
    def from_json(cls, document: dict) -> Scores:
        return cls(document["results"], from_json(document["per_clip"]), list(document["warnings"]))


def compute_scores(inputs: Inputs, ctx: MetricContext) -> Scores:
    """Every planned metric's entry and per-clip values (process 0)."""
    before = len(ctx.warnings)
    with stage("metrics"):
        results = {m.name: evaluate_metric(m, ctx, inputs.plan) for m in inputs.plan.metrics}
    with stage("per-clip values"):
        per_clip = per_clip_values(ctx, inputs.plan, inputs.splits)
    # the metrics' shared values (Gram matrices, neighbour distances: up to ~60 MB a split) are not read again; the
    # context itself lives on (its features) while the reference generators are scored
    ctx.memo.clear()
    return Scores(results, per_clip, ctx.warnings[before:])


def model_scores(inputs: Inputs, evalset: EvalSet, ctx: MetricContext) -> Scores:
    """The evaluated generator's scores, reused from the cache folder's ``scores/`` when ``scores_key`` matches (a
    re-run of the same evaluation), else computed and stored there. ``--save-stats`` always computes: the statistics
    files are written while the metrics run."""
    options = inputs.options
    if options.save_stats:
        return compute_scores(inputs, ctx)
    stored = options.cache_dir / "scores" / f"{scores_key(inputs, evalset)}.json"
    scores = _stored_scores(stored)
    if scores is not None:
        for warning in scores.warnings:
            ctx.warn(warning)
        return scores
    scores = compute_scores(inputs, ctx)
    _store(stored, scores.to_json())
    return scores


def _stored_scores(path: Path) -> Scores | None:
    """The scores stored at ``path``; None when absent or unreadable (a damaged cache entry is computed again)."""
    try:
        return Scores.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(path: Path, document: dict) -> None:
    """Write a cache document; raises EvalError (with the fix) when the cache folder cannot be written."""
    try:
        write_record(path, cast(RunRecord, document))  # any JSON document, written atomically
    except OSError as exc:
        raise EvalError(f"{path.parent.parent}: cannot write the cache ({exc}); pick another --cache-dir") from None


def _record(inputs: Inputs, source: FaceSource, evalset: EvalSet, ctx: MetricContext, shard: Shard,
            command_line: str, references: list[ReferenceEntry], scores: Scores) -> RunRecord:
    options = inputs.options
    info = source.info
    return {
        "record_version": RECORD_VERSION,
        "evalkit_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_dir": str(ctx.run_dir),
        "splits": list(inputs.splits),
        "data": evalset.counts(),
        "settings": {**options.to_dict(), "processes": shard.world, "image_size": info.image_size,
                     "audio_seconds": info.audio_seconds,
                     "features": {name: e.settings() for name, e in inputs.plan.extractors.items()}},
        "generator": cast(GeneratorRecord, info.to_dict()),  # GeneratorInfo.to_dict writes a GeneratorRecord
        "results": cast(dict[str, MetricEntry], scores.results),  # evaluate_metric writes MetricEntry documents
        "references": references,
        "warnings": ctx.warnings,
        "provenance": provenance.collect(options, info, inputs.used,
                                         inputs.plan.extractors, command_line),
        "per_clip": to_json(scores.per_clip),
    }


# What a reference generator's figures depend on besides its name, the faces' size and the data.
SCORING_SETTINGS = ("splits", "metrics", "seed", "bootstrap", "kid_subset_size", "kid_subsets", "pr_k", "head_l2",
                    "identity_backbone", "inception_dims", "detector_size", "detector_upsample", "gallery_score",
                    "gallery_faces", "matching_n", "permutations")


def descriptor_plan(inputs: Inputs, source: DescriptorSource) -> Plan:
    """The plan of a descriptor-only reference: the ``descriptor_only`` metrics (unavailable, with the reason, when it
    cannot predict), every other metric not applicable."""
    plan = inputs.plan
    skipped = dict(plan.skipped)
    for metric in plan.metrics:
        if metric.name in skipped:
            continue
        if not metric.descriptor_only:
            skipped[metric.name] = (NOT_APPLICABLE, DESCRIPTOR_ONLY)
        elif source.unavailable:
            skipped[metric.name] = ("unavailable", source.unavailable)
    needed = {n for m in plan.metrics if m.name not in skipped for n in m.extractors(inputs.options)}
    return Plan(plan.metrics, {n: e for n, e in plan.extractors.items() if n in needed}, skipped)


def _scoring_inputs(inputs: Inputs) -> dict:
    """What every generator's figures depend on besides the generator: code version, data bytes, scoring settings,
    gallery, metric plan and feature extractors (with their weights hashes)."""
    settings = inputs.options.to_dict()
    return {"record_version": RECORD_VERSION, "evalkit": __version__, "code": code_version(),
            "data": inputs.data_hash, "splits": list(inputs.splits),
            "settings": {k: settings[k] for k in SCORING_SETTINGS},
            "gallery": gallery_content_hash(inputs.options.gallery),
            "plan": {m.name: inputs.plan.skipped.get(m.name) for m in inputs.plan.metrics},
            "extractors": {n: e.cache_id() for n, e in inputs.plan.extractors.items()}}


def reference_key(inputs: Inputs, reference: FaceSource) -> str:
    """Content key of a reference generator's record: ``_scoring_inputs`` and the generator's definition (a reference
    is deterministic: its key is known before it draws a face). Equal keys give equal records."""
    return json_sha256({**_scoring_inputs(inputs), "generator": reference.info.to_dict()})


def scores_key(inputs: Inputs, evalset: EvalSet) -> str:
    """Content key of the evaluated generator's metric results and per-clip values: ``_scoring_inputs``, the
    generator's record and the bytes of the faces it drew (so a generator that draws other faces on a re-run, e.g. a
    non-deterministic ``--generator``, is scored again)."""
    return json_sha256({**_scoring_inputs(inputs), "generator": inputs.source.info.to_dict(),
                        "faces": images_sha256(evalset.generated.images)})


ReferenceSetup = tuple[FaceSource, Inputs, Path]


def _reference_setup(inputs: Inputs, name: str) -> ReferenceSetup:
    """A reference generator fitted on the training splits, the run's inputs as it is scored (a descriptor-only
    reference has its own plan) and where its record is stored in the cache. Built once per run and reference: the
    voice-only one's prefetch and its record use the same source."""
    training = [p for p in inputs.manifest.pairs if p.split in HEAD_TRAIN_SPLITS]
    reference = reference_source(name, inputs.source.info.image_size, training, inputs.real.paired(training),
                                 inputs.source.info.audio_seconds)
    if isinstance(reference, DescriptorSource):
        inputs = replace(inputs, plan=descriptor_plan(inputs, reference))
    return reference, inputs, inputs.options.cache_dir / "records" / f"{reference_key(inputs, reference)}.json"


def _prefetch_voice_embeddings(setup: ReferenceSetup | None, shard: Shard, cache: FeatureCache,
                               background: ThreadPoolExecutor) -> Future[None] | None:
    """Start embedding the voice-only reference's clips (``setup``: None when the run scores no voice-only
    reference) in ``background`` (one torch thread) while the other reference generators are scored, when its record
    is not cached; None when there is nothing to start. A single process only: under torchrun every extraction is a
    collective that all processes enter in the same order."""
    if setup is None or shard.world > 1:
        return None
    reference, inputs, stored = setup
    if stored.is_file() or not isinstance(reference, VoiceOnlySource) or reference.unavailable:
        return None
    return background.submit(reference.prefetch, inputs.pairs, cache)


def _reference_record(setup: ReferenceSetup, shard: Shard, cache: FeatureCache, folder: Path | None,
                      command_line: str) -> RunRecord | None:
    """A reference generator's record (process 0; None elsewhere), reused from the record cache when its key
    matches, else computed through the same harness as the evaluated generator and stored there."""
    reference, inputs, stored = setup
    if shard.main_decides(stored.is_file()):
        if folder is None:
            return None
        cached = read_record(stored)
        cached["run_dir"] = str(folder)
        return cached
    evalset, ctx = _score(inputs, reference, shard, cache, folder)
    if folder is None:
        return None
    record = _record(inputs, reference, evalset, ctx, shard, command_line, [], compute_scores(inputs, ctx))
    _store(stored, cast(dict, record))
    return record


def _evaluate(inputs: Inputs, shard: Shard, command_line: str) -> tuple[RunRecord, Path] | None:
    options = inputs.options
    run_dir = make_run_dir(options.out) if shard.is_main else None
    cache = FeatureCache(options.cache_dir, shard)
    evalset, ctx = _score(inputs, inputs.source, shard, cache, run_dir)
    # The listening copies are written in the background while the metrics are computed: encoding runs in libsndfile
    # (which releases the GIL) and the metrics keep about one core busy, so the copies cost the run almost nothing.
    with ThreadPoolExecutor(1) as background:
        clip_files = None if run_dir is None else background.submit(
            write_clip_files, evalset, inputs.pairs, inputs.source.info.audio_seconds, inputs.manifest.genders,
            run_dir, options.cache_dir)
        references = [] if inputs.source.info.kind == "reference" else list(options.references)
        setups = {name: _reference_setup(inputs, name) for name in references}
        voice_embeddings = _prefetch_voice_embeddings(setups.get(VOICE_ONLY), shard, cache, background)
        return _score_references_and_write(inputs, shard, command_line, cache, evalset, ctx, run_dir, setups,
                                           clip_files, voice_embeddings)


def _score_references_and_write(inputs: Inputs, shard: Shard, command_line: str, cache: FeatureCache,
                                evalset: EvalSet, ctx: MetricContext, run_dir: Path | None,
                                setups: dict[str, ReferenceSetup], clip_files: Future[dict[str, list[str]]] | None,
                                voice_embeddings: Future[None] | None) -> tuple[RunRecord, Path] | None:
    """The evaluated generator's scores, the reference generators' records (``setups``, in order) and comparisons
    (the voice-only reference's after ``voice_embeddings`` is done), then the run folder (images, listening copies
    from ``clip_files``, gallery, record); None on a torchrun helper process."""
    options = inputs.options
    entries: list[ReferenceEntry] = []
    scores = model_scores(inputs, evalset, ctx) if run_dir is not None else None
    clusters = {split: ctx.split_clusters(split)[0] for split in inputs.splits}
    comparisons = {}
    for name, setup in tqdm(setups.items(), desc="reference generators", unit="generator",
                            disable=None if shard.is_main else True):
        folder = run_dir / REFERENCES_DIR / name if run_dir is not None else None
        if name == VOICE_ONLY and voice_embeddings is not None:
            voice_embeddings.result()  # its embeddings are in the cache now (or its error is raised here)
        with stage("references"):
            record = _reference_record(setup, shard, cache, folder, command_line)
        if folder is not None and record is not None and scores is not None:
            write_record(folder / RESULTS_FILE, record)
            entries.append({"name": name, "label": LABELS[name], "description": DESCRIPTIONS[name],
                            "results_file": f"{REFERENCES_DIR}/{name}/{RESULTS_FILE}"})
            comparisons[name] = compare(scores.per_clip, from_json(record.get("per_clip", {})), clusters,
                                        options.bootstrap, options.seed, name)
    if run_dir is None or scores is None or clip_files is None:
        return None
    with stage("write images"):
        save_images(evalset.generated, run_dir)
        save_images(evalset.real, run_dir)
    with stage("write clips"):
        clips = clip_files.result()
        write_generated_csv(run_dir, inputs.pairs, list(evalset.generated.names))
    with stage("paired gallery"):
        dlib = inputs.plan.extractors.get("dlib")
        descriptors = None
        if dlib:
            generated_features, real_features = ctx.features("dlib")
            descriptors = (generated_features["descriptor"], real_features["descriptor"])
        gallery = paired_gallery(evalset, clips, descriptors, dlib.settings().get("descriptor", "dlib") if dlib else "",
                                 options.seed, run_dir)
    verdict = best_reference_verdict(comparisons, list(inputs.splits), LABELS, ORACLES | LEARNED)
    document = _record(inputs, inputs.source, evalset, ctx, shard, command_line, entries, scores)
    document["comparisons"] = comparisons
    document["verdict"] = verdict
    document["clips"] = clips
    document["gallery"] = gallery
    with stage("write record"):
        write_record(run_dir / RESULTS_FILE, document)
        append_history(options.history or run_dir.parent / HISTORY_FILE, document)
    return document, run_dir
