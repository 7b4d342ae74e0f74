"""Where every number came from: checkpoint, data and weights hashes, package versions, seed, command line."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from evalkit.features import FeatureExtractor
from evalkit.generators.base import GeneratorInfo
from evalkit.options import RunOptions
from generator.data.manifest import Manifest
from generator.runtime import code_version, sha256_file

PACKAGES = ("wav2pix-evalkit", "torch", "torchvision", "numpy", "scipy", "pytorch-fid", "dlib-bin",
            "face-recognition-models", "h5py", "pillow", "click", "tqdm")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def collect(options: RunOptions, generator: GeneratorInfo, used: Manifest, extractors: dict[str, FeatureExtractor],
            command_line: str) -> dict:
    """Provenance record; ``used`` holds the manifest rows this run read (their file bytes are hashed). The
    generator's own description (kind, name, hash, provenance) is the record's ``generator``; here its hash only."""
    return {
        "generator_sha256": generator.sha256,
        "data": {"manifest": str(used.path), "manifest_sha256": sha256_file(used.path) if used.path else None,
                 "content_sha256": used.content_hash(), "pairs": len(used)},
        "weights": {name: extractor.provenance() for name, extractor in extractors.items()},
        "packages": package_versions(),
        "code_version": code_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "seed": options.seed,
        "command_line": command_line,
    }
