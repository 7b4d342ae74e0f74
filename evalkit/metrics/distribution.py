"""Shared computation of the two-sample metrics (Fréchet distance, KID, precision / recall / density / coverage) on
any features.

Generated side: one sample per clip of the split; reference side: the split's distinct real faces. A split too small
for a metric gives a "not applicable" row saying why (a Fréchet distance or KID needs 2 samples per side,
precision / recall k + 1). Intervals resample whole clusters (``MetricContext.split_clusters``: the manifest's
``group``, else the real face), ``--bootstrap`` times, seeded.

Cost bound: the Fréchet distance's interval, KID and the k-NN manifolds work on all pairwise inner products of a
split's rows (``GramPair``: n^2 + m^2 + nm float64, and per-replicate eigen-decompositions or neighbour searches over
them), which grows with the square of the split. Above ``GRAM_CAP`` rows on a side they run on a seeded subsample of
``GRAM_CAP`` rows of that side (the same rows for every extractor and every generator scored on the split, so paired
comparisons stay paired; per-clip values of the rows left out are NaN), and the figure says so (``subsample``). The
Fréchet distance's value itself always uses every row (its statistics are linear in N); its interval from the
subsample is wider than the full sample's would be (conservative). Measured by ``benchmarks/evalkit_scale.py``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from evalkit.errors import NotApplicable
from evalkit.metrics import MetricContext
from evalkit.stats import (
    AT_BOUND,
    HALF_SAMPLING,
    POISSON_ZERO_UPPER,
    Clusters,
    GramPair,
    ManifoldDistances,
    Manifolds,
    bound_interval,
    figure,
    frechet_distance,
    frechet_from_gram,
    frechet_replicates,
    half_sample_replicates,
    kid_from_gram,
    kid_replicates,
    mean_figure,
    proportion_figure,
    recentred_interval,
    statistics,
    write_stats,
)

DISTANCE_INTERVAL = "cluster bootstrap, percentile interval re-centred on the estimate, truncated at 0"
REFERENCE_STATS_DIR = "reference_stats"
GRAM_CAP = 1000  # rows per side of a split for the pairwise (Gram, k-NN) computations: 3 x 8 MB of float64 Gram


@dataclass(frozen=True)
class PairwiseRows:
    """A split's rows for the pairwise computations: generated features ``x`` and real features ``y`` (all rows, or
    ``GRAM_CAP`` of them), their row numbers within the split (``rows_x``, ``rows_y``, sorted), their clusters, and
    ``subsample`` (None, or what was kept of how many, for the record)."""

    x: np.ndarray
    y: np.ndarray
    rows_x: np.ndarray
    rows_y: np.ndarray
    clusters: tuple[Clusters, Clusters]
    subsample: dict | None

    def gram(self) -> GramPair:
        return GramPair.of(self.x, self.y)

    def note(self, cell: dict) -> dict:
        """``cell`` with the subsample noted when there is one."""
        return cell if self.subsample is None else {**cell, "subsample": self.subsample}


def _kept_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= GRAM_CAP else np.sort(rng.choice(n, GRAM_CAP, replace=False))


def pairwise_rows(ctx: MetricContext, extractor: str, key: str, split: str) -> PairwiseRows:
    """The split's rows for the pairwise computations (see the module docstring): every row up to ``GRAM_CAP`` a
    side, else a subsample seeded by the run's seed and the split only."""
    x, y = ctx.split_features(extractor, key, split)
    generated_clusters, real_clusters = ctx.split_clusters(split)
    rng = ctx.rng("pairwise subsample", split)
    rows_x, rows_y = _kept_rows(len(x), rng), _kept_rows(len(y), rng)
    subsample = None if len(rows_x) == len(x) and len(rows_y) == len(y) else {
        "cap": GRAM_CAP, "generated": [len(rows_x), len(x)], "real": [len(rows_y), len(y)],
        "method": "seeded subsample of the rows of each side above the cap (same rows for every generator)"}
    return PairwiseRows(x[rows_x], y[rows_y], rows_x, rows_y,
                        (generated_clusters.subset(rows_x), real_clusters.subset(rows_y)), subsample)


