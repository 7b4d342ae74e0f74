"""The leak-free split of ``generator.data.split`` applied to a fresh build.

Windows cut around neighbouring frames of one video overlap, so a video usually forms one audio group, and an
identity recorded in a single video (or whose videos all share speech) has nothing that can be held out as unseen
speech without leaking. Such identities are either held out whole as ``unseen_identity`` (default) or dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from generator.data.audit import DEFAULT_MIN_RUN, DEFAULT_SILENCE, Overlap, find_overlaps, load_clips
from generator.data.manifest import Manifest, Pair, with_splits
from generator.data.split import SplitOptions, group_clips, leak_free_split
from generator.errors import DataError

SingleRecording = Literal["unseen-identity", "drop"]
SINGLE_RECORDING_POLICIES = ("unseen-identity", "drop")


@dataclass(frozen=True)
class SplitResult:
    pairs: list[Pair]
    overlaps: list[Overlap]  # between ``pairs`` (indices into it)
    single_recording: list[str]  # identities with a single audio group
    policy: SingleRecording


def split_build(pairs: Sequence[Pair], options: SplitOptions, policy: SingleRecording = "unseen-identity",
                progress: bool = True) -> SplitResult:
    """Group by shared audio, apply ``policy`` to single-group identities, then split the rest leak-free."""
    if not pairs:
        raise DataError("no pairs survived cleaning; nothing to split (see the build report)")
    manifest = Manifest(tuple(pairs))
    overlaps = find_overlaps(load_clips(manifest, progress), DEFAULT_MIN_RUN, DEFAULT_SILENCE, progress)
    single = single_group_identities(manifest, overlaps, set(options.unseen_identities))
    if policy == "drop":
        manifest, overlaps = _without(manifest, overlaps, set(single))
        held_out = set(options.unseen_identities)
    elif policy == "unseen-identity":
        held_out = set(options.unseen_identities) | set(single)
    else:
        raise DataError(f"unknown single-recording policy {policy!r} (use {SINGLE_RECORDING_POLICIES})")
    if not len(manifest):
        raise DataError(f"every identity ({', '.join(single)}) has a single audio group and --single-recording "
                        "is 'drop': nothing is left")
    if held_out >= set(manifest.identities):
        split = with_splits(manifest, ["unseen_identity"] * len(manifest), group_clips(manifest, overlaps))
    else:
        split = leak_free_split(manifest, overlaps, replace(options, unseen_identities=tuple(sorted(held_out))))
    return SplitResult(split, list(overlaps), single, policy)


def single_group_identities(manifest: Manifest, overlaps: Sequence[Overlap], skip: set[str]) -> list[str]:
    """Identities (other than ``skip``) whose clips all fall in one group of shared audio or faces."""
    groups = group_clips(manifest, overlaps)
    per_identity: dict[str, set[str]] = {}
    for pair, group in zip(manifest.pairs, groups, strict=True):
        per_identity.setdefault(pair.identity, set()).add(group)
    return sorted(i for i, g in per_identity.items() if len(g) < 2 and i not in skip)


def _without(manifest: Manifest, overlaps: Sequence[Overlap], identities: set[str]) -> tuple[Manifest, list[Overlap]]:
    kept = [i for i, p in enumerate(manifest.pairs) if p.identity not in identities]
    new_index = {old: new for new, old in enumerate(kept)}
    remapped = [replace(o, first=new_index[o.first], second=new_index[o.second]) for o in overlaps
                if o.first in new_index and o.second in new_index]
    return Manifest(tuple(manifest.pairs[i] for i in kept)), remapped
