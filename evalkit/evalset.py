"""The images an evaluation compares: generated faces for every clip of the evaluated splits, and real faces.

Real faces are decoded once per file (BGR crops fixed), resized to the generator's image size exactly as the
generator's training targets are, and kept as uint8 RGB like the generated ones. The real reference of a split is the
set of distinct real faces paired with its clips. The identity head is trained on the real faces of the training
splits present (``train``, ``seen``) and tested on the real faces of ``unseen_speech`` that are not among them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from evalkit.distributed import Shard
from evalkit.errors import EvalError
from evalkit.options import EVAL_SPLITS, HEAD_HELDOUT_SPLIT, HEAD_TRAIN_SPLITS, RunOptions
from generator.data.audio import load_speech
from generator.data.faces import array_to_image, face_to_array, read_face_rgb
from generator.data.manifest import Manifest, Pair
from generator.model import Generator
from generator.synthesis import batched, generate

UNSEEN_IDENTITY = "unseen_identity"


@dataclass(frozen=True)
class ImagePool:
    """uint8 RGB images (N, S, S, 3), the identity of each, each one's path under the run folder and, for intervals
    that resample whole clusters, each one's cluster label (the manifest's ``group``, else the real face's path;
    None: every image independent) and what the labels are (``cluster_by``)."""

    images: np.ndarray
    identities: np.ndarray
    names: tuple[str, ...]
    clusters: np.ndarray | None = None
    cluster_by: str = "none"

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class EvalSet:
    splits: tuple[str, ...]
    generated: ImagePool
    real: ImagePool
    generated_index: dict[str, np.ndarray]
    real_index: dict[str, np.ndarray]
    paired_real: dict[str, np.ndarray]
    head_train: np.ndarray
    head_heldout: np.ndarray

    def counts(self) -> dict[str, dict[str, int]]:
        return {s: {"clips": len(self.generated_index[s]), "real_faces": len(self.real_index[s]),
                    "identities": len(set(self.generated.identities[self.generated_index[s]].tolist()))}
                for s in self.splits}


def choose_splits(manifest: Manifest, requested: tuple[str, ...]) -> tuple[str, ...]:
    """The requested splits (each must have pairs), or every evaluation split present."""
    if requested:
        manifest.select(requested)
        return tuple(dict.fromkeys(requested))
    present = tuple(s for s in EVAL_SPLITS if s in manifest.splits)
    if not present:
        raise EvalError(f"{manifest.path}: no evaluation split {EVAL_SPLITS} in this manifest (it has {manifest.splits})")
    return present


def check_compatible(model: Generator, sidecar: dict, manifest: Manifest, splits: tuple[str, ...]) -> None:
    """Identities of the evaluated seen-identity splits must be the checkpoint's identities."""
    known = set(sidecar.get("identities", []))
    for split in splits:
        if split == UNSEEN_IDENTITY:
            continue
        unknown = sorted(set(manifest.select(split).identities) - known)
        if unknown:
            raise EvalError(
                f"checkpoint {sidecar.get('path')} does not match the data: split {split!r} has identities {unknown} "
                f"that the checkpoint was not trained on (it knows {sorted(known)})"
            )


def unique_names(items: list[tuple[str, Path]]) -> list[str]:
    """``identity/stem`` per item; where stems clash within an identity, as many parent folders as needed are
    prefixed (``identity/test_jaimealtozano_face_0000``)."""
    depth = 1
    while True:
        names = [f"{identity}/{'_'.join(path.with_suffix('').parts[-depth:])}" for identity, path in items]
        longest = max((len(path.parts) for _, path in items), default=0)
        if len(set(names)) == len(names) or depth >= longest:
            break
        depth += 1
    if len(set(names)) != len(names):
        raise EvalError("the same file is listed twice under one identity")
    return names


def _real_face(pair: Pair, size: int) -> np.ndarray:
    image = read_face_rgb(pair.face, swap_bgr=pair.face_order == "bgr")
    if min(image.size) < size:
        raise EvalError(
            f"{pair.face}: real face is {image.width}x{image.height} px, smaller than the checkpoint's {size} px "
            "output; the data does not match the checkpoint's image size"
        )
    return np.asarray(array_to_image(face_to_array(image, size)))


def cluster_label(pair: Pair) -> str:
    """The cluster of a pair's clip and face: its ``group`` (clips sharing audio or a face), else its face."""
    return f"group:{pair.group}" if pair.group else f"face:{pair.face}"


def cluster_by(pairs: list[Pair]) -> str:
    with_group = sum(bool(p.group) for p in pairs)
    return "group" if with_group == len(pairs) else "face" if with_group == 0 else "group, else face"


def _face_keys(pairs: list[Pair]) -> list[tuple[Path, str]]:
    return list(dict.fromkeys((p.face, p.face_order) for p in pairs))


