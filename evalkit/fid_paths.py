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
from evalkit.stats import check_sample_size, frechet_distance, frechet_distance_of_features, read_stats, statistics
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


def path_features(path: Path, extractor: InceptionExtractor, cache: FeatureCache) -> np.ndarray:
    """Inception features (N, dims) of an image folder's images."""
    if not path.is_dir():
        raise EvalError(f"{path}: neither an image folder nor a .npz statistics file")
    features = cache.features(extractor, folder_images(path))["features"]
    if len(features) < extractor.dims:
        warnings.warn(f"{path}: {len(features)} images < {extractor.dims} feature dimensions; the covariance is "
                      "singular and FID is biased upwards", stacklevel=2)
    return features


def path_statistics(path: Path, extractor: InceptionExtractor, cache: FeatureCache) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a folder's Inception features, or those stored in an ``.npz`` file; EvalError for a
    folder of fewer than 2 images (a covariance needs 2)."""
    if path.suffix == ".npz":
        return read_stats(path)
    return statistics(path_features(path, extractor, cache), f"{path}: FID statistics")


def fid_of_paths(first: Path, second: Path, extractor: InceptionExtractor, cache: FeatureCache) -> float:
    """FID of two folders or ``.npz`` files; between two folders from the features themselves
    (``stats.frechet_distance_of_features``: exact below ``dims`` images, where pytorch-fid is off by ~1e-5)."""
    if first.suffix != ".npz" and second.suffix != ".npz":
        x, y = path_features(first, extractor, cache), path_features(second, extractor, cache)
        for path, f in ((first, x), (second, y)):
            check_sample_size(len(f), f"{path}: FID")
        return frechet_distance_of_features(x, y)
    return frechet_distance(*path_statistics(first, extractor, cache), *path_statistics(second, extractor, cache))
