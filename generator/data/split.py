"""Leak-free splits: clips joined by shared audio (or a shared face) form one group, and groups are split whole.

Splits written:
- ``train``: clips the model trains on (together with ``seen``);
- ``seen``: a random sample of training clips, marked so that evaluation can report the paper's "seen speech";
- ``unseen_speech``: whole held-out groups of the training identities, sharing no run of ``min_run`` samples with any
  training clip;
- ``unseen_identity``: every clip of identities held out entirely (only when asked for).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from generator.data.audit import Overlap
from generator.data.manifest import Manifest, Pair, with_splits
from generator.errors import DataError

MIN_TRAINING_IDENTITIES = 2


@dataclass(frozen=True)
class SplitOptions:
    seed: int = 0
    test_fraction: float = 0.1
    seen_fraction: float = 0.1
    unseen_identities: tuple[str, ...] = ()


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_clips(manifest: Manifest, overlaps: Sequence[Overlap]) -> list[str]:
    """Connected components of 'shares audio' and 'shares a face'; ids g0000... in order of first appearance."""
    uf = _UnionFind(len(manifest))
    first_with_face: dict = {}
    for i, p in enumerate(manifest.pairs):
        uf.union(i, first_with_face.setdefault(p.face, i))
    for o in overlaps:
        uf.union(o.first, o.second)
    names: dict[int, str] = {}
    return [names.setdefault(uf.find(i), f"g{len(names):05d}") for i in range(len(manifest))]


def leak_free_split(manifest: Manifest, overlaps: Sequence[Overlap], options: SplitOptions) -> list[Pair]:
    """Assign every pair to a split; deterministic for a seed."""
    if not 0 < options.test_fraction < 1:
        raise DataError(f"--test-fraction must be between 0 and 1, got {options.test_fraction}")
    if not 0 <= options.seen_fraction < 1:
        raise DataError(f"seen fraction must be in [0, 1), got {options.seen_fraction}")
    identities = manifest.identities
    held_out = set(options.unseen_identities)
    unknown = held_out - set(identities)
    if unknown:
        raise DataError(f"unseen identities {sorted(unknown)} are not in the manifest (it has {identities})")
    if len(identities) - len(held_out) < MIN_TRAINING_IDENTITIES:
        raise DataError(
            f"holding out {len(held_out)} of {len(identities)} identities leaves fewer than "
            f"{MIN_TRAINING_IDENTITIES} to train on (the discriminator's wrong faces need two)"
        )
    groups = group_clips(manifest, overlaps)
    rng = np.random.default_rng(options.seed)
    splits = ["train"] * len(manifest)
    for identity in identities:
        members = [i for i, p in enumerate(manifest.pairs) if p.identity == identity]
        if identity in held_out:
            for i in members:
                splits[i] = "unseen_identity"
            continue
        _hold_out_groups(members, groups, options.test_fraction, rng, splits, identity)
        training = [i for i in members if splits[i] == "train"]
        n_seen = int(round(options.seen_fraction * len(training)))
        for i in rng.choice(training, size=n_seen, replace=False):
            splits[int(i)] = "seen"
    return with_splits(manifest, splits, groups)


def _hold_out_groups(
    members: list[int], groups: list[str], fraction: float, rng: np.random.Generator, splits: list[str], identity: str
) -> None:
    by_group: dict[str, list[int]] = {}
    for i in members:
        by_group.setdefault(groups[i], []).append(i)
    if len(by_group) < 2:
        raise DataError(
            f"identity {identity!r}: all {len(members)} clips share audio in one group; nothing can be held out "
            "without leaking speech into training"
        )
    names = sorted(by_group)
    target = fraction * len(members)
    held = 0
    for name in rng.permutation(names):
        size = len(by_group[name])
        if held >= target:
            break
        # a group that would overshoot the target by more than it helps is skipped, unless nothing is held yet
        if held and held + size - target > target - held:
            continue
        for i in by_group[name]:
            splits[i] = "unseen_speech"
        held += size
    if held == len(members):
        raise DataError(f"identity {identity!r}: holding out groups left no training clips")