def load_real_faces(manifest: Manifest, splits: tuple[str, ...], size: int, with_head: bool
                    ) -> tuple[ImagePool, dict[str, np.ndarray], dict[tuple[Path, str], int], np.ndarray, np.ndarray]:
    """The pool of distinct real faces, the pool indices of each split's faces, and of the head's train / held-out
    faces (empty unless ``with_head``)."""
    by_split = {s: [p for p in manifest.pairs if p.split == s] for s in manifest.splits}
    train_pairs = [p for s in HEAD_TRAIN_SPLITS for p in by_split.get(s, [])] if with_head else []
    train_keys = set(_face_keys(train_pairs))
    heldout_pairs = [p for p in by_split.get(HEAD_HELDOUT_SPLIT, []) if (p.face, p.face_order) not in train_keys
                     ] if with_head else []
    needed = [p for s in splits for p in by_split[s]] + train_pairs + heldout_pairs
    first_pair = {}
    for p in needed:
        first_pair.setdefault((p.face, p.face_order), p)
    keys = list(first_pair)
    index = {key: i for i, key in enumerate(keys)}
    images = [_real_face(first_pair[k], size) for k in tqdm(keys, desc="loading real faces", unit="face", disable=None)]
    pool = ImagePool(
        np.stack(images),
        np.array([first_pair[k].identity for k in keys]),
        tuple(f"real/{n}.png" for n in unique_names([(first_pair[k].identity, k[0]) for k in keys])),
        np.array([cluster_label(first_pair[k]) for k in keys]),
        cluster_by(needed),
    )
    split_index = {s: np.array([index[k] for k in _face_keys(by_split[s])]) for s in splits}
    head_train = np.array([index[k] for k in _face_keys(train_pairs)], dtype=np.int64)
    head_heldout = np.array([index[k] for k in _face_keys(heldout_pairs)], dtype=np.int64)
    return pool, split_index, index, head_train, head_heldout


def generate_faces(model: Generator, sidecar: dict, pairs: list[Pair], options: RunOptions, shard: Shard
                   ) -> np.ndarray:
    """uint8 RGB faces for every pair's clip, in batches; batch k uses seed ``options.seed + k`` and is generated
    by the process that owns it."""
    data = sidecar.get("data", {})
    device = next(model.parameters()).device
    chunks = list(batched(pairs, options.batch_size))
    mine = [k for k in range(len(chunks)) if shard.owns(k)]
    local = {}
    for k in tqdm(mine, desc="generating faces", unit="batch", disable=None):
        speech = np.stack([load_speech(p.audio, model.config.audio_seconds, data.get("normalisation", "peak"))
                           for p in chunks[k]])
        batch = generate(model, torch.from_numpy(speech)[:, None].to(device), options.sampling, options.seed + k,
                         data.get("output_order", "rgb"))
        local[k] = np.stack([np.asarray(array_to_image(face)) for face in batch.cpu().numpy()])
    gathered = shard.gather(local)
    return np.concatenate([gathered[k] for k in range(len(chunks))])


def build_evalset(model: Generator, sidecar: dict, manifest: Manifest, splits: tuple[str, ...], options: RunOptions,
                  with_head: bool, shard: Shard) -> EvalSet:
    real, real_index, face_index, head_train, head_heldout = load_real_faces(
        manifest, splits, model.config.image_size, with_head)
    pairs = [p for s in splits for p in manifest.pairs if p.split == s]
    bounds = np.cumsum([0] + [sum(p.split == s for p in pairs) for s in splits])
    names = [f"generated/{p.split}/{n}.png" for p, n in zip(pairs, _unique_split_names(pairs))]
    generated = ImagePool(generate_faces(model, sidecar, pairs, options, shard), np.array([p.identity for p in pairs]),
                          tuple(names), np.array([cluster_label(p) for p in pairs]), cluster_by(pairs))
    generated_index = {s: np.arange(bounds[k], bounds[k + 1]) for k, s in enumerate(splits)}
    paired = {s: np.array([face_index[p.face, p.face_order] for p in pairs if p.split == s]) for s in splits}
    return EvalSet(splits, generated, real, generated_index, real_index, paired, head_train, head_heldout)


def _unique_split_names(pairs: list[Pair]) -> list[str]:
    names = [""] * len(pairs)
    for split in dict.fromkeys(p.split for p in pairs):
        positions = [i for i, p in enumerate(pairs) if p.split == split]
        for i, name in zip(positions, unique_names([(pairs[i].identity, pairs[i].audio) for i in positions])):
            names[i] = name
    return names


PAIRS_FILE = "pairs.csv"


def write_pairs(evalset: EvalSet, run_dir: Path) -> Path:
    """``pairs.csv`` (split, identity, real, generated; paths relative to the run folder): each generated face with
    the real face paired with its clip, the input of ``survey-app create-study --run RUN_DIR``."""
    path = run_dir / PAIRS_FILE
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "identity", "real", "generated"])
        for split in evalset.splits:
            for generated, real in zip(evalset.generated_index[split], evalset.paired_real[split]):
                writer.writerow([split, evalset.generated.identities[generated], evalset.real.names[real],
                                 evalset.generated.names[generated]])
    return path


def save_images(pool: ImagePool, run_dir: Path) -> None:
    for image, name in zip(tqdm(pool.images, desc="writing images", unit="image", leave=False, disable=None),
                           pool.names):
        target = run_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target)
