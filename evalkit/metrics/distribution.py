"""Shared computation of the two-sample metrics (Fréchet distance, KID, precision / recall) on any features.

Generated side: one sample per clip of the split; reference side: the split's distinct real faces. Intervals come
from a seeded two-sample bootstrap over clips and real faces (``--bootstrap`` replicates).
"""

from __future__ import annotations

import numpy as np

from evalkit.metrics import MetricContext
from evalkit.stats import (
    GramPair,
    bootstrap_interval,
    figure,
    frechet_distance,
    frechet_from_gram,
    kid_from_gram,
    precision_recall_flags,
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


def precision_recall_figures(ctx: MetricContext, extractor: str, key: str, split: str) -> dict:
    x, y = ctx.split_features(extractor, key, split)
    precision, recall = precision_recall_flags(GramPair.of(x, y), ctx.options.pr_k)
    return {"precision": proportion_figure(precision, None), "recall": proportion_figure(recall, None),
            "k": ctx.options.pr_k}
