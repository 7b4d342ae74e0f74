"""Feature extractors behind one interface, registered by name, and a cache keyed by content hash.

An extractor maps uint8 RGB images (N, H, W, 3) to named float arrays with one row per image. Its ``cache_id``
(name, code version, settings, weights SHA-256) and the SHA-256 of the pixels make the cache key, so a re-run on the
same images with the same extractor reads the arrays back instead of recomputing them.
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


def images_sha256(images: np.ndarray) -> str:
    digest = hashlib.sha256(f"{images.dtype}{images.shape}".encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()


class FeatureCache:
    """``<dir>/<key[:2]>/<key>.npz`` per (extractor, image set); writes are atomic. Under torchrun each process
    extracts one block of the images and the blocks are gathered; process 0 writes the file."""

    def __init__(self, directory: Path, shard: Shard | None = None) -> None:
        self.directory = Path(directory)
        self.shard = shard or Shard()

    def key(self, extractor: FeatureExtractor, images: np.ndarray) -> str:
        identity = json.dumps(extractor.cache_id(), sort_keys=True) + images_sha256(images)
        return hashlib.sha256(identity.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npz"

    def features(self, extractor: FeatureExtractor, images: np.ndarray) -> Features:
        path = self.path(self.key(extractor, images))
        if self.shard.main_decides(path.is_file()):
            with np.load(path) as stored:
                return {name: stored[name] for name in stored.files}
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

    def _extract(self, extractor: FeatureExtractor, images: np.ndarray) -> Features:
        mine = self.shard.blocks(len(images))[self.shard.rank]
        gathered = self.shard.gather({self.shard.rank: extractor.extract(images[mine])} if len(mine) else {})
        parts = [gathered[rank] for rank in sorted(gathered)]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