def pairwise_gram(ctx: MetricContext, extractor: str, key: str, split: str) -> GramPair:
    """The ``GramPair`` of ``pairwise_rows``, computed once per run, extractor and split (the Fréchet distance's
    interval, KID and the k-NN manifolds share it)."""
    memo_key = ("gram", extractor, key, split)
    if memo_key not in ctx.memo:
        ctx.memo[memo_key] = pairwise_rows(ctx, extractor, key, split).gram()
    return ctx.memo[memo_key]


def _sample_sizes(x: np.ndarray, y: np.ndarray) -> dict:
    return {"generated": len(x), "real": len(y)}


def _require(x: np.ndarray, y: np.ndarray, minimum: int, what: str) -> None:
    if min(len(x), len(y)) < minimum:
        raise NotApplicable(f"{what} needs at least {minimum} generated clips and {minimum} real faces; this split "
                            f"has {len(x)} and {len(y)}")


def reference_stats(ctx: MetricContext, y: np.ndarray, real: tuple[np.ndarray, np.ndarray]) -> str:
    """The real faces' pytorch-fid ``.npz``, written once into the feature cache (named by the features' SHA-256)
    and reused by every later run on the same faces; its path relative to the cache folder (``settings.cache_dir``)."""
    digest = hashlib.sha256(np.ascontiguousarray(y, dtype=np.float32).tobytes() + str(y.shape).encode()).hexdigest()
    relative = f"{REFERENCE_STATS_DIR}/{digest}.npz"
    path = ctx.options.cache_dir / relative
    if not path.is_file():
        tmp = path.with_name(path.stem + ".tmp.npz")
        write_stats(tmp, *real)
        tmp.replace(path)
    return relative


def frechet_figure(ctx: MetricContext, extractor: str, key: str, split: str, metric: str) -> dict:
    """Fréchet distance of the split's generated vs real features, exact (the Gram form below d samples, where the
    covariances are singular), with the statistics of the real faces kept once in the cache (``reference_stats``)
    and both sides' pytorch-fid ``.npz`` under ``stats/`` with ``--save-stats``."""
    x, y = ctx.split_features(extractor, key, split)
    _require(x, y, 2, "a Fréchet distance")
    if min(len(x), len(y)) < x.shape[1]:
        ctx.warn(f"{metric} on {split}: {min(len(x), len(y))} samples < {x.shape[1]} feature dimensions; the "
                 "covariance is singular and the distance is biased upwards (compare only at equal N)")
    generated, real = statistics(x), statistics(y)
    if ctx.options.save_stats and ctx.run_dir is not None:  # process 0 writes the run folder
        write_stats(ctx.run_dir / "stats" / f"{split}_generated_{metric}.npz", *generated)
        write_stats(ctx.run_dir / "stats" / f"{split}_real_{metric}.npz", *real)
    rows = pairwise_rows(ctx, extractor, key, split)
    gram = pairwise_gram(ctx, extractor, key, split)
    exact = rows.subsample is None and min(len(x), len(y)) < x.shape[1]
    value = frechet_from_gram(gram) if exact else frechet_distance(*generated, *real)
    replicates = frechet_replicates(gram, rows.clusters, ctx.options.bootstrap, ctx.rng(metric, split))
    return rows.note({**figure(value, recentred_interval(value, replicates), _sample_sizes(x, y), None,
                               f"{DISTANCE_INTERVAL} (B={ctx.options.bootstrap})", rows.clusters[0].describe()),
                      "reference_stats": reference_stats(ctx, y, real)})


