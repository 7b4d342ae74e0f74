"""Metric arithmetic in float64: Fréchet distance, KID, k-NN manifolds (precision / recall / density / coverage),
bootstrap and Wilson intervals.

Distribution metrics work on a ``GramPair`` (the inner products within and between the two feature sets), so a
bootstrap replicate only indexes precomputed matrices: the Fréchet distance of a resample needs the nuclear norm of
its double-centred cross Gram matrix C = A B^T (centred feature matrices A, B), since the non-zero eigenvalues of
S1 S2 are the squared singular values of C / sqrt((n-1)(m-1)); they come from the smaller of C^T C and C C^T.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from evalkit.errors import EvalError

Z95 = 1.959963984540054


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64), as pytorch-fid computes them."""
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1-mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2), with tr((S1 S2)^1/2) = tr((R S2 R)^1/2), R = S1^1/2.

    Symmetric eigendecompositions with negative eigenvalues clipped keep it finite for singular covariances.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise EvalError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    values, vectors = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root @ sigma2 @ root
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_covmean)


def write_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray) -> Path:
    """pytorch-fid's statistics file: ``np.savez_compressed(path, mu=..., sigma=...)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, mu=mu, sigma=sigma)
    return path


def read_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path) as data:
            return data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise EvalError(f"{path}: not a pytorch-fid statistics file with 'mu' and 'sigma' ({exc})") from None


@dataclass(frozen=True)
class GramPair:
    """Inner products of generated features x (n, d) and reference features y (m, d), float64."""

    xx: np.ndarray
    yy: np.ndarray
    xy: np.ndarray
    dim: int

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> GramPair:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
            raise EvalError(f"feature sets do not match: {x.shape} vs {y.shape}")
        return cls(x @ x.T, y @ y.T, x @ y.T, x.shape[1])

    @property
    def sizes(self) -> tuple[int, int]:
        return self.xx.shape[0], self.yy.shape[0]

    def squared_distances(self) -> np.ndarray:
        """(n, m) squared Euclidean distances between generated and reference features."""
        return np.clip(np.diag(self.xx)[:, None] + np.diag(self.yy)[None, :] - 2 * self.xy, 0, None)


def _double_centre(k: np.ndarray) -> np.ndarray:
    return k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()


def frechet_from_gram(g: GramPair, i: np.ndarray | None = None, j: np.ndarray | None = None) -> float:
    """Fréchet distance of generated rows ``i`` and reference rows ``j`` (default: all), equal to
    ``frechet_distance(*statistics(x[i]), *statistics(y[j]))``."""
    i = np.arange(g.sizes[0]) if i is None else i
    j = np.arange(g.sizes[1]) if j is None else j
    n, m = len(i), len(j)
    if n < 2 or m < 2:
        raise EvalError(f"a Fréchet distance needs at least 2 samples on each side, got {n} and {m}")
    kxx, kyy, kxy = g.xx[np.ix_(i, i)], g.yy[np.ix_(j, j)], g.xy[np.ix_(i, j)]
    mean_gap = kxx.mean() + kyy.mean() - 2 * kxy.mean()
    trace_x = np.trace(_double_centre(kxx)) / (n - 1)
    trace_y = np.trace(_double_centre(kyy)) / (m - 1)
    cross = _double_centre(kxy)
    small = cross.T @ cross if n >= m else cross @ cross.T  # its eigenvalues: the squared singular values of cross
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(small), 0, None)).sum() / math.sqrt((n - 1) * (m - 1))
    return float(mean_gap + trace_x + trace_y - 2 * trace_covmean)


def _polynomial_kernel(gram: np.ndarray, dim: int) -> np.ndarray:
    return (gram / dim + 1.0) ** 3


def _unbiased_mmd2(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    n, m = kxx.shape[0], kyy.shape[0]
    within_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within_x + within_y - 2 * kxy.mean())


def kid_from_gram(g: GramPair, subset_size: int, subsets: int, rng: np.random.Generator,
                  i: np.ndarray | None = None, j: np.ndarray | None = None) -> float:
    """Kernel Inception Distance: unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, averaged over ``subsets`` random
    subsets of ``subset_size`` per side (one pass over the full sets when both fit in a subset)."""
    i = np.arange(g.sizes[0]) if i is None else i
    j = np.arange(g.sizes[1]) if j is None else j
    size = min(subset_size, len(i), len(j))
    if size < 2:
        raise EvalError(f"KID needs at least 2 samples on each side, got {len(i)} and {len(j)}")
    draws = [(i, j)] if len(i) <= subset_size and len(j) <= subset_size else [
        (rng.choice(i, size, replace=False), rng.choice(j, size, replace=False)) for _ in range(subsets)
    ]
    values = [
        _unbiased_mmd2(_polynomial_kernel(g.xx[np.ix_(a, a)], g.dim), _polynomial_kernel(g.yy[np.ix_(b, b)], g.dim),
                       _polynomial_kernel(g.xy[np.ix_(a, b)], g.dim))
        for a, b in draws
    ]
    return float(np.mean(values))


def kth_neighbour_radii(squared: np.ndarray, k: int) -> np.ndarray:
    """Distance of each point to its k-th nearest other point, from a square matrix of squared distances."""
    if squared.shape[0] <= k:
        raise EvalError(f"k-NN manifolds with k={k} need more than {k} samples, got {squared.shape[0]}")
    return np.sqrt(np.partition(squared, k, axis=1)[:, k])


@dataclass(frozen=True)
class Manifolds:
    """Per-sample outcomes of the k-NN manifold metrics of generated rows x (n) and reference rows y (m).

    ``precision`` (n,) bool: x_i inside some reference ball, d(x_i, y_j) <= r_k(y_j) (Kynkäänniemi et al. 2019, eq. 1);
    ``density`` (n,) float: (1/k) #{j : d(x_i, y_j) <= r_k(y_j)} (Naeem et al. 2020, eq. 3);
    ``recall`` (m,) bool: y_j inside some generated ball, d(y_j, x_i) <= r_k(x_i) (Kynkäänniemi, eq. 2);
    ``coverage`` (m,) bool: the nearest generated sample inside y_j's own ball (Naeem, eq. 4).
    r_k is the distance to the k-th nearest other sample of the same set. The means of the four arrays are the four
    metrics; a sample on a ball's boundary counts as inside (torch-fidelity's ``<=``; the ``prdc`` package uses ``<``,
    which differs only on ties).
    """

    precision: np.ndarray
    density: np.ndarray
    recall: np.ndarray
    coverage: np.ndarray
    k: int


def knn_manifolds(g: GramPair, k: int) -> Manifolds:
    """Precision, recall, density and coverage per sample, from the Gram matrices of x (n, d) and y (m, d); needs
    more than k samples on each side (EvalError)."""
    cross = np.sqrt(g.squared_distances())
    own_x = np.clip(np.diag(g.xx)[:, None] + np.diag(g.xx)[None, :] - 2 * g.xx, 0, None)
    own_y = np.clip(np.diag(g.yy)[:, None] + np.diag(g.yy)[None, :] - 2 * g.yy, 0, None)
    radii_x, radii_y = kth_neighbour_radii(own_x, k), kth_neighbour_radii(own_y, k)
    inside_real = cross <= radii_y[None, :]
    return Manifolds(
        precision=inside_real.any(axis=1),
        density=inside_real.sum(axis=1) / k,
        recall=(cross <= radii_x[:, None]).any(axis=0),
        coverage=cross.min(axis=0) <= radii_y,
        k=k,
    )


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if n == 0:
        raise EvalError("a proportion needs at least one sample")
    p = successes / n
    denominator = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def seeded_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator that depends on the run's seed and on the names (metric, split) only."""
    return np.random.default_rng([seed, *(zlib.crc32(name.encode()) for name in names)])


