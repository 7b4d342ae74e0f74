"""Shared computation of the two-sample metrics (Fréchet distance, KID, precision / recall / density / coverage) on
any features.

Generated side: one sample per clip of the split; reference side: the split's distinct real faces. Intervals come
from a seeded two-sample bootstrap over clips and real faces (``--bootstrap`` replicates).
"""

from __future__ import annotations

import numpy as np

from evalkit.metrics import MetricContext
from evalkit.stats import (
    GramPair,
    Manifolds,
    bootstrap_interval,
    figure,
    frechet_distance,
    frechet_from_gram,
    kid_from_gram,
    knn_manifolds,
    proportion_figure,
    statistics,
    write_stats,
)


def _sample_sizes(x: np.ndarray, y: np.ndarray) -> dict:
    return {"generated": len(x), "real": len(y)}


def frechet_figure(ctx: MetricContext, extractor: str, key: str, split: str, metric: str) -> dict:
    """Fréchet distance of the split's generated vs real features; both sides' statistics are written as
    pytorch-fid .npz files under ``stats/``."""
    x, y = ctx.split_features(extractor, key, split)
    if min(len(x), len(y)) < x.shape[1]:
        ctx.warn(f"{metric} on {split}: {min(len(x), len(y))} samples < {x.shape[1]} feature dimensions; the "
                 "covariance is singular and the distance is biased upwards (compare only at equal N)")
    generated, real = statistics(x), statistics(y)
    stats_dir = ctx.run_dir / "stats"
    write_stats(stats_dir / f"{split}_generated_{metric}.npz", *generated)
    write_stats(stats_dir / f"{split}_real_{metric}.npz", *real)
    gram = GramPair.of(x, y)
    value = frechet_distance(*generated, *real)
    interval = bootstrap_interval(lambda i, j: frechet_from_gram(gram, i, j), gram.sizes, ctx.options.bootstrap,
                                  ctx.rng(metric, split), estimate=value)
    return figure(value, interval, _sample_sizes(x, y), None, "bootstrap, bias-corrected")


def kid_figure(ctx: MetricContext, extractor: str, key: str, split: str, metric: str) -> dict:
    x, y = ctx.split_features(extractor, key, split)
    gram = GramPair.of(x, y)
    o = ctx.options
    value = kid_from_gram(gram, o.kid_subset_size, o.kid_subsets, ctx.rng(metric, split, "subsets"))
    replicate_rng = ctx.rng(metric, split, "replicate subsets")
    interval = bootstrap_interval(
        lambda i, j: kid_from_gram(gram, o.kid_subset_size, o.kid_subsets, replicate_rng, i, j),
        gram.sizes, o.bootstrap, ctx.rng(metric, split), estimate=value)
    return figure(value, interval, _sample_sizes(x, y), None, "bootstrap, bias-corrected")


def manifold_outcomes(ctx: MetricContext, extractor: str, key: str, split: str) -> Manifolds:
    """Per-sample k-NN manifold outcomes (k = ``RunOptions.pr_k``) of the split's generated vs real features,
    computed once per run, extractor and split."""
    memo_key = ("manifolds", extractor, key, split)
    if memo_key not in ctx.memo:
        x, y = ctx.split_features(extractor, key, split)
        ctx.memo[memo_key] = knn_manifolds(GramPair.of(x, y), ctx.options.pr_k)
    return ctx.memo[memo_key]


def manifold_figures(ctx: MetricContext, extractor: str, key: str, split: str) -> dict:
    """Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020). Precision, recall
    and coverage are shares (Wilson intervals over generated resp. real samples); density a mean over generated
    samples (bootstrap). Intervals hold the other set's manifold fixed."""
    m = manifold_outcomes(ctx, extractor, key, split)
    interval = bootstrap_interval(lambda i: m.density[i].mean(), [len(m.density)], ctx.options.bootstrap,
                                  ctx.rng("density", extractor, split))
    return {"precision": proportion_figure(m.precision, None), "recall": proportion_figure(m.recall, None),
            "density": figure(m.density.mean(), interval, len(m.density), None, "bootstrap"),
            "coverage": proportion_figure(m.coverage, None), "k": m.k}


def manifold_per_clip(ctx: MetricContext, extractor: str, key: str, split: str) -> dict[str, np.ndarray]:
    """Precision (0/1) and density per generated sample (recall and coverage are per real sample, not per clip)."""
    m = manifold_outcomes(ctx, extractor, key, split)
    return {"precision": m.precision.astype(np.float64), "density": m.density}
