"""Feature extractors behind one interface, registered by name, and a cache keyed by content hash.

An extractor maps uint8 RGB images (N, H, W, 3) to named float arrays with one row per image. Its ``cache_id``
(name, code version, settings, weights SHA-256) and the SHA-256 of the pixels make the cache key, so a re-run on the
same images with the same extractor reads the arrays back instead of recomputing them.

Within a run, an image is embedded once per extractor however often it occurs: repeated rows of a set (a reference
generator's faces repeat a few real faces) and rows already seen in an earlier set of the run (a real face drawn by a
reference generator) take the features computed for them (``FeatureCache._extract``). Extractors work image by image
(``FeatureExtractor.extract``'s contract: row i depends on image i alone), so this changes which rows are computed,
not their values beyond float32 rounding of a batched network.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np

from evalkit.distributed import Shard
from evalkit.errors import EvalError
from evalkit.options import RunOptions
from evalkit.registry import Registry

Features = dict[str, np.ndarray]


class FeatureExtractor(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    batch_size: ClassVar[int] = 1
    """Images ``extract`` embeds as one batch, counted from the start of its input: the cache splits work at
    multiples of it, so that one process and N (torchrun) embed the same batches (a batch of 1 and a batch of 64 can
    round float32 differently)."""

    @abstractmethod
    def settings(self) -> dict:
        """Everything besides the code version that changes the output (dimensions, weights hash, detector...)."""

    @abstractmethod
    def extract(self, images: np.ndarray) -> Features:
        """Arrays with one row per image of ``images`` (N, H, W, 3) uint8 RGB."""

    @abstractmethod
    def provenance(self) -> dict:
        """Weights files (path, SHA-256) and settings, for results.json."""

    def cache_id(self) -> dict:
        return {"name": self.name, "version": self.version, **self.settings()}


ExtractorFactory = Callable[[RunOptions], FeatureExtractor]
EXTRACTORS: Registry[ExtractorFactory] = Registry("feature extractor")


def register_extractor(name: str) -> Callable[[ExtractorFactory], ExtractorFactory]:
    """Class decorator: register the extractor under ``name``; raises ``DuplicateRegistration`` when it is taken."""

    def register(factory: ExtractorFactory) -> ExtractorFactory:
        return EXTRACTORS.add(name, factory, origin=f"{factory.__module__}.{factory.__qualname__}")

    return register


def make_extractor(name: str, options: RunOptions) -> FeatureExtractor:
    """Build a registered extractor; raises FeatureUnavailable when its default weights are not installed."""
    _load_builtin_extractors()
    if name not in EXTRACTORS:
        raise EvalError(f"unknown feature extractor {name!r} (known: {sorted(EXTRACTORS)})")
    return EXTRACTORS[name](options)


def _load_builtin_extractors() -> None:
    from evalkit.features import dlib_faces, inception, vggface  # noqa: F401  (registration on import)


HASH_CHUNK = 256  # images hashed at a time: a memory-mapped set is read in pieces
EXTRACT_PIECE = 2048  # about this many images (a multiple of the extractor's batch) are read and embedded at a time


def images_sha256(images: np.ndarray) -> str:
    """SHA-256 of a set of images (N, H, W, 3): dtype, shape and pixels, read ``HASH_CHUNK`` images at a time."""
    digest = hashlib.sha256(f"{images.dtype}{images.shape}".encode())
    for start in range(0, len(images), HASH_CHUNK):
        digest.update(np.ascontiguousarray(images[start : start + HASH_CHUNK]).data)
    return digest.hexdigest()


def row_digests(images: np.ndarray) -> list[bytes]:
    """BLAKE2b-128 digest of each image's pixels (N,), to find repeated images."""
    return [hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest() for image in images]


