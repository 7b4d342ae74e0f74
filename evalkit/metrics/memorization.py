"""Memorization: are generated faces copies of the real training faces? Euclidean distances between dlib
descriptors (the descriptor's native metric); training faces are the real faces of the training splits
(``evalset.head_train``), held-out faces the real faces of ``unseen_speech`` that are not training faces
(``evalset.head_heldout``).

- ``training_nearer``: share of generated faces of speaker X whose nearest real face of X is a training face, i.e.
  nearer than any held-out face of X. A face drawn afresh from X's face distribution is as likely as any of X's
  real faces to be nearest, so the chance level is the mean over clips of |train_X| / (|train_X| + |held-out_X|);
  a generator that copies training faces approaches 1. The real row applies it to the held-out faces themselves
  (each one left out of its own comparison).
- ``authenticity`` (Alaa et al., "How faithful is your synthetic data?", ICML 2022, Sec. 3): a generated face is
  unauthentic when its nearest training face t* is nearer to it than t*'s own nearest other training face is to t*;
  the figure is the authentic share. The real row gives the held-out real faces' authenticity (no copies among them).
- ``c_t``: the data-copying statistic of Meehan, Chaudhuri & Dasgupta (AISTATS 2020): the training faces are cut
  into cells by k-means (seeded); in each cell the distances of the generated faces to their nearest training face
  of the cell are compared with those of held-out faces by the Mann-Whitney U test, Z_U = (U - mn/2) /
  sqrt(mn(m+n+1)/12) (U counts generated-farther pairs, ties half); C_T averages Z_U over the cells that hold at
  least ``MIN_CELL`` generated and held-out faces, weighted by their share of held-out faces. C_T << 0: generated
  faces lie closer to training faces than new real faces do (copying); 0 is the level of new real faces (chance).
  Interval: bootstrap over generated and held-out faces, cells fixed. "not applicable: N too small" when no cell
  holds enough of both.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from evalkit.metrics import Metric, MetricContext, register
from evalkit.neighbours import nearest, nearest_in_group
from evalkit.stats import Clusters, figure, percentile_interval, proportion_figure, resample_weight_blocks

MIN_CELL = 20  # generated and held-out faces a cell needs for its U statistic's normal approximation
MAX_CELLS = 5


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) float64 squared Euclidean distances between rows a (n, d) and b (m, d), by SciPy's ``cdist``
    ("sqeuclidean": sums of squared differences, so a near copy's distance carries no cancellation error, as the
    |a|^2 + |b|^2 - 2 a.b expansion does). For small m only (the k-means centroids); ``nearest`` bounds the rest."""
    return cdist(np.asarray(a, np.float64), np.asarray(b, np.float64), "sqeuclidean")


def _group_sizes(groups: np.ndarray, of: np.ndarray) -> np.ndarray:
    """How many entries of ``groups`` equal each entry of ``of`` (int64, len(of))."""
    present, counts = np.unique(groups, return_counts=True)
    sizes = dict(zip(present.tolist(), counts.tolist(), strict=True))
    return np.array([sizes.get(group, 0) for group in np.asarray(of).tolist()], dtype=np.int64)


