"""Reference baselines, scored by the run's own metrics so a reader knows what a number means:

- **per-identity mean real face**: every clip of a speaker gets the pixel mean of that speaker's real training faces
  (a model that only recognises the speaker and draws the average face);
- **random real face of a random identity**: every clip gets a real training face of a uniformly drawn identity
  (realistic faces at chance identity).

They are computed once per run from the run's manifest and settings (``baselines.json`` in the run folder) for the
splits whose speakers have real training faces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalkit.experiments.scoring import (
    RealFaces,
    StandIns,
    load_reference,
    options_from_settings,
    scorer,
)
from evalkit.results import RESULTS_FILE
from evalkit.stats import seeded_rng
from generator.checkpoint import sha256_file
from generator.data.manifest import Manifest, read_manifest

BASELINES_FILE = "baselines.json"
MEAN_FACE = ("mean_face", "Per-identity mean real face",
             "every clip gets the pixel mean of its speaker's real training faces.")
RANDOM_FACE = ("random_face", "Random real face, random identity",
               "every clip gets a real training face of a uniformly drawn identity (seeded).")


@dataclass(frozen=True)
class Items:
    """The clips of the scored splits in ``evalkit run``'s order: speaker, paired real face, split ranges."""

    identities: np.ndarray
    paired_real: np.ndarray
    split_items: dict[str, np.ndarray]

    def paired_by_split(self) -> dict[str, np.ndarray]:
        return {s: self.paired_real[items] for s, items in self.split_items.items()}


def clip_items(manifest: Manifest, splits: list[str], real: RealFaces) -> Items:
    pairs = [p for s in splits for p in manifest.pairs if p.split == s]
    bounds = np.cumsum([0] + [sum(p.split == s for p in pairs) for s in splits])
    return Items(np.array([p.identity for p in pairs]),
                 np.array([real.face_index[p.face, p.face_order] for p in pairs], dtype=np.int64),
                 {s: np.arange(bounds[k], bounds[k + 1]) for k, s in enumerate(splits)})


def mean_face_stand_ins(real: RealFaces, items: Items) -> StandIns:
    identities = sorted(set(items.identities.tolist()))
    means = np.stack([real.pool.images[real.training_faces(i)].astype(np.float64).mean(axis=0) for i in identities])
    return StandIns(np.round(means).astype(np.uint8), np.searchsorted(identities, items.identities),
                    items.identities, items.split_items, items.paired_by_split())


def random_face_stand_ins(real: RealFaces, items: Items, rng: np.random.Generator) -> StandIns:
    identities = sorted(set(real.pool.identities[real.head_train].tolist()))
    drawn = rng.choice(identities, size=len(items.identities))
    index = np.array([rng.choice(real.training_faces(identity)) for identity in drawn], dtype=np.int64)
    return StandIns(real.pool.images, index, items.identities, items.split_items, items.paired_by_split())


def _unavailable(reason: str) -> dict:
    return {"status": "unavailable", "reason": reason}


def compute(run_dir: Path, document: dict) -> dict:
    data = document["provenance"]["data"]
    manifest_path = Path(data["manifest"])
    if not manifest_path.is_file():
        return _unavailable(f"the run's manifest {manifest_path} is no longer there")
    if sha256_file(manifest_path) != data["manifest_sha256"]:
        return _unavailable(f"the run's manifest {manifest_path} has changed since the run")
    manifest = read_manifest(manifest_path)
    options = options_from_settings(document["settings"])
    real = load_reference(manifest, tuple(document["splits"]), document["settings"]["image_size"])
    splits = [s for s in document["splits"]
              if all(len(real.training_faces(i)) for i in set(manifest.select(s).identities))]
    if not splits:
        return _unavailable("no evaluated split has speakers with real training faces")
    items = clip_items(manifest, splits, real)
    stand_ins = {MEAN_FACE: mean_face_stand_ins(real, items),
                 RANDOM_FACE: random_face_stand_ins(real, items, seeded_rng(options.seed, "baseline", "random face"))}
    baselines = []
    for (name, label, description), faces in stand_ins.items():
        results = scorer(options, real, faces, run_dir / "baselines" / name).score()
        for entry in results.values():
            entry.get("rows", {}).pop("real", None)
        baselines.append({"name": name, "label": label, "description": description, "results": results})
    return {"status": "ok", "splits": splits, "baselines": baselines}


def load_or_compute(run_dir: Path, document: dict) -> dict:
    """The run's baselines, recomputed when results.json was rewritten since they were stored."""
    path = run_dir / BASELINES_FILE
    results_sha256 = sha256_file(run_dir / RESULTS_FILE)
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("results_sha256") == results_sha256:
            return stored
    baselines = {**compute(run_dir, document), "results_sha256": results_sha256}
    path.write_text(json.dumps(baselines, indent=2, allow_nan=False) + "\n")
    return baselines