def kid_figure(ctx: MetricContext, extractor: str, key: str, split: str, metric: str) -> dict:
    x, y = ctx.split_features(extractor, key, split)
    _require(x, y, 2, "KID")
    rows = pairwise_rows(ctx, extractor, key, split)
    gram = pairwise_gram(ctx, extractor, key, split)
    o = ctx.options
    value = kid_from_gram(gram, o.kid_subset_size, o.kid_subsets, ctx.rng(metric, split, "subsets"))
    replicate_rng = ctx.rng(metric, split, "replicate subsets")
    replicates = kid_replicates(gram, o.kid_subset_size, o.kid_subsets, replicate_rng, rows.clusters, o.bootstrap,
                                ctx.rng(metric, split))
    return rows.note(figure(value, recentred_interval(value, replicates), _sample_sizes(x, y), None,
                            f"{DISTANCE_INTERVAL} (B={o.bootstrap})", rows.clusters[0].describe()))


def manifold_distances(ctx: MetricContext, extractor: str, key: str, split: str) -> ManifoldDistances:
    """The distances of the split's k-NN manifolds (``stats.ManifoldDistances``: O(N^2) for N = at most
    ``GRAM_CAP`` rows a side), computed once per run, extractor and split."""
    memo_key = ("manifold distances", extractor, key, split)
    if memo_key not in ctx.memo:
        ctx.memo[memo_key] = ManifoldDistances.of(pairwise_gram(ctx, extractor, key, split))
    return ctx.memo[memo_key]


def manifold_outcomes(ctx: MetricContext, extractor: str, key: str, split: str) -> Manifolds:
    """Per-sample k-NN manifold outcomes (k = ``RunOptions.pr_k``) of the split's generated vs real features,
    computed once per run, extractor and split."""
    memo_key = ("manifolds", extractor, key, split)
    if memo_key not in ctx.memo:
        x, y = ctx.split_features(extractor, key, split)
        _require(x, y, ctx.options.pr_k + 1, f"k-NN manifolds with k={ctx.options.pr_k}")
        ctx.memo[memo_key] = manifold_distances(ctx, extractor, key, split).manifolds(ctx.options.pr_k)
    return ctx.memo[memo_key]


def manifold_per_clip(ctx: MetricContext, extractor: str, key: str, split: str) -> dict[str, np.ndarray]:
    """Precision (0/1) and density per generated sample, NaN for clips left out of a subsample (recall and coverage
    are per real sample, not per clip)."""
    m = manifold_outcomes(ctx, extractor, key, split)
    rows = pairwise_rows(ctx, extractor, key, split)
    values = {}
    for name, kept in (("precision", m.precision.astype(np.float64)), ("density", m.density)):
        values[name] = np.full(len(ctx.evalset.generated_index[split]), np.nan)
        values[name][rows.rows_x] = kept
    return values


MANIFOLD_FIGURES = ("precision", "recall", "density", "coverage")