def training_nearer(queries: np.ndarray, query_identities: np.ndarray, training: np.ndarray,
                    training_identities: np.ndarray, heldout: np.ndarray, heldout_identities: np.ndarray,
                    leave_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per query: whether its nearest real face of its identity is a training face, and the chance of that,
    |train_X| / (|train_X| + |held-out_X|). ``leave_out`` (per query, a held-out row index or -1) removes the query
    itself from the held-out faces."""
    to_training = nearest_in_group(queries, query_identities, training, training_identities)
    to_heldout = nearest_in_group(queries, query_identities, heldout, heldout_identities, leave_out)
    n_heldout = _group_sizes(heldout_identities, query_identities).astype(np.float64)
    if leave_out is not None:
        n_heldout -= leave_out >= 0
    n_training = _group_sizes(training_identities, query_identities)
    return to_training < to_heldout, n_training / (n_training + n_heldout)


def authentic(queries: np.ndarray, training: np.ndarray) -> np.ndarray:
    """Alaa et al.'s authenticity per query: its nearest training face t* is no nearer to it than t*'s nearest other
    training face is to t*."""
    to_training, nearest_row = nearest(queries, training)
    among, _ = nearest(training, training, exclude=np.arange(len(training)))
    return to_training >= among[nearest_row]


def weighted_u(generated: np.ndarray, heldout: np.ndarray, generated_weights: np.ndarray,
               heldout_weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney U of resamples given as row multiplicities: for each row b of the weights (B, m) and (B, n),
    the number of (generated, held-out) pairs of the resample where the generated value is larger, ties counting
    1/2 (scipy's ``mannwhitneyu(...).statistic`` of the resampled values). One sort and two binary searches, then
    cumulative weights: O(B (m + n)) instead of a rank test per replicate."""
    order = np.argsort(heldout, kind="stable")
    ordered = heldout[order]
    below = np.searchsorted(ordered, generated, "left")
    through = np.searchsorted(ordered, generated, "right")
    cumulative = np.concatenate([np.zeros((len(heldout_weights), 1)), np.cumsum(heldout_weights[:, order], axis=1)],
                                axis=1)
    smaller = cumulative[:, below]
    return ((smaller + 0.5 * (cumulative[:, through] - smaller)) * generated_weights).sum(axis=1)


def _z_u(u: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
    return (u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12)


def data_copying(generated: np.ndarray, heldout: np.ndarray, training: np.ndarray, rng: np.random.Generator,
                 replicates: int) -> dict:
    """Meehan et al.'s C_T of generated vs held-out rows against training rows, with a bootstrap interval."""
    cells = int(min(MAX_CELLS, len(heldout) // MIN_CELL, len(generated) // MIN_CELL, len(training) // 2))
    if cells < 1:
        return {"status": "not applicable", "reason": f"N too small: {len(generated)} generated and {len(heldout)} "
                f"held-out faces; a cell needs {MIN_CELL} of each"}
    from scipy.cluster.vq import kmeans2  # imported here: 0.4 s, and a re-run reads cached scores

    centroids, training_cell = kmeans2(np.asarray(training, np.float64), cells, minit="++", rng=rng)
    generated_cell = squared_distances(generated, centroids).argmin(axis=1)
    heldout_cell = squared_distances(heldout, centroids).argmin(axis=1)
    gen_distance = np.sqrt(nearest_in_group(generated, generated_cell, training, training_cell))
    held_distance = np.sqrt(nearest_in_group(heldout, heldout_cell, training, training_cell))

    def statistic(generated_weights: np.ndarray, heldout_weights: np.ndarray) -> np.ndarray:
        """C_T of each resample, given as row multiplicities (B, len(generated)) and (B, len(heldout)); NaN where
        no cell holds MIN_CELL of both."""
        z_sum, weight_sum = np.zeros(len(generated_weights)), np.zeros(len(generated_weights))
        for cell in range(cells):
            g, h = generated_cell == cell, heldout_cell == cell
            wg, wh = generated_weights[:, g], heldout_weights[:, h]
            m, n = wg.sum(axis=1), wh.sum(axis=1)
            used = (m >= MIN_CELL) & (n >= MIN_CELL)
            if not used.any():
                continue
            z = _z_u(weighted_u(gen_distance[g], held_distance[h], wg[used], wh[used]), m[used], n[used])
            weight = n[used] / heldout_weights[used].sum(axis=1)
            z_sum[used] += weight * z
            weight_sum[used] += weight
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(weight_sum > 0, z_sum / weight_sum, np.nan)

    value = float(statistic(np.ones((1, len(generated))), np.ones((1, len(heldout))))[0])
    if not np.isfinite(value):
        return {"status": "not applicable", "reason": f"N too small: no cell of {cells} holds {MIN_CELL} generated "
                "and held-out faces"}
    drawn = np.empty(replicates)  # the resamples' row multiplicities a block at a time (memory flat in N)
    for rows, (generated_weights, heldout_weights) in resample_weight_blocks(
            [Clusters.singletons(len(generated)), Clusters.singletons(len(heldout))], replicates, rng,
            4 * (len(generated) + len(heldout))):
        drawn[rows] = statistic(generated_weights, heldout_weights)
    empty = ~np.isfinite(drawn)  # a resample may leave every cell short: counted, scored as the estimate
    interval = percentile_interval(np.where(empty, value, drawn))
    used = [c for c in range(cells)
            if (generated_cell == c).sum() >= MIN_CELL and (heldout_cell == c).sum() >= MIN_CELL]
    sizes = {"generated": len(generated), "heldout": len(heldout), "training": len(training)}
    return {**figure(value, interval, sizes, 0.0, "bootstrap over generated and held-out faces, cells fixed"),
            "cells": cells, "cells_used": len(used), "min_cell": MIN_CELL, "replicates_without_cells": int(sum(empty))}


def _outcomes(ctx: MetricContext, split: str) -> dict | None:
    memo_key = ("memorization", split)
    if memo_key in ctx.memo:
        return ctx.memo[memo_key]
    ev = ctx.evalset
    generated, real = ctx.features("dlib")
    train, heldout = ev.head_train, ev.head_heldout
    index = ev.generated_index[split]
    identities = ev.generated.identities[index]
    pool_identities = ev.real.identities
    known = np.isin(identities, pool_identities[train]) & np.isin(identities, pool_identities[heldout])
    outcome = None
    if known.all():
        nearer, chance = training_nearer(generated["descriptor"][index], identities, real["descriptor"][train],
                                         pool_identities[train], real["descriptor"][heldout], pool_identities[heldout])
        outcome = {"training_nearer": nearer, "chance": chance,
                   "authentic": authentic(generated["descriptor"][index], real["descriptor"][train])}
    ctx.memo[memo_key] = outcome
    return outcome


def _not_applicable(ctx: MetricContext) -> dict:
    return {"status": "not applicable",
            "reason": "the split's speakers need real training faces (train/seen) and held-out real faces "
                      f"(unseen_speech): {len(ctx.evalset.head_train)} and {len(ctx.evalset.head_heldout)} in the data"}


def per_clip(ctx: MetricContext, split: str) -> dict[str, np.ndarray]:
    """{"training_nearer", "authenticity"}: 0/1 per clip (empty when not applicable)."""
    outcome = _outcomes(ctx, split)
    if outcome is None:
        return {}
    return {"training_nearer": outcome["training_nearer"].astype(np.float64),
            "authenticity": outcome["authentic"].astype(np.float64)}


def evaluate(ctx: MetricContext, split: str) -> dict:
    outcome = _outcomes(ctx, split)
    if outcome is None:
        return _not_applicable(ctx)
    generated, real = ctx.features("dlib")
    ev = ctx.evalset
    c_t = data_copying(generated["descriptor"][ev.generated_index[split]], real["descriptor"][ev.head_heldout],
                       real["descriptor"][ev.head_train], ctx.rng("c_t", split), ctx.options.bootstrap)
    return {"training_nearer": proportion_figure(outcome["training_nearer"], float(outcome["chance"].mean())),
            "authenticity": proportion_figure(outcome["authentic"], None), "c_t": c_t, "distance": "Euclidean, dlib"}


def reference(ctx: MetricContext) -> dict:
    """The held-out real faces as queries: their training-nearer share (each left out of its own comparison) and
    authenticity, the levels of genuinely new faces."""
    ev = ctx.evalset
    train, heldout = ev.head_train, ev.head_heldout
    if not len(train) or not len(heldout):
        return _not_applicable(ctx)
    _, real = ctx.features("dlib")
    identities = ev.real.identities
    keep = np.isin(identities[heldout], identities[train])
    queries = heldout[keep]
    nearer, chance = training_nearer(real["descriptor"][queries], identities[queries], real["descriptor"][train],
                                     identities[train], real["descriptor"][heldout], identities[heldout],
                                     leave_out=np.flatnonzero(keep))
    return {"training_nearer": proportion_figure(nearer, float(chance.mean())),
            "authenticity": proportion_figure(authentic(real["descriptor"][queries], real["descriptor"][train]), None),
            "distance": "Euclidean, dlib"}


METRIC = register(Metric(
    name="memorization",
    description="copies of training faces: share of generated faces nearer a training than any held-out face of "
                "the speaker, authenticity (Alaa et al. 2022), data-copying C_T (Meehan et al. 2020)",
    requires="dlib face models (face-recognition-models package)",
    columns=("training_nearer", "authenticity", "c_t"),
    extractors=lambda options: ("dlib",),
    evaluate=evaluate,
    reference=reference,
    applies=lambda real: None if len(real.head_train) and len(real.head_heldout) else
    "needs real training faces (train/seen) and held-out real faces (unseen_speech) in the data",
    per_clip=per_clip,
))
