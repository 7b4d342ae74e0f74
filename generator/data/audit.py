"""Find clips that share runs of identical samples (speech cut from the same recording).

Every clip is cut into aligned blocks of ``min_run // 2`` samples; any shared run of at least ``min_run`` samples
contains one whole aligned block of each clip, so hashing every block and looking up a rolling hash of every position
of every other clip finds all such runs in O(total samples). Candidate matches are verified sample by sample, so a
hash collision cannot create an overlap. Near-silent blocks (digital silence matches everywhere) are not indexed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from generator.data.audio import read_audio, to_pcm16
from generator.data.manifest import Manifest
from generator.errors import DataError

DEFAULT_MIN_RUN = 1600
DEFAULT_SILENCE = 64  # int16 units: blocks whose peak is below this (about -54 dBFS) are not indexed

_BASE = np.uint64(0x9E3779B97F4A7C15)
_BASE_INV = np.uint64(pow(0x9E3779B97F4A7C15, -1, 2**64))


@dataclass(frozen=True)
class Overlap:
    first: int
    second: int
    samples: int  # length of the longest run of identical samples
    offset: int = 0  # where ``second`` starts relative to ``first`` in the common recording, for that run


def _powers(base: np.uint64, n: int) -> np.ndarray:
    out = np.full(n, base, dtype=np.uint64)
    out[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(out, dtype=np.uint64)


def _window_hashes(x: np.ndarray, width: int, pw: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """Polynomial hash of every window x[i:i+width] (mod 2**64: the base is odd, so it is invertible)."""
    values = (x.astype(np.int64) + 32768).astype(np.uint64)
    with np.errstate(over="ignore"):
        prefix = np.concatenate([[np.uint64(0)], np.cumsum(values * pw[: len(x)], dtype=np.uint64)])
        n = len(x) - width + 1
        return (prefix[width : width + n] - prefix[:n]) * inv[:n]


def _longest_equal_run(a: np.ndarray, b: np.ndarray) -> int:
    eq = np.concatenate([[False], a == b, [False]])
    edges = np.flatnonzero(np.diff(eq.astype(np.int8)))
    return int((edges[1::2] - edges[0::2]).max()) if len(edges) else 0


def find_overlaps(
    clips: Sequence[np.ndarray],
    min_run: int = DEFAULT_MIN_RUN,
    silence: int = DEFAULT_SILENCE,
    progress: bool = True,
) -> list[Overlap]:
    """All clip pairs (i < j) sharing a run of at least ``min_run`` identical samples, with the longest run length."""
    if min_run < 2:
        raise DataError(f"minimum run length must be at least 2 samples, got {min_run}")
    block = min_run // 2
    longest = max(len(c) for c in clips)
    pw, inv = _powers(_BASE, longest + 1), _powers(_BASE_INV, longest + 1)
    hashes, owners, offsets = [], [], []
    for i, clip in enumerate(clips):
        if len(clip) < block:
            continue
        starts = np.arange(0, len(clip) - block + 1, block)
        peaks = np.abs(clip[: len(starts) * block].reshape(len(starts), block)).max(axis=1)
        keep = starts[peaks >= silence]
        if len(keep):
            hashes.append(_window_hashes(clip, block, pw, inv)[keep])
            owners.append(np.full(len(keep), i))
            offsets.append(keep)
    if not hashes:
        return []
    index_hash = np.concatenate(hashes)
    order = np.argsort(index_hash, kind="stable")
    index_hash = index_hash[order]
    index_owner, index_offset = np.concatenate(owners)[order], np.concatenate(offsets)[order]

    best: dict[tuple[int, int], tuple[int, int]] = {}
    checked: set[tuple[int, int, int]] = set()
    bar = tqdm(clips, desc="auditing overlaps", unit="clip", disable=None if progress else True, leave=False)
    for j, clip in enumerate(bar):
        if len(clip) < block:
            continue
        window = _window_hashes(clip, block, pw, inv)
        left = np.searchsorted(index_hash, window, side="left")
        right = np.searchsorted(index_hash, window, side="right")
        positions = np.flatnonzero(right > left)
        for pos in positions:
            for k in range(left[pos], right[pos]):
                i = int(index_owner[k])
                if i == j:
                    continue
                shift = int(pos) - int(index_offset[k])  # clip_j[u] == clip_i[u - shift]
                if (i, j, shift) in checked:
                    continue
                checked.add((i, j, shift))
                other = clips[i]
                lo, hi = max(0, shift), min(len(clip), len(other) + shift)
                run = _longest_equal_run(clip[lo:hi], other[lo - shift : hi - shift])
                if run >= min_run:
                    key = (min(i, j), max(i, j))
                    offset = -shift if key[0] == i else shift
                    if run > best.get(key, (0, 0))[0]:
                        best[key] = (run, offset)
    return [Overlap(a, b, n, off) for (a, b), (n, off) in sorted(best.items())]


def load_clips(manifest: Manifest, progress: bool = True) -> list[np.ndarray]:
    """Every clip of the manifest as 16 kHz mono int16 sample values (full length, no cropping)."""
    pairs = tqdm(manifest.pairs, desc="reading audio", unit="clip", disable=None if progress else True, leave=False)
    return [to_pcm16(read_audio(p.audio)) for p in pairs]


def audit_report(manifest: Manifest, overlaps: Sequence[Overlap], min_run: int) -> dict:
    """Per ordered split pair (A, B): how many clips of A share a run >= min_run with some clip of B, and how much."""
    splits = [p.split for p in manifest.pairs]
    partner_best: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for o in overlaps:
        a, b = splits[o.first], splits[o.second]
        if a == b:
            continue
        for clip, own, other in ((o.first, a, b), (o.second, b, a)):
            table = partner_best[(own, other)]
            table[clip] = max(table.get(clip, 0), o.samples)
    totals = {s: splits.count(s) for s in sorted(set(splits))}
    rows = []
    for a in totals:
        for b in totals:
            if a == b:
                continue
            best = list(partner_best.get((a, b), {}).values())
            rows.append(
                {
                    "split": a,
                    "against": b,
                    "clips": totals[a],
                    "clips_overlapping": len(best),
                    "fraction_overlapping": len(best) / totals[a],
                    "median_overlap_samples": float(np.median(best)) if best else 0.0,
                    "max_overlap_samples": int(max(best)) if best else 0,
                }
            )
    return {
        "manifest": str(manifest.path) if manifest.path else None,
        "min_run_samples": min_run,
        "clips": len(splits),
        "overlapping_clip_pairs": len(overlaps),
        "cross_split_clip_pairs": sum(splits[o.first] != splits[o.second] for o in overlaps),
        "split_pairs": rows,
    }


def format_audit(report: dict) -> str:
    lines = [
        f"Leak audit of {report['manifest']} ({report['clips']} clips, shared runs of >= "
        f"{report['min_run_samples']} identical samples)",
        f"{'split':<16} {'against':<16} {'clips':>6} {'overlapping':>12} {'share':>7} {'median overlap':>15}",
    ]
    for r in report["split_pairs"]:
        lines.append(
            f"{r['split']:<16} {r['against']:<16} {r['clips']:>6} {r['clips_overlapping']:>12} "
            f"{r['fraction_overlapping']:>7.1%} {r['median_overlap_samples']:>15.0f}"
        )
    return "\n".join(lines)