def bootstrap_interval(statistic: Callable[..., float], sizes: Sequence[int], replicates: int,
                       rng: np.random.Generator, estimate: float | None = None) -> tuple[float, float]:
    """95 % percentile interval of ``statistic(*indices)`` over resamples with replacement, one index array per
    sample (clips are resampled independently on each side).

    With ``estimate`` (the statistic on the full samples) the interval is bias-corrected: shifted by the bootstrap's
    bias estimate, mean(replicates) - estimate, and clipped at 0. Distances such as the Fréchet distance need this:
    a resample duplicates points, which inflates the distance, so the plain percentile interval can lie wholly
    above the estimate."""
    if replicates < 2:
        raise EvalError(f"the bootstrap needs at least 2 replicates, got {replicates}")
    # many small matrix products: one BLAS thread is several times faster than threads contending for busy cores
    with threadpool_limits(limits=1, user_api="blas"):
        values = [statistic(*(rng.integers(0, n, n) for n in sizes)) for _ in range(replicates)]
    low, high = np.percentile(values, [2.5, 97.5])
    if estimate is not None:
        bias = float(np.mean(values)) - estimate
        low, high = max(0.0, low - bias), max(0.0, high - bias)
    return float(low), float(high)


def figure(value: float, interval: tuple[float, float], n: int | dict, chance: float | None, method: str) -> dict:
    """One reported number: value, 95 % interval, sample size, chance level and how the interval was obtained."""
    return {"value": float(value), "ci95": [float(interval[0]), float(interval[1])], "n": n,
            "chance": None if chance is None else float(chance), "ci_method": method}


def proportion_figure(flags: np.ndarray, chance: float | None) -> dict:
    flags = np.asarray(flags, dtype=bool)
    return figure(flags.mean(), wilson_interval(int(flags.sum()), flags.size), int(flags.size), chance, "wilson")


def mean_figure(values: np.ndarray, chance: float | None, replicates: int, rng: np.random.Generator) -> dict:
    """The mean of per-clip values with a percentile bootstrap interval over clips."""
    values = np.asarray(values, np.float64)
    interval = bootstrap_interval(lambda i: values[i].mean(), [len(values)], replicates, rng)
    return figure(values.mean(), interval, len(values), chance, "bootstrap")
