"""Oracle generators on a slice of the embedded evaluation set, for the voice→face metrics' tests.

The real faces are loaded as ``evalkit run`` loads them (64 px, the included checkpoint's size); an oracle's generated
face for a clip is one of these real faces, so its dlib features are the real face's (looked up, not recomputed).
Features of the real faces and of the gallery's GRID faces are computed once per test session (about 10 s).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from evalkit.evalset import EvalSet, ImagePool, load_real_faces
from evalkit.features import FeatureCache, Features, make_extractor
from evalkit.metrics import MetricContext
from evalkit.options import EMBEDDED_DATA, RunOptions
from generator.data.manifest import read_manifest

SPLIT = "unseen_speech"


def slice_manifest(out: Path, training_faces: int = 15, heldout_faces: int = 10) -> Path:
    """The first faces of each identity of the embedded set: ``training_faces`` seen faces (one clip each) and
    ``heldout_faces`` unseen-speech faces with all their clips (5 each); absolute paths, genders kept."""
    rows = list(csv.DictReader(EMBEDDED_DATA.open(newline="")))
    kept, faces = [], {}
    for row in rows:
        limit = training_faces if row["split"] == "seen" else heldout_faces
        chosen = faces.setdefault((row["identity"], row["split"]), [])
        if row["face"] not in chosen:
            if len(chosen) >= limit:
                continue
            chosen.append(row["face"])
        kept.append({**row, "face": str(EMBEDDED_DATA.parent / row["face"]),
                     "audio": str(EMBEDDED_DATA.parent / row["audio"])})
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return out


@dataclass
class OracleBench:
    """Real faces of a data slice, their dlib features, and how to score a stand-in generator on its clips."""

    options: RunOptions
    pool: ImagePool
    features: Features
    split_index: dict[str, np.ndarray]
    paired: np.ndarray
    identities: np.ndarray
    head_train: np.ndarray
    head_heldout: np.ndarray
    work: Path

    def context(self, source: np.ndarray, **options) -> MetricContext:
        """A metric context whose generated face for clip k is real face ``source[k]`` (pool indices)."""
        source = np.asarray(source, dtype=np.int64)
        generated = ImagePool(self.pool.images[source], self.identities, tuple(f"g/{k}" for k in range(len(source))))
        evalset = EvalSet(splits=(SPLIT,), generated=generated, real=self.pool,
                          generated_index={SPLIT: np.arange(len(source))}, real_index=dict(self.split_index),
                          paired_real={SPLIT: self.paired}, head_train=self.head_train, head_heldout=self.head_heldout)

        def feature_source(name: str) -> tuple[Features, Features]:
            assert name == "dlib"
            return {key: value[source] for key, value in self.features.items()}, self.features

        return MetricContext(replace(self.options, **options), evalset, self.work, feature_source)

    # the stand-in generators: pool indices of the face "generated" for each clip

    def own_face(self) -> np.ndarray:
        return self.paired.copy()

    def nearest_training_face(self) -> np.ndarray:
        """The speaker's real training face nearest (descriptor) to the clip's real face: an identity oracle that
        never returns the clip's own photo."""
        d = self.features["descriptor"].astype(np.float64)
        out = np.empty(len(self.paired), dtype=np.int64)
        for k, (face, identity) in enumerate(zip(self.paired, self.identities, strict=True)):
            candidates = self.head_train[self.pool.identities[self.head_train] == identity]
            out[k] = candidates[np.linalg.norm(d[candidates] - d[face], axis=1).argmin()]
        return out

    def constant(self) -> np.ndarray:
        return np.full(len(self.paired), self.head_train[0])

    def identity_lookup(self) -> np.ndarray:
        """One fixed training face per speaker (a per-identity 'mean face')."""
        first = {identity: self.head_train[self.pool.identities[self.head_train] == identity][0]
                 for identity in np.unique(self.identities)}
        return np.array([first[identity] for identity in self.identities])

    def shuffled(self, seed: int = 0) -> np.ndarray:
        """The nearest-training-face oracle's faces given to randomly permuted clips (speaker information lost)."""
        return self.nearest_training_face()[np.random.default_rng(seed).permutation(len(self.paired))]


def make_bench(root: Path) -> OracleBench:
    manifest_path = slice_manifest(root / "slice" / "manifest.csv")
    options = RunOptions(data=manifest_path, cache_dir=root / "cache", bootstrap=100, permutations=199)
    manifest = read_manifest(manifest_path)
    real = load_real_faces(manifest, (SPLIT,), 64)
    features = FeatureCache(options.cache_dir).features(make_extractor("dlib", options), real.pool.images)
    pairs = [p for p in manifest.pairs if p.split == SPLIT]
    identities = np.array([p.identity for p in pairs])
    (root / "work").mkdir(exist_ok=True)
    return OracleBench(options, real.pool, features, real.split_index, real.paired(pairs), identities, real.head_train,
                       real.head_heldout, root / "work")
