"""Metric arithmetic in float64: Fréchet distance, KID, k-NN manifolds (precision / recall / density / coverage),
bootstrap and Wilson intervals.

Distribution metrics work on a ``GramPair`` (the inner products within and between the two feature sets), so a
bootstrap replicate only indexes precomputed matrices: the Fréchet distance of a resample needs the nuclear norm of
its double-centred cross Gram matrix C = A B^T (centred feature matrices A, B), since the non-zero eigenvalues of
S1 S2 are the squared singular values of C / sqrt((n-1)(m-1)); they come from the smaller of C^T C and C C^T.
With fewer samples than dimensions that form is also the exact Fréchet distance (the covariances are singular there,
and eigen-decompositions of d x d matrices carry their rounding into every null dimension).

Intervals resample whole clusters (``Clusters``: the manifest's ``group``, else the real face), because clips that
share a recording or a face are not independent: a vectorised cluster bootstrap for means and proportions (Wilson's
interval where every row is its own cluster), a cluster bootstrap re-centred on the estimate for distances, and
half-sampling of both sets for precision / recall. SciPy's ``bootstrap`` has no clusters, hence our own.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from evalkit.errors import EvalError
from evalkit.threads import limited_pools

Z95 = 1.959963984540054


def check_sample_size(n: int, what: str, minimum: int = 2) -> None:
    """EvalError unless ``n >= minimum``: a mean and covariance need 2 samples, a k-NN radius k + 1."""
    if n < minimum:
        raise EvalError(f"{what} needs at least {minimum} samples, got {n}")


def statistics(features: np.ndarray, what: str = "a covariance") -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d), float64, as pytorch-fid computes them (``np.mean``, ``np.cov(rowvar=False)``).

    Raises EvalError for fewer than 2 rows (the covariance of one sample is undefined: NumPy returns NaN) or
    non-finite features."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise EvalError(f"{what}: features must be a 2-d array (samples, dims), got shape {x.shape}")
    check_sample_size(len(x), what)
    if not np.all(np.isfinite(x)):
        raise EvalError(f"{what}: features contain NaN or infinite values")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt_eigenvalues(values: np.ndarray) -> np.ndarray:
    """Square roots of a symmetric PSD matrix's eigenvalues, with those indistinguishable from 0 in float64
    (|v| <= d * eps * max|v|, the rounding of the decomposition) set to exactly 0: a rank-deficient covariance's
    null space would otherwise add sqrt(rounding) ~ 1e-8 per dimension (FID(A, A) = -0.02 instead of 0)."""
    tolerance = len(values) * np.finfo(np.float64).eps * max(float(np.max(np.abs(values), initial=0.0)), 1e-300)
    return np.sqrt(np.where(values > tolerance, values, 0.0))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance of two Gaussians (Dowson & Landau 1982; FID, Heusel et al. 2017, eq. 6), float, >= 0:
    |mu1-mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2), with tr((S1 S2)^1/2) = tr((R S2 R)^1/2), R = S1^1/2.

    ``mu``: (d,), ``sigma``: (d, d). Symmetric eigendecompositions (eigenvalues at rounding level treated as 0)
    keep it finite and exact for singular covariances; what rounding leaves below 0 is clamped to 0 (a distance).
    With the features at hand and fewer samples than dimensions, ``frechet_distance_of_features`` is exact.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise EvalError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    if not all(np.all(np.isfinite(a)) for a in (mu1, mu2, sigma1, sigma2)):
        raise EvalError("statistics contain NaN or infinite values (a covariance of fewer than 2 samples?)")
    values, vectors = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root = (vectors * _psd_sqrt_eigenvalues(values)) @ vectors.T
    middle = root @ sigma2 @ root
    trace_covmean = _psd_sqrt_eigenvalues(np.linalg.eigvalsh((middle + middle.T) / 2)).sum()
    diff = mu1 - mu2
    return max(0.0, float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_covmean))


def frechet_distance_of_features(x: np.ndarray, y: np.ndarray) -> float:
    """The Fréchet distance of two feature sets (n, d) and (m, d), as exactly as float64 allows.

    With fewer samples than dimensions on a side (e.g. FID below 2,048 images) the covariances are singular and
    every statistics-based routine (pytorch-fid's included) carries ~1e-5 relative error; the Gram form
    (``frechet_from_gram``) works in the samples' span and is exact to ~1e-15. With more samples, the statistics
    form (d x d) is as exact and cheaper."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if min(len(x), len(y)) < x.shape[-1]:
        for side, what in ((x, "generated"), (y, "reference")):
            statistics(side, f"a Fréchet distance ({what} side)")  # the same checks, and the same errors
        return frechet_from_gram(GramPair.of(x, y))
    return frechet_distance(*statistics(x, "a Fréchet distance (first set)"),
                            *statistics(y, "a Fréchet distance (second set)"))


def write_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray) -> Path:
    """pytorch-fid's statistics file: ``np.savez_compressed(path, mu=..., sigma=...)`` (float64); refuses
    non-finite or mismatched statistics rather than writing a file that every FID tool would choke on."""
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if mu.ndim != 1 or sigma.shape != mu.shape * 2:
        raise EvalError(f"statistics do not match: mu {mu.shape}, sigma {sigma.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise EvalError("statistics contain NaN or infinite values; not writing them")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, mu=mu, sigma=sigma)
    return path


def read_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``mu`` (d,) and ``sigma`` (d, d) of a pytorch-fid ``.npz``; EvalError for any other file, mismatched shapes
    or non-finite values (e.g. statistics of a single image written by another tool)."""
    path = Path(path)
    try:
        with np.load(path) as data:
            mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise EvalError(f"{path}: not a pytorch-fid statistics file with 'mu' and 'sigma' ({exc})") from None
    if mu.ndim != 1 or sigma.shape != mu.shape * 2:
        raise EvalError(f"{path}: 'mu' {mu.shape} and 'sigma' {sigma.shape} do not match")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise EvalError(f"{path}: statistics contain NaN or infinite values (computed from fewer than 2 images?)")
    return mu, sigma


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
    trace_covmean = _psd_sqrt_eigenvalues(np.linalg.eigvalsh(small)).sum() / math.sqrt((n - 1) * (m - 1))
    return max(0.0, float(mean_gap + trace_x + trace_y - 2 * trace_covmean))


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


@dataclass(frozen=True)
class ManifoldDistances:
    """The distances the k-NN manifolds compare, computed once from a ``GramPair`` of x (n, d) and y (m, d):
    squared distances within x (n, n) and within y (m, m) and distances between them (n, m), float64. Half-samples
    index them (``manifolds(k, i, j)``) instead of recomputing them, with bit-identical values (every entry is the
    same elementwise expression of the same Gram entries).

    Cost: O((n + m)^2) memory and time, super-linear by definition (every k-NN radius and ball test looks at every
    pair); ``metrics.distribution.GRAM_CAP`` rows a side bound it. A neighbour-search library (a k-d tree, or
    scikit-learn's brute-force search) would only recompute these distances in another rounding: a sample on a ball's
    boundary (a set compared with itself) must compare the very numbers its radius came from."""

    own_x: np.ndarray
    own_y: np.ndarray
    cross: np.ndarray

    @classmethod
    def of(cls, g: GramPair) -> ManifoldDistances:
        return cls(np.clip(np.diag(g.xx)[:, None] + np.diag(g.xx)[None, :] - 2 * g.xx, 0, None),
                   np.clip(np.diag(g.yy)[:, None] + np.diag(g.yy)[None, :] - 2 * g.yy, 0, None),
                   np.sqrt(g.squared_distances()))

    def manifolds(self, k: int, i: np.ndarray | None = None, j: np.ndarray | None = None) -> Manifolds:
        """The ``Manifolds`` of x rows ``i`` against y rows ``j`` (default: all): k-th neighbour radii by
        ``np.partition`` (O(n^2) a side), then every ball test of the (len(i), len(j)) cross distances. EvalError
        with k or fewer rows on a side."""
        i = np.arange(len(self.own_x)) if i is None else i
        j = np.arange(len(self.own_y)) if j is None else j
        own_x, own_y, cross = self.own_x[np.ix_(i, i)], self.own_y[np.ix_(j, j)], self.cross[np.ix_(i, j)]
        radii_x, radii_y = kth_neighbour_radii(own_x, k), kth_neighbour_radii(own_y, k)
        inside_real: np.ndarray = cross <= radii_y[None, :]
        inside_generated: np.ndarray = cross <= radii_x[:, None]
        return Manifolds(
            precision=np.any(inside_real, axis=1),
            density=inside_real.sum(axis=1) / k,
            recall=np.any(inside_generated, axis=0),
            coverage=cross.min(axis=0) <= radii_y,
            k=k,
        )


def knn_manifolds(g: GramPair, k: int) -> Manifolds:
    """Precision, recall, density and coverage per sample, from the Gram matrices of x (n, d) and y (m, d); needs
    more than k samples on each side (EvalError). O((n + m)^2) (``ManifoldDistances``)."""
    return ManifoldDistances.of(g).manifolds(k)


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


@dataclass(frozen=True)
class Clusters:
    """The cluster of every row of a sample, for intervals that resample whole clusters (a cluster bootstrap,
    Davison & Hinkley 1997, §3.8): clips that share a recording or a face are not independent.

    ``codes`` (n,) int64 index clusters 0..count-1; two samples that share clusters (a split's generated clips and
    its real faces) use one code space (``Clusters.joint``), so a resample draws a cluster with its rows on both
    sides. ``by`` says what a cluster is ("group", "face", "group, else face", or "none": each row its own).
    """

    codes: np.ndarray
    count: int
    by: str

    @classmethod
    def joint(cls, *labels: Sequence[object], by: str) -> tuple[Clusters, ...]:
        """One ``Clusters`` per label sequence, over the clusters of all of them."""
        names = {name: k for k, name in enumerate(dict.fromkeys(x for seq in labels for x in seq))}
        return tuple(cls(np.array([names[x] for x in seq], dtype=np.int64), len(names), by) for seq in labels)

    @classmethod
    def singletons(cls, n: int) -> Clusters:
        return cls(np.arange(n, dtype=np.int64), n, "none")

    def subset(self, mask: np.ndarray) -> Clusters:
        """The clusters of the rows selected by ``mask``."""
        codes = self.codes[np.asarray(mask)]
        return Clusters(codes, self.count, self.by)

    def resamplable(self) -> tuple[Clusters, str]:
        """Itself, or, with fewer than 2 clusters (nothing to resample between), each row as its own cluster and a
        note for the method's name saying so."""
        if len(np.unique(self.codes)) >= 2 or len(self.codes) < 2:
            return self, ""
        return Clusters.singletons(len(self.codes)), " (a single cluster: rows treated as independent)"

    @property
    def independent(self) -> bool:
        """Every row is a cluster of its own."""
        return len(np.unique(self.codes)) == len(self.codes)

    def describe(self) -> dict:
        return {"by": self.by, "clusters": int(len(np.unique(self.codes)))}

    @cached_property
    def _layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows sorted by cluster, each cluster's size and its first position in that order."""
        sizes = np.bincount(self.codes, minlength=self.count)
        return np.argsort(self.codes, kind="stable"), sizes, np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def rows(self, chosen: np.ndarray) -> np.ndarray:
        """Row indices of the chosen clusters (with repeats), in the order drawn."""
        order, sizes, starts = self._layout
        lengths = sizes[chosen]
        offsets = np.repeat(starts[chosen] - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        return order[offsets]


DRAW_CHUNK = 10_000_000  # cluster codes drawn (and summed) at a time: bounds the memory of a vectorised bootstrap


def cluster_draws(clusters: Sequence[Clusters], replicates: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Blocks of rows (replicate, cluster) of cluster codes drawn with replacement from the clusters present in any
    of ``clusters``, as many as there are: the clusters of each bootstrap resample, ``replicates`` rows in all."""
    if replicates < 2:
        raise EvalError(f"the bootstrap needs at least 2 replicates, got {replicates}")
    present = np.unique(np.concatenate([c.codes for c in clusters]))
    step = max(1, DRAW_CHUNK // len(present))
    for start in range(0, replicates, step):
        yield present[rng.integers(0, len(present), (min(step, replicates - start), len(present)))]


def percentile_interval(replicates: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(replicates, [2.5, 97.5])
    return float(low), float(high)


def recentred_interval(estimate: float, replicates: np.ndarray) -> tuple[float, float]:
    """The bootstrap percentile interval re-centred on the estimate: [q2.5 - b, q97.5 - b] with the bootstrap bias
    b = mean(replicates) - estimate, truncated at 0. Neither BCa nor the basic interval: a distance resample that
    duplicates points is inflated (the plain percentile interval can lie wholly above the estimate), and so far that
    BCa's bias constant is infinite and the basic interval (2 estimate - q) lands below it; re-centring keeps the
    replicates' spread and puts it around the estimate (bias correction by subtraction, Efron & Tibshirani 1993,
    §10.6, applied to the quantiles)."""
    bias = float(np.mean(replicates)) - estimate
    low, high = percentile_interval(replicates)
    return max(0.0, low - bias), max(0.0, high - bias)


def cluster_mean_replicates(values: np.ndarray, clusters: Clusters, replicates: int,
                            rng: np.random.Generator) -> np.ndarray:
    """Means of ``values`` (n,) over cluster-bootstrap resamples, vectorised: each replicate is the sum of its drawn
    clusters' sums over the sum of their sizes."""
    values = np.asarray(values, np.float64)
    sums = np.bincount(clusters.codes, weights=values, minlength=clusters.count)
    sizes = np.bincount(clusters.codes, minlength=clusters.count).astype(np.float64)
    return np.concatenate([sums[d].sum(axis=1) / sizes[d].sum(axis=1)
                           for d in cluster_draws([clusters], replicates, rng)])


def cluster_resamples(clusters: Sequence[Clusters], replicates: int, rng: np.random.Generator
                      ) -> Iterator[list[np.ndarray]]:
    """The rows of each cluster-bootstrap resample (one row index array per sample): clusters that share one code
    space (``Clusters.joint``) are drawn once for all samples, so a cluster brings its rows on every side; samples
    without clusters (``by == "none"``) are resampled independently, row by row."""
    if all(c.by == "none" for c in clusters):  # no clusters: each sample resampled on its own, row by row
        if replicates < 2:
            raise EvalError(f"the bootstrap needs at least 2 replicates, got {replicates}")
        sizes = [len(c.codes) for c in clusters]
        return ([rng.integers(0, n, n) for n in sizes] for _ in range(replicates))
    return ([c.rows(d) for c in clusters] for block in cluster_draws(clusters, replicates, rng) for d in block)


WEIGHT_BLOCK_BYTES = 64 * 2**20  # float64 working memory of one block of vectorised replicates


def _weights(rows: np.ndarray, n: int) -> np.ndarray:
    """How often each of n rows occurs in a resample (int32 (n,); stacked into float64 a block at a time)."""
    return np.bincount(rows, minlength=n).astype(np.int32)


def _weighted_blocks(weights: Iterable[tuple[np.ndarray, ...]], per_replicate: int
                     ) -> Iterator[tuple[slice, list[np.ndarray]]]:
    """Blocks of stacked resample weights: the block's slice of the replicates, and a list of one float64 (B, n_s)
    array per sample (e.g. generated, reference); ``WEIGHT_BLOCK_BYTES`` of ``per_replicate`` float64 working values
    at a time. ``weights`` is consumed a block at a time, so a generator of resamples is never held whole (memory
    bounded however many replicates, subsets and rows)."""
    step = max(1, WEIGHT_BLOCK_BYTES // (8 * max(1, per_replicate)))
    resamples = iter(weights)
    start = 0
    while block := list(itertools.islice(resamples, step)):
        yield (slice(start, start + len(block)),
               [np.stack([w[side] for w in block]).astype(np.float64) for side in range(len(block[0]))])
        start += len(block)


def resample_weight_blocks(clusters: Sequence[Clusters], replicates: int, rng: np.random.Generator,
                           per_replicate: int) -> Iterator[tuple[slice, list[np.ndarray]]]:
    """The cluster-bootstrap resamples of ``cluster_resamples`` (the same draws, in the same order) as row
    multiplicities: blocks (the slice of the replicates, and a list of one float64 (B, n_s) array per sample: how often
    each row occurs in each resample), ``WEIGHT_BLOCK_BYTES`` of ``per_replicate`` float64 working values at a time,
    drawn a block at a time. A statistic that is a weighted sum over the distinct rows computes every replicate of a
    block at once from them (the same values as on the repeated rows, to float64 rounding)."""
    sizes = [len(c.codes) for c in clusters]
    yield from _weighted_blocks((tuple(_weights(rows, n) for rows, n in zip(resample, sizes, strict=True))
                                 for resample in cluster_resamples(clusters, replicates, rng)), per_replicate)


def _quadratic(weights: np.ndarray, matrix: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """w_b^T M v_b for each row b of ``weights`` (v = ``other``, default w)."""
    return np.einsum("bi,bi->b", weights @ matrix, weights if other is None else other)


def cluster_moments(a: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The second-moment matrices A_c^T A_c of the rows of a (n, p) in each cluster (``codes`` (n,)), flattened
    (C, p * p), and each cluster's first row (C,): resamples of whole clusters weight every row of a cluster alike, so
    A^T diag(w) A = sum_c w_c A_c^T A_c (``weighted_moments``). None when they would take more than a quarter of
    ``WEIGHT_BLOCK_BYTES`` (many small clusters: the rows themselves are then as cheap)."""
    present, first = np.unique(codes, return_index=True)
    p = a.shape[1]
    if 4 * 8 * len(present) * p * p > WEIGHT_BLOCK_BYTES:
        return None
    return np.stack([a[codes == c].T @ a[codes == c] for c in present]).reshape(len(present), p * p), first


def weighted_moments(a: np.ndarray, weights: np.ndarray, moments: tuple[np.ndarray, np.ndarray] | None
                     ) -> np.ndarray:
    """A^T diag(w_b) A (B, p, p) for each row w_b of ``weights`` (B, n): from the clusters' ``cluster_moments`` when
    given (weights constant within a cluster: its first row's), else from the rows ((B, p, n) working memory)."""
    if moments is None:
        return (a.T[None] * weights[:, None, :]) @ a
    matrices, first = moments
    return (weights[:, first] @ matrices).reshape(len(weights), a.shape[1], a.shape[1])


def _centred_cross_spectrum_matrix(k: np.ndarray, wx: np.ndarray, wy: np.ndarray, weighted: np.ndarray
                                   ) -> np.ndarray:
    """The matrix diag(sqrt(w_y)) K_c^T diag(w_x) K_c diag(sqrt(w_y)) of a resample with row multiplicities w_x (n,),
    w_y (m,) of cross Gram matrix K (n, m), K_c = K centred with the weighted means, restricted to the columns the
    resample holds (w_y > 0; the others are zero): its eigenvalues are the non-zero squared singular values of the
    resample's centred cross Gram matrix (rows repeated). Expanded so that no (n, m) centred matrix is formed, from
    ``weighted`` = K^T D K (D = diag(w_x)): K_c^T D K_c = K^T D K - v 1^T - 1 v^T + (u^T D u) 1 1^T - n_b c c^T,
    u = K w_y / m_b - s, c = K^T w_x / n_b, s = w_x^T K w_y / (n_b m_b), v = K^T D u."""
    nb, mb = wx.sum(), wy.sum()
    c = k.T @ wx / nb
    s = c @ wy / mb
    u = k @ wy / mb - s
    v = k.T @ (wx * u)
    held = wy > 0
    c, v = c[held], v[held]
    middle = weighted[np.ix_(held, held)] - v[:, None] - v[None, :] + u @ (wx * u) - nb * np.outer(c, c)
    root = np.sqrt(wy[held])
    return root[:, None] * middle * root[None, :]


def frechet_replicates(g: GramPair, clusters: Sequence[Clusters], replicates: int,
                       rng: np.random.Generator) -> np.ndarray:
    """``frechet_from_gram(g, i, j)`` over the cluster-bootstrap resamples (i, j) of ``cluster_resamples``, computed
    from each resample's row multiplicities w instead of its repeated rows: every term of the Gram form is a
    weighted sum over the distinct rows (``_centred_cross_spectrum_matrix`` for the cross term, on the smaller side,
    its K^T D K from the clusters' moment matrices: ``cluster_moments``). The same draws give the same values as the
    loop, to float64 rounding (tests/evalkit/test_stats.py). Cost per replicate: O(n m) products and one
    eigenproblem of the smaller side's distinct rows (O(min(n, m)^3)); GRAM_CAP rows a side bound it."""
    n, m = g.sizes

    def weights() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i, j in cluster_resamples(clusters, replicates, rng):
            if min(len(i), len(j)) < 2:
                raise EvalError("a Fréchet distance needs at least 2 samples on each side of every resample")
            yield _weights(i, n), _weights(j, m)

    diag_x, diag_y = np.diag(g.xx), np.diag(g.yy)
    # the cross term on the smaller side: K (long, short), weighted over the long side's rows
    k, long_side = (g.xy, 0) if n >= m else (g.xy.T, 1)
    moments = cluster_moments(k, clusters[long_side].codes)
    values = np.empty(replicates)
    # small products and eigenproblems: one BLAS thread beats threads contending for busy cores (measured: 5x)
    with limited_pools(1, "blas"):
        for rows, (wx, wy) in _weighted_blocks(weights(), min(n, m) * (n + m)):
            nb, mb = wx.sum(axis=1), wy.sum(axis=1)
            within_x, within_y = _quadratic(wx, g.xx), _quadratic(wy, g.yy)
            mean_gap = within_x / nb**2 + within_y / mb**2 - 2 * _quadratic(wx, g.xy, wy) / (nb * mb)
            trace_x = (wx @ diag_x - within_x / nb) / (nb - 1)
            trace_y = (wy @ diag_y - within_y / mb) / (mb - 1)
            w_long, w_short = (wx, wy) if long_side == 0 else (wy, wx)
            weighted = weighted_moments(k, w_long, moments)
            roots = np.array([_psd_sqrt_eigenvalues(np.linalg.eigvalsh(
                _centred_cross_spectrum_matrix(k, a, b, kdk))).sum()
                for a, b, kdk in zip(w_long, w_short, weighted, strict=True)])
            trace_covmean = roots / np.sqrt((nb - 1) * (mb - 1))
            values[rows] = np.maximum(0.0, mean_gap + trace_x + trace_y - 2 * trace_covmean)
    return values


def kid_replicates(g: GramPair, subset_size: int, subsets: int, subset_rng: np.random.Generator,
                   clusters: Sequence[Clusters], replicates: int, rng: np.random.Generator) -> np.ndarray:
    """``kid_from_gram(g, subset_size, subsets, subset_rng, i, j)`` over the cluster-bootstrap resamples (i, j) of
    ``cluster_resamples``, vectorised: each resample's subsets are drawn from ``subset_rng`` exactly as
    ``kid_from_gram`` draws them (one pass over the whole resample when both sides fit in a subset), and each subset's
    unbiased MMD^2 comes from its row multiplicities w: the sum over pairs of distinct positions is
    w^T K w - w . diag(K). Same values as the loop to float64 rounding (tests/evalkit/test_speed.py)."""
    n, m = g.sizes
    owner: list[int] = []  # the resample of each subset draw

    def draws() -> Iterator[tuple[np.ndarray, np.ndarray]]:  # drawn a block at a time by _weighted_blocks
        for k, (i, j) in enumerate(cluster_resamples(clusters, replicates, rng)):
            size = min(subset_size, len(i), len(j))
            if size < 2:
                raise EvalError(f"KID needs at least 2 samples on each side, got {len(i)} and {len(j)}")
            pairs = [(i, j)] if len(i) <= subset_size and len(j) <= subset_size else [
                (subset_rng.choice(i, size, replace=False), subset_rng.choice(j, size, replace=False))
                for _ in range(subsets)]
            for a, b in pairs:
                owner.append(k)
                yield _weights(a, n), _weights(b, m)

    kxx, kyy, kxy = (_polynomial_kernel(k, g.dim) for k in (g.xx, g.yy, g.xy))
    diag_x, diag_y = np.diag(kxx), np.diag(kyy)
    values: list[np.ndarray] = []
    with limited_pools(1, "blas"):
        for _, (wx, wy) in _weighted_blocks(draws(), n + m):
            nb, mb = wx.sum(axis=1), wy.sum(axis=1)
            within_x = (_quadratic(wx, kxx) - wx @ diag_x) / (nb * (nb - 1))
            within_y = (_quadratic(wy, kyy) - wy @ diag_y) / (mb * (mb - 1))
            values.append(within_x + within_y - 2 * _quadratic(wx, kxy, wy) / (nb * mb))
    owners = np.array(owner)
    return np.bincount(owners, weights=np.concatenate(values)) / np.bincount(owners)


HALF_SAMPLING = ("half-sampling of both sets (half of the clusters of each, without replacement), percentile "
                 "interval re-centred on the estimate")


def half_sample_replicates(statistic: Callable[..., np.ndarray], clusters: Sequence[Clusters], replicates: int,
                           rng: np.random.Generator) -> np.ndarray:
    """``statistic(*rows)`` (an array) on ``replicates`` half-samples: half of the clusters, drawn without
    replacement, once for samples that share clusters (``Clusters.joint``), else separately for each sample.

    Half-sampling (the delete-n/2 jackknife; subsampling with b = n/2, Politis, Romano & Wolf 1999) has, for a mean,
    exactly the variance of the full-sample estimate (finite-population correction 1 - b/n = 1/2), and it never
    duplicates a point: a bootstrap with replacement does, which shrinks k-NN radii. Re-centred on the estimate, its
    percentiles give an interval for statistics of both samples at once (precision / recall), whose coverage the
    tests check by simulation."""
    if replicates < 2:
        raise EvalError(f"half-sampling needs at least 2 replicates, got {replicates}")
    presents = [np.unique(c.codes) for c in clusters]
    shared = len(np.unique(np.concatenate(presents))) < sum(map(len, presents)) and \
        not all(c.by == "none" for c in clusters)
    values = []
    for _ in range(replicates):
        if shared:
            union = np.unique(np.concatenate(presents))
            chosen = rng.choice(union, len(union) // 2, replace=False)
            rows = [c.rows(chosen[np.isin(chosen, own)]) for c, own in zip(clusters, presents, strict=True)]
        else:
            rows = [c.rows(rng.choice(own, len(own) // 2, replace=False))
                    for c, own in zip(clusters, presents, strict=True)]
        values.append(statistic(*rows))
    return np.array(values)


def figure(value: float, interval: tuple[float, float], n: int | dict, chance: float | None, method: str,
           clusters: dict | None = None, proportion: bool = False) -> dict:
    """One reported number: value, 95 % interval, sample size, chance level, how the interval was obtained and,
    for a cluster bootstrap, what was resampled (``clusters``: by, count)."""
    out = {"value": float(value), "ci95": [float(interval[0]), float(interval[1])], "n": n,
           "chance": None if chance is None else float(chance), "ci_method": method}
    if clusters is not None:
        out["clusters"] = clusters
    if proportion:
        out["proportion"] = True
    return out


WILSON = "wilson"
CLUSTER_PERCENTILE = "cluster bootstrap, percentile"
AT_BOUND = ("Wilson over clusters (every row agrees: each cluster one draw; resampling cannot give an interval at a "
            "bound)")
POISSON_ZERO_UPPER = 3.688879454113936  # exact 95 % upper bound of a Poisson mean after a zero count: -ln(0.025)


def at_bound(flags: np.ndarray) -> bool:
    """Every flag is 0, or every flag is 1: the share sits on a bound of [0, 1]."""
    flags = np.asarray(flags, dtype=bool)
    return bool(flags.size) and bool(flags.all() or not flags.any())


def bound_interval(value: float, clusters: Clusters) -> tuple[float, float]:
    """95 % interval of a share that sits at 0 or 1 (every row agrees), with dependent rows: Wilson's score interval
    (Wilson 1927) with each cluster as one draw, i.e. [0, W(0, C)] or [W(C, C), 1] for C clusters.

    Why: a resampling interval is degenerate or wrong there. A cluster bootstrap of all-equal flags gives [0, 0]; at
    a bound the bootstrap is inconsistent (Andrews 2000, Econometrica 68:399); and a half-sample of a k-NN manifold has
    larger radii, so its replicates leave the bound and re-centring them on the estimate gives a wide one-sided
    interval (precision 0 [0, 0.81]). When every row agrees, every row of a cluster agrees, so a cluster is one
    Bernoulli draw: the clusters count is the sample size that assumes nothing about dependence within them (the
    design effect at its largest, the cluster size; Korn & Graubard 1998, Survey Methodology 24:193)."""
    count = len(np.unique(clusters.codes))
    return wilson_interval(round(value) * count, count)


def proportion_figure(flags: np.ndarray, chance: float | None, clusters: Clusters | None = None,
                      replicates: int = 0, rng: np.random.Generator | None = None, condition: str = "") -> dict:
    """A share of per-row flags with its 95 % interval: Wilson's score interval when the rows are independent
    (no clusters, or one row per cluster); at 0 or 1 with clusters, Wilson over the clusters (``bound_interval``);
    otherwise the percentile interval of a cluster bootstrap (whole clusters resampled, ``replicates`` times with
    ``rng``). ``condition`` is appended to the method's name (e.g. what the
    interval holds fixed)."""
    flags = np.asarray(flags, dtype=bool)
    check_sample_size(flags.size, "a proportion", 1)
    clusters, note = clusters.resamplable() if clusters is not None else (None, "")
    condition = note + condition
    if clusters is None or clusters.independent:
        interval, method, described = wilson_interval(int(flags.sum()), flags.size), WILSON, None
    elif at_bound(flags):
        interval, method, described = bound_interval(flags.mean(), clusters), AT_BOUND, clusters.describe()
    else:
        if rng is None:
            raise EvalError("a cluster bootstrap needs a random generator")
        interval = percentile_interval(cluster_mean_replicates(flags, clusters, replicates, rng))
        method, described = f"{CLUSTER_PERCENTILE} (B={replicates})", clusters.describe()
    return figure(flags.mean(), interval, int(flags.size), chance, method + condition, described, proportion=True)


def mean_figure(values: np.ndarray, chance: float | None, clusters: Clusters, replicates: int,
                rng: np.random.Generator, bounds: tuple[float, float] | None = None) -> dict:
    """A mean of per-row values with the percentile interval of a (cluster) bootstrap. For values bounded in
    ``bounds`` (low, high) that all sit on one bound (a forced-matching probability of 1 for every clip, a mean rank
    of 1), the bootstrap gives a zero-width interval; there the interval is ``bound_interval`` scaled to the bounds:
    a Bernoulli variable at the ends has the largest variance a variable in [low, high] can have for its mean, so the
    binomial bound over the clusters is conservative for the mean."""
    values = np.asarray(values, np.float64)
    check_sample_size(values.size, "a mean", 1)
    if bounds is not None and (np.all(values == bounds[0]) or np.all(values == bounds[1])):
        low, high = bounds
        share = float(values[0] == high)
        unit = bound_interval(share, clusters)
        return figure(values.mean(), (low + (high - low) * unit[0], low + (high - low) * unit[1]), int(values.size),
                      chance, f"{AT_BOUND}, scaled to [{low:g}, {high:g}]", clusters.describe())
    clusters, note = clusters.resamplable()
    interval = percentile_interval(cluster_mean_replicates(values, clusters, replicates, rng))
    method = "bootstrap, percentile" if clusters.independent else CLUSTER_PERCENTILE
    return figure(values.mean(), interval, int(values.size), chance, f"{method} (B={replicates}){note}",
                  clusters.describe())
