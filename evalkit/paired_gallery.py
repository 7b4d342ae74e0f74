"""The paired gallery of a run: each generated face beside the real face of its clip and its nearest training face.

The nearest training face of a generated face is the real face of the data's training splits (``train``/``seen``:
``EvalSet.head_train``) whose dlib face descriptor is nearest in Euclidean distance, over every identity (the usual
visual check for copied training faces; dlib's model puts two photos of one person within about 0.6, King 2017,
dlib ``dlib_face_recognition_resnet_model_v1``). Its distance and the distance to the clip's own real face are kept.

Every clip's row goes to ``gallery.csv`` in the run folder (the full set); the run record keeps a fixed sample of
``SAMPLE_PER_IDENTITY`` rows per split and identity, drawn with the run's seed, for the report to show.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from evalkit.clip_files import audio_path
from evalkit.evalset import EvalSet
from evalkit.neighbours import nearest
from evalkit.stats import seeded_rng

GALLERY_FILE = "gallery.csv"
SAMPLE_PER_IDENTITY = 4
SAME_PERSON_DISTANCE = 0.6
GALLERY_COLUMNS = ("split", "identity", "clip", "real", "generated", "audio", "real_distance", "nearest",
                   "nearest_identity", "nearest_distance", "own_face", "sample")


def nearest_rows(queries: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row (n, d) the index of its nearest candidate row (m, d) in Euclidean distance and that
    distance: ((n,) int64, (n,) float64), exact and in blocks of queries (``evalkit.neighbours.nearest``). Raises
    ValueError when there is no candidate."""
    if len(candidates) == 0:
        raise ValueError("no candidate rows")
    squared, index = nearest(queries, candidates)
    return index, np.sqrt(squared)


def sample_positions(identities: np.ndarray, per_identity: int, seed: int, split: str) -> np.ndarray:
    """Positions (sorted) of a seeded sample of at most ``per_identity`` entries of each identity."""
    chosen = []
    for identity in sorted(set(identities.tolist())):
        members = np.flatnonzero(identities == identity)
        rng = seeded_rng(seed, "paired-gallery", split, identity)
        chosen.append(np.sort(rng.choice(members, min(per_identity, len(members)), replace=False)))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def paired_gallery(evalset: EvalSet, clips: dict[str, list[str]], descriptors: tuple[np.ndarray, np.ndarray] | None,
                   descriptor_name: str, seed: int, run_dir: Path, per_identity: int = SAMPLE_PER_IDENTITY) -> dict:
    """Write ``gallery.csv`` (every clip) and return the run record's ``gallery`` entry (its sample).

    ``clips``: each split's clip ids in run order (``clip_files.write_clip_files``); ``descriptors``: the dlib
    descriptors of the generated and of the real pool ((N, 128) and (M, 128) float), None when this run extracted
    none (then the rows have no nearest face and ``nearest`` says why); ``descriptor_name``: what they are."""
    generated, real = evalset.generated, evalset.real
    train = evalset.head_train
    reason = ("no metric of this run extracted dlib face descriptors" if descriptors is None else
              "the data has no training faces (train or seen split)" if len(train) == 0 else "")
    rows = []
    for split in evalset.splits:
        index, paired = evalset.generated_index[split], evalset.paired_real[split]
        sample = set(sample_positions(generated.identities[index], per_identity, seed, split).tolist())
        if descriptors is not None and not reason:
            nearest, distance = nearest_rows(descriptors[0][index], descriptors[1][train])
            own = np.linalg.norm(descriptors[0][index].astype(np.float64) - descriptors[1][paired], axis=1)
        for k, (g, r) in enumerate(zip(index, paired, strict=True)):
            row = {"split": split, "identity": str(generated.identities[g]), "clip": clips[split][k],
                   "real": real.names[r], "generated": generated.names[g], "audio": audio_path(clips[split][k]),
                   "real_distance": None, "nearest": None, "nearest_identity": None, "nearest_distance": None,
                   "own_face": None, "sample": k in sample}
            if not reason:
                t = int(train[nearest[k]])
                row.update(real_distance=float(own[k]), nearest=real.names[t],
                           nearest_identity=str(real.identities[t]), nearest_distance=float(distance[k]),
                           own_face=t == int(r))
            rows.append(row)
    with (run_dir / GALLERY_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, GALLERY_COLUMNS)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return {"status": "unavailable" if reason else "ok", "reason": reason, "file": GALLERY_FILE,
            "descriptor": descriptor_name, "distance": "Euclidean between dlib face descriptors",
            "same_person_distance": SAME_PERSON_DISTANCE, "training_faces": int(len(train)),
            "per_identity": per_identity, "seed": seed, "sample": [row for row in rows if row["sample"]]}