def _extract_pieces(extractor: FeatureExtractor, images: np.ndarray, rows: np.ndarray) -> Features:
    """``extractor.extract(images[rows])``, read and embedded ``EXTRACT_PIECE`` images (rounded to whole batches) at
    a time: a memory-mapped set is never copied whole into memory."""
    step = max(1, EXTRACT_PIECE // extractor.batch_size) * extractor.batch_size
    parts = [extractor.extract(np.asarray(images[rows[start : start + step]])) for start in range(0, len(rows), step)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


class FeatureCache:
    """``<dir>/<key[:2]>/<key>.npz`` per (extractor, image set); writes are atomic. Under torchrun each process
    extracts one block of the images and the blocks are gathered; process 0 writes the file."""

    def __init__(self, directory: Path, shard: Shard | None = None) -> None:
        self.directory = Path(directory)
        self.shard = shard or Shard()
        # per extractor: the row digests of each image set of this run and its features (not the images: a run's
        # in-memory inputs, e.g. every clip's speech, would otherwise be held to the end of the run)
        self._seen: dict[str, list[tuple[list[bytes], Features]]] = {}

    def key(self, extractor: FeatureExtractor, images: np.ndarray) -> str:
        identity = json.dumps(extractor.cache_id(), sort_keys=True) + images_sha256(images)
        return hashlib.sha256(identity.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npz"

    def features(self, extractor: FeatureExtractor, images: np.ndarray) -> Features:
        path = self.path(self.key(extractor, images))
        if self.shard.main_decides(path.is_file()):
            with np.load(path) as stored:
                loaded = {name: stored[name] for name in stored.files}
            self._remember(extractor, images, loaded, None)
            return loaded
        computed = self._extract(extractor, images)
        if not self.shard.is_main:
            return computed
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp.npz")
            np.savez(tmp, **cast(dict[str, Any], computed))  # names of arrays, never allow_pickle
            tmp.replace(path)
        except OSError as exc:
            raise EvalError(
                f"{self.directory}: cannot write the feature cache ({exc}); pick another --cache-dir") from None
        return computed

    def _remember(self, extractor: FeatureExtractor, images: np.ndarray, features: Features,
                  digests: list[bytes] | None) -> None:
        self._seen.setdefault(json.dumps(extractor.cache_id(), sort_keys=True), []).append(
            (row_digests(images) if digests is None else digests, features))

    def _known(self, extractor: FeatureExtractor) -> dict[bytes, tuple[Features, int]]:
        """Digest -> (features, row) of every image this run has features of for ``extractor``."""
        known: dict[bytes, tuple[Features, int]] = {}
        for digests, features in self._seen.get(json.dumps(extractor.cache_id(), sort_keys=True), []):
            for row, digest in enumerate(digests):
                known.setdefault(digest, (features, row))
        return known

    def _extract(self, extractor: FeatureExtractor, images: np.ndarray) -> Features:
        """Features of ``images``, each distinct image not seen before in this run embedded once (split into one
        block per torchrun process and gathered); the others copied."""
        digests = row_digests(images)
        known = self._known(extractor)
        first: dict[bytes, int] = {}
        new = np.array([i for i, d in enumerate(digests) if d not in known and first.setdefault(d, i) == i],
                       dtype=np.int64)
        batches = np.arange(0, len(new), extractor.batch_size)  # first row of each batch, split by whole batches
        starts = batches[self.shard.blocks(len(batches))[self.shard.rank]]
        mine = new[starts[0] : min(starts[-1] + extractor.batch_size, len(new))] if len(starts) else new[:0]
        gathered = self.shard.gather({self.shard.rank: _extract_pieces(extractor, images, mine)} if len(mine) else {})
        parts = [gathered[rank] for rank in sorted(gathered)]
        fresh = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]} if parts else {}
        for position, row in enumerate(new):
            known[digests[row]] = (fresh, position)
        features, row = known[digests[0]] if digests else ({}, 0)
        out = {name: np.empty((len(images), *values.shape[1:]), values.dtype) for name, values in features.items()}
        for i, digest in enumerate(digests):
            features, row = known[digest]
            for name, values in out.items():
                values[i] = features[name][row]
        self._remember(extractor, images, out, digests)
        return out
