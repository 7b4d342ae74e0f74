"""The images an evaluation compares: generated faces for every clip of the evaluated splits, and real faces.

Real faces are decoded once per file (BGR crops fixed), resized to the generator's image size exactly as the
generator's training targets are, and kept as uint8 RGB like the generated ones. The real reference of a split is the
set of distinct real faces paired with its clips. The identity head is trained on the real faces of the training
splits present (``train``, ``seen``) and tested on the real faces of ``unseen_speech`` that are not among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from evalkit.errors import EvalError
from evalkit.generators.base import RealReference
from evalkit.options import EVAL_SPLITS, HEAD_HELDOUT_SPLIT, HEAD_TRAIN_SPLITS
from evalkit.streaming import scratch_array
from generator.data.faces import read_face_rgb
from generator.data.manifest import Manifest, Pair
from generator.errors import DataError

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
        raise EvalError(
            f"{manifest.path}: no evaluation split {EVAL_SPLITS} in this manifest (it has {manifest.splits})")
    return present


def check_compatible(identities: tuple[str, ...] | None, who: str, manifest: Manifest, splits: tuple[str, ...]
                     ) -> None:
    """Identities of the evaluated seen-identity splits must be among the generator's training identities (when it
    declares them; otherwise the data's training splits say who is known)."""
    if identities is None:
        return
    known = set(identities)
    for split in splits:
        if split == UNSEEN_IDENTITY:
            continue
        unknown = sorted(set(manifest.select(split).identities) - known)
        if unknown:
            raise EvalError(
                f"generator {who} does not match the data: split {split!r} has identities {unknown} "
                f"that it was not trained on (it knows {sorted(known)})"
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
    """The pair's real face as uint8 RGB (size, size, 3): BGR fixed, bilinear resize (as the generator's training
    targets are made)."""
    try:
        image = read_face_rgb(pair.face, swap_bgr=pair.face_order == "bgr")
    except DataError as exc:
        raise EvalError(str(exc)) from None
    if min(image.size) < size:
        raise EvalError(
            f"{pair.face}: real face is {image.width}x{image.height} px, smaller than the generator's {size} px "
            "output; the data does not match the generator's image size"
        )
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))


def cluster_label(pair: Pair) -> str:
    """The cluster of a pair's clip and face: its ``group`` (clips sharing audio or a face), else its face."""
    return f"group:{pair.group}" if pair.group else f"face:{pair.face}"


def cluster_by(pairs: list[Pair]) -> str:
    with_group = sum(bool(p.group) for p in pairs)
    return "group" if with_group == len(pairs) else "face" if with_group == 0 else "group, else face"


def _face_keys(pairs: list[Pair]) -> list[tuple[Path, str]]:
    return list(dict.fromkeys((p.face, p.face_order) for p in pairs))


@dataclass(frozen=True)
class RealFaces:
    """The distinct real faces a run reads (uint8 RGB at the evaluated size), the pool indices of each evaluated
    split's faces, the pool index of every (face file, channel order), and the identity head's training faces (the
    ``train``/``seen`` splits) and held-out faces (``unseen_speech`` faces absent from training)."""

    pool: ImagePool
    split_index: dict[str, np.ndarray]
    face_index: dict[tuple[Path, str], int]
    head_train: np.ndarray
    head_heldout: np.ndarray

    def training_faces(self, identity: str) -> np.ndarray:
        """Pool indices of the training faces of ``identity`` (empty for an unseen identity)."""
        return self.head_train[self.pool.identities[self.head_train] == identity]

    def reference(self, pairs: list[Pair]) -> RealReference:
        """What reference generators draw from, for the clips ``pairs``."""
        identities = sorted(set(self.pool.identities[self.head_train].tolist()))
        return RealReference(self.pool, self.paired(pairs), {i: self.training_faces(i) for i in identities})

    def paired(self, pairs: list[Pair]) -> np.ndarray:
        """Pool index of each pair's real face."""
        return np.array([self.face_index[p.face, p.face_order] for p in pairs], dtype=np.int64)


