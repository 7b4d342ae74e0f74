"""The whole build: find videos → extract them (parallel, resumable) → clean per identity → balance → leak-free
split → ``manifest.csv`` and the build report."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from generator.data.manifest import write_manifest
from generator.data.split import SplitOptions
from generator.dataset_builder.cleaning import CleaningOptions, IdentityResult, balance, clean_identity
from generator.dataset_builder.extract import ExtractOptions, VideoRecord, extract_video
from generator.dataset_builder.report import VideoError, summary, write_report
from generator.dataset_builder.sources import Layout, VideoSource, find_videos
from generator.dataset_builder.splitting import SingleRecording, split_build
from generator.errors import DataError


@dataclass(frozen=True)
class BuildOptions:
    extract: ExtractOptions = field(default_factory=ExtractOptions)
    cleaning: CleaningOptions = field(default_factory=CleaningOptions)
    split: SplitOptions = field(default_factory=SplitOptions)
    layout: Layout = "identity-folders"
    single_recording: SingleRecording = "unseen-identity"
    max_pairs: int | None = None  # per identity
    equalise: bool = False  # every identity down to the smallest one's pair count
    workers: int = 1


@dataclass(frozen=True)
class BuildResult:
    manifest: Path
    report: Path
    figures: dict
    errors: list[VideoError]


def build_dataset(source: Path, out: Path, options: BuildOptions = BuildOptions(),
                  progress: bool = True) -> BuildResult:
    """Build a cleaned, balanced, leak-free audio-face dataset in ``out`` from the videos of ``source``."""
    options.extract.check()
    options.cleaning.check()
    if options.workers < 1:
        raise DataError(f"--workers must be at least 1, got {options.workers}")
    videos = find_videos(Path(source), options.layout)
    out = Path(out).resolve()
    records = extract_all(videos, options.extract, out, options.workers, progress)
    errors = [VideoError(r.source, r.error) for r in records if r.error]
    results = [clean_identity(identity, group, out, options.cleaning) for identity, group in _by_identity(records)]
    dropped = balance(results, options.max_pairs, options.equalise, options.split.seed)
    pairs = [p for r in results for p in r.pairs]
    if not pairs:
        raise DataError(f"no pairs survived cleaning ({_removal_note(results)}; {len(errors)} of {len(videos)} "
                        "video(s) failed" + (f", first: {errors[0].message})" if errors else ")"))
    split = split_build(pairs, options.split, options.single_recording, progress)
    manifest = write_manifest(split.pairs, out / "manifest.csv")
    settings = {"source": str(source), **asdict(options)}
    figures = summary(results, dropped, split, errors, settings)
    report = write_report(out, figures, [x for r in results for x in r.rejections], split)
    return BuildResult(manifest, report, figures, errors)


def extract_all(videos: Sequence[VideoSource], options: ExtractOptions, out: Path, workers: int,
                progress: bool = True) -> list[VideoRecord]:
    """Extract every video (skipping those done before), in ``workers`` processes; records in input order."""
    bar = tqdm(total=len(videos), desc="extracting", unit="video", disable=None if progress else True)
    with bar:
        records = dict(_extract_each(videos, options, out, workers, bar))
    return [records[v.key] for v in videos]


def _extract_each(videos: Sequence[VideoSource], options: ExtractOptions, out: Path, workers: int,
                  bar: tqdm) -> Iterator[tuple[str, VideoRecord]]:
    if workers == 1:
        for video in videos:
            yield video.key, extract_video(video, options, out)
            bar.update()
        return
    # spawn: dlib and the decoder start clean in each worker, whatever threads the caller runs
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(extract_video, video, options, out): video.key for video in videos}
        for future in as_completed(futures):
            yield futures[future], future.result()
            bar.update()


def _by_identity(records: Sequence[VideoRecord]) -> list[tuple[str, list[VideoRecord]]]:
    groups: dict[str, list[VideoRecord]] = {}
    for r in records:
        groups.setdefault(r.identity, []).append(r)
    return sorted(groups.items())


def _removal_note(results: Sequence[IdentityResult]) -> str:
    removed = sum((r.removed for r in results), Counter())
    frames = sum(r.frames for r in results)
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(removed.items())) or "none removed"
    return f"{frames} frames sampled; faces removed: {reasons}"
