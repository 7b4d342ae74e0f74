"""FID between two image folders or pytorch-fid ``.npz`` statistics files, as ``python -m pytorch_fid`` computes it,
with this toolkit's weights handling and feature cache."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from pytorch_fid.fid_score import IMAGE_EXTENSIONS

from evalkit.errors import EvalError
from evalkit.features import FeatureCache
from evalkit.features.inception import InceptionExtractor
from evalkit.stats import read_stats, statistics
from generator.data.faces import read_image_rgb


def folder_images(folder: Path) -> np.ndarray:
    """The folder's images (pytorch-fid's extensions, sorted, not recursive) as uint8 RGB (N, H, W, 3), each read by
    the toolkit's one loader (every image mode mapped faithfully to 8-bit RGB, or one error naming the file)."""
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS)
    if not files:
        raise EvalError(f"{folder}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    images = [np.asarray(read_image_rgb(f)) for f in files]
    sizes = {image.shape for image in images}
    if len(sizes) > 1:
        raise EvalError(f"{folder}: images differ in size ({sorted(sizes)[:3]}...); give every image the same size")
    return np.stack(images)


def path_statistics(path: Path, extractor: InceptionExtractor, cache: FeatureCache) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a folder's Inception features, or those stored in an ``.npz`` file."""
    if path.suffix == ".npz":
        return read_stats(path)
    if not path.is_dir():
        raise EvalError(f"{path}: neither an image folder nor a .npz statistics file")
    features = cache.features(extractor, folder_images(path))["features"]
    if len(features) < extractor.dims:
        warnings.warn(f"{path}: {len(features)} images < {extractor.dims} feature dimensions; the covariance is "
                      "singular and FID is biased upwards", stacklevel=2)
    return statistics(features)