def load_real_faces(manifest: Manifest, splits: tuple[str, ...], size: int, cache_dir: Path | None = None
                    ) -> RealFaces:
    """The distinct real faces of the evaluated splits and of the training splits, decoded once each; with a cache
    folder into a memory map of a scratch file (``evalkit.streaming.scratch_array``: memory flat in the number of
    faces). Raises EvalError for an unreadable or too small face, or a cache folder that cannot be written."""
    by_split = {s: [p for p in manifest.pairs if p.split == s] for s in manifest.splits}
    train_pairs = [p for s in HEAD_TRAIN_SPLITS for p in by_split.get(s, [])]
    train_keys = set(_face_keys(train_pairs))
    heldout_pairs = [p for p in by_split.get(HEAD_HELDOUT_SPLIT, []) if (p.face, p.face_order) not in train_keys]
    needed = [p for s in splits for p in by_split[s]] + train_pairs + heldout_pairs
    first_pair: dict[tuple[Path, str], Pair] = {}
    for p in needed:
        first_pair.setdefault((p.face, p.face_order), p)
    keys = list(first_pair)
    index = {key: i for i, key in enumerate(keys)}
    try:
        images = scratch_array((len(keys), size, size, 3), np.uint8, cache_dir)
    except OSError as exc:
        raise EvalError(f"{cache_dir}: cannot write the real faces' scratch file ({exc}); pick another --cache-dir"
                        ) from None
    for i, key in enumerate(tqdm(keys, desc="loading real faces", unit="face", disable=None)):
        images[i] = _real_face(first_pair[key], size)
    pool = ImagePool(
        images,
        np.array([first_pair[k].identity for k in keys]),
        tuple(f"real/{n}.png" for n in unique_names([(first_pair[k].identity, k[0]) for k in keys])),
        np.array([cluster_label(first_pair[k]) for k in keys]),
        cluster_by(needed),
    )
    return RealFaces(
        pool=pool,
        split_index={s: np.array([index[k] for k in _face_keys(by_split[s])], dtype=np.int64) for s in splits},
        face_index=index,
        head_train=np.array([index[k] for k in _face_keys(train_pairs)], dtype=np.int64),
        head_heldout=np.array([index[k] for k in _face_keys(heldout_pairs)], dtype=np.int64),
    )


def evaluated_pairs(manifest: Manifest, splits: tuple[str, ...]) -> list[Pair]:
    """The clips of the evaluated splits, split by split in manifest order: the run's clip order."""
    return [p for s in splits for p in manifest.pairs if p.split == s]


def generated_names(pairs: list[Pair]) -> list[str]:
    """``generated/<split>/<identity>/<audio stem>.png`` per clip (unique within the run folder)."""
    return [f"generated/{p.split}/{n}.png" for p, n in zip(pairs, _unique_split_names(pairs), strict=True)]


def _unique_split_names(pairs: list[Pair]) -> list[str]:
    names = [""] * len(pairs)
    for split in dict.fromkeys(p.split for p in pairs):
        positions = [i for i, p in enumerate(pairs) if p.split == split]
        split_names = unique_names([(pairs[i].identity, pairs[i].audio) for i in positions])
        for i, name in zip(positions, split_names, strict=True):
            names[i] = name
    return names


def assemble(faces: np.ndarray, pairs: list[Pair], splits: tuple[str, ...], real: RealFaces) -> EvalSet:
    """The EvalSet of generated ``faces`` (one per pair, in run order) against the run's real faces."""
    split_of = np.array([p.split for p in pairs])
    generated = ImagePool(faces, np.array([p.identity for p in pairs]), tuple(generated_names(pairs)),
                          np.array([cluster_label(p) for p in pairs]), cluster_by(pairs))
    paired = real.paired(pairs)
    generated_index = {s: np.flatnonzero(split_of == s) for s in splits}
    return EvalSet(splits, generated, real.pool, generated_index, real.split_index,
                   {s: paired[generated_index[s]] for s in splits}, real.head_train, real.head_heldout)


PNG_LEVEL = 1  # zlib level: 2.3x faster to encode than PIL's default 6, for 7 % more bytes (embedded set's faces)


def save_images(pool: ImagePool, run_dir: Path) -> None:
    """Every image of the pool as a PNG at its name under the run folder, read one at a time (the pool may be a
    memory map of a set larger than memory) and encoded on the free cores (Pillow's encoder releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from evalkit.threads import FreeCores

    for folder in {(run_dir / name).parent for name in pool.names}:
        folder.mkdir(parents=True, exist_ok=True)

    def write(k: int) -> None:
        Image.fromarray(np.asarray(pool.images[k])).save(run_dir / pool.names[k], compress_level=PNG_LEVEL)

    with ThreadPoolExecutor(FreeCores().threads()) as threads:
        for _ in tqdm(threads.map(write, range(len(pool.names))), total=len(pool.names), desc="writing images",
                      unit="image", leave=False, disable=None):
            pass