def manifold_figures(ctx: MetricContext, extractor: str, key: str, split: str) -> dict:
    """Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) of the split's
    generated vs real features. All four depend on both sets, so their intervals come from half-sampling both sets
    (``stats.half_sample_replicates``; whole groups, without replacement: a bootstrap with replacement would shrink
    the k-NN radii); when a half would hold k or fewer points, each interval is conditional on the other set (its
    manifold held fixed: Wilson or a cluster bootstrap). A share at 0 or 1 (every sample agrees) or a density of 0
    gets the interval of ``_at_bound`` instead: resampling gives none there. ``tests/evalkit/test_stats.py`` checks
    the coverage of precision and recall by simulation."""
    x, y = ctx.split_features(extractor, key, split)
    o = ctx.options
    k = o.pr_k
    _require(x, y, k + 1, f"precision/recall with k={k}")
    rows = pairwise_rows(ctx, extractor, key, split)
    x, y = rows.x, rows.y
    distances = manifold_distances(ctx, extractor, key, split)
    m = manifold_outcomes(ctx, extractor, key, split)
    generated_clusters, real_clusters = rows.clusters
    sizes = _sample_sizes(x, y)
    enough = all(len(np.unique(c.codes)) >= 4 for c in (generated_clusters, real_clusters))  # halves of >= 2
    if enough and min(len(x), len(y)) // 2 > k:
        def halves(i: np.ndarray, j: np.ndarray) -> np.ndarray:
            if min(len(i), len(j)) <= k:
                return np.full(len(MANIFOLD_FIGURES), np.nan)
            half = distances.manifolds(k, i, j)
            return np.array([getattr(half, name).mean() for name in MANIFOLD_FIGURES])

        replicates = half_sample_replicates(halves, (generated_clusters, real_clusters), o.bootstrap,
                                            ctx.rng("precision_recall", split))
        replicates = replicates[np.all(np.isfinite(replicates), axis=1)]
        if len(replicates) >= 2:
            method = f"{HALF_SAMPLING} (B={len(replicates)})"
            cells = {}
            for column, name in enumerate(MANIFOLD_FIGURES):
                value = float(getattr(m, name).mean())
                clusters = generated_clusters if name in ("precision", "density") else real_clusters
                if value == 0.0 or (value == 1.0 and name != "density"):  # on a bound (density has none above)
                    cells[name] = rows.note(_at_bound(m, name, clusters, sizes))
                    continue
                low, high = recentred_interval(value, replicates[:, column])
                share = name != "density"
                cells[name] = rows.note(figure(value, (max(0.0, low), min(1.0, high) if share else high), sizes,
                                               None, method, generated_clusters.describe(), proportion=share))
            return {**cells, "k": k}
    density = _at_bound(m, "density", generated_clusters, sizes) if not m.density.any() else {
        **mean_figure(m.density, None, generated_clusters, o.bootstrap, ctx.rng("density", split)),
        "conditional": "on the real faces' k-NN manifold"}
    return {
        "precision": rows.note(proportion_figure(m.precision, None, generated_clusters, o.bootstrap,
                                                 ctx.rng("precision", split), CONDITIONAL["precision"])),
        "recall": rows.note(proportion_figure(m.recall, None, real_clusters, o.bootstrap, ctx.rng("recall", split),
                                              CONDITIONAL["recall"])),
        "density": rows.note(density),
        "coverage": rows.note(proportion_figure(m.coverage, None, real_clusters, o.bootstrap,
                                                ctx.rng("coverage", split), CONDITIONAL["coverage"])),
        "k": k,
    }


CONDITIONAL = {"precision": ", conditional on the real faces' k-NN manifold",
               "density": ", conditional on the real faces' k-NN manifold",
               "recall": ", conditional on the generated faces' k-NN manifold",
               "coverage": ", conditional on the generated faces"}
DENSITY_AT_ZERO = ("exact Poisson upper bound after a zero count (Garwood 1936), each cluster one observation of the "
                   "mean count: [0, 3.69 / (k C)]")


def _at_bound(m: Manifolds, name: str, clusters: Clusters, sizes: dict) -> dict:
    """The figure of a manifold share at 0 or 1, or of a density of 0 (every sample outside every ball), where no
    resampling interval holds (``stats.bound_interval``): Wilson over the side's clusters; for the density, the exact
    Poisson bound of a zero count over the clusters. Conditional on the other set's manifold: at a bound half-samples
    (whose k-NN radii are larger) cannot say how the manifold varies."""
    value = float(getattr(m, name).mean())
    share = name != "density"
    if share:
        interval, method = bound_interval(value, clusters), AT_BOUND
    else:
        interval, method = (0.0, POISSON_ZERO_UPPER / (m.k * len(np.unique(clusters.codes)))), DENSITY_AT_ZERO
    return figure(value, interval, sizes, None, method + CONDITIONAL[name], clusters.describe(), proportion=share)
