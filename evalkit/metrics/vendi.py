"""Vendi score (Friedman & Dieng, TMLR 2023): the effective number of distinct faces among a split's generated faces.

VS = exp(-sum_i l_i log l_i), l_i the eigenvalues of K / n, with K_ab = cos(u_a, u_b) the cosine similarity of dlib
descriptors (a positive semi-definite kernel with K_aa = 1). VS runs from 1 (every face the same) to n (mutually
orthogonal faces); with this linear kernel it is at most the descriptor's 128 dimensions. The eigenvalues come from the
d x d matrix U^T U / n, which has the same non-zero spectrum as K / n.

Interval: bootstrap over clips, bias-corrected (a resample repeats faces, which lowers VS). The real row is the
score of the distinct real faces of the evaluated splits; each split's row also gives its own real faces' score.
"""

from __future__ import annotations

import numpy as np

from evalkit.gallery import unit_rows
from evalkit.metrics import Metric, MetricContext, register
from evalkit.stats import (
    Clusters,
    cluster_moments,
    figure,
    recentred_interval,
    resample_weight_blocks,
    weighted_moments,
)
from evalkit.threads import limited_pools


def _vendi_of_spectra(spectra: np.ndarray) -> np.ndarray:
    """exp(entropy) of each row of eigenvalues (B, d) of K / n: eigenvalues at or below 1e-12 are dropped and the
    rest renormalised (zero rows, no descriptor, leave the trace below 1)."""
    kept = spectra > 1e-12
    spectra = np.where(kept, spectra, 0.0)
    spectra = spectra / spectra.sum(axis=1, keepdims=True)
    return np.exp(-np.where(kept, spectra * np.log(np.where(kept, spectra, 1.0)), 0.0).sum(axis=1))


def vendi_score(features: np.ndarray) -> float:
    """Vendi score of feature rows (n, d) under the cosine kernel (float; 1 <= VS <= min(n, d))."""
    u = unit_rows(features)
    return float(_vendi_of_spectra(np.linalg.eigvalsh(u.T @ u / len(u))[None])[0])


def vendi_replicates(features: np.ndarray, clusters: Clusters, replicates: int, rng: np.random.Generator
                     ) -> np.ndarray:
    """``vendi_score(features[i])`` over the cluster-bootstrap resamples i of ``stats.cluster_resamples`` (the same
    draws), from each resample's row multiplicities w, a block of replicates at a time: U^T diag(w) U is the sum of
    the drawn clusters' second-moment matrices U_c^T U_c (``stats.cluster_moments``: d x d each, computed once; the
    rows themselves when there are too many clusters to keep their matrices), then one symmetric eigenproblem each.
    The same values as on the repeated rows, to float64 rounding
    (tests/evalkit/test_voice_face_math.py). Cost: O(d^3) per replicate (d = 128 for dlib descriptors)."""
    u = unit_rows(features)
    d = u.shape[1]
    moments = cluster_moments(u, clusters.codes)
    values = np.empty(replicates)
    with limited_pools(1, "blas"):  # many small products and eigenproblems: one thread beats contended ones
        for rows, (weights,) in resample_weight_blocks([clusters], replicates, rng, d * (len(u) + d)):
            second = weighted_moments(u, weights, moments) / weights.sum(axis=1)[:, None, None]
            # one eigvalsh per matrix: measured ~2x faster than numpy's batched call for 128 x 128 (its per-matrix
            # work arrays), the same LAPACK routine and values
            values[rows] = _vendi_of_spectra(np.stack([np.linalg.eigvalsh(matrix) for matrix in second]))
    return values


def _figure(ctx: MetricContext, features: np.ndarray, clusters: Clusters, *names: str) -> dict:
    """Vendi score with a cluster bootstrap interval re-centred on the estimate (a resample repeats faces, which
    lowers the score: the plain percentile interval would sit below the estimate)."""
    value = vendi_score(features)
    replicates = vendi_replicates(features, clusters, ctx.options.bootstrap, ctx.rng("vendi", *names))
    return figure(value, recentred_interval(value, replicates), len(features), None,
                  f"cluster bootstrap, percentile interval re-centred on the estimate (B={ctx.options.bootstrap})",
                  clusters.describe())


def evaluate(ctx: MetricContext, split: str) -> dict:
    generated, real = ctx.split_features("dlib", "descriptor", split)
    generated_clusters, real_clusters = ctx.split_clusters(split)
    return {"vendi": _figure(ctx, generated, generated_clusters, split),
            "real_faces_vendi": _figure(ctx, real, real_clusters, split, "real"),
            "kernel": "cosine of dlib descriptors"}


def reference(ctx: MetricContext) -> dict:
    _, real = ctx.features("dlib")
    faces = np.unique(np.concatenate([ctx.evalset.real_index[s] for s in ctx.evalset.splits]))
    return {"vendi": _figure(ctx, real["descriptor"][faces], ctx.real_clusters(faces), "real"),
            "kernel": "cosine of dlib descriptors"}


METRIC = register(Metric(
    name="vendi",
    description="Vendi score: effective number of distinct generated faces (cosine kernel on dlib descriptors; "
                "compare with the real row)",
    requires="dlib face models (face-recognition-models package)",
    columns=("vendi",),
    extractors=lambda options: ("dlib",),
    evaluate=evaluate,
    reference=reference,
))
