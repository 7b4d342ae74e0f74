"""Craniofacial agreement of each generated face with its clip's real face (Speech2Face, Oh et al. CVPR 2019, Sec. 4.2,
correlates craniofacial measurements of reconstructed and true faces).

Ten scale-free ratios of distances between dlib's 68 landmarks (iBUG 300-W numbering, 0-based), after the
anthropometric measurements and indices of Farkas, *Anthropometry of the Head and Face*, 2nd ed., Raven Press 1994.
The 68 points are not anthropometric landmarks: zygion (zy) is approximated by the jaw contour at ear level (0, 16),
gonion (go) by contour points 4 and 12, gnathion (gn) by the chin point 8, nasion (n) by the top of the nose bridge
27, subnasale (sn) 33, alare (al) 31 and 35, endocanthion (en) 39 and 42, exocanthion (ex) 36 and 45, cheilion (ch)
48 and 54, stomion (sto) the midpoint of the inner lip points 62 and 66. Head pose (yaw, pitch) changes the ratios;
in-plane rotation, translation and scale do not.

Per split, over the clips whose generated face and real face both have landmarks: per ratio, Pearson's r between
generated and real values with a Fisher-z 95 % interval (z = atanh r +- 1.96 / sqrt(n - 3), n the number of distinct
real faces, as clips sharing a real face are not independent) and the mean signed log-ratio ln(generated / real)
(``bias``; +0.095 is a 10 % wider feature); ``mean_r`` (mean of the ten r); ``mean_r_within_speaker``, the same
with each speaker's mean removed from both sides (agreement beyond telling the speakers apart, which a per-speaker
mean face cannot have: it is not applicable there); and ``ratio_error``: the mean over clips
of the mean over ratios of |ln(generated / real)| (about the relative error). Their intervals come from a bootstrap
over the distinct real faces, each resampled with all its clips. Chance: the same figures for a shuffled pairing in
``shuffled`` (the clips of each real face paired with another real face of the split: a random cyclic order of the
faces, seeded), and for ``ratio_error`` the exact mean over all pairings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from evalkit.metrics import Metric, MetricContext, register
from evalkit.stats import Z95, Clusters, figure, percentile_interval, resample_weight_blocks

# name: (numerator points, denominator points); a pair of points is a distance, a quadruple the distance between the
# midpoints of its two halves
RATIOS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "facial_index": ((27, 8), (0, 16)),               # n-gn / zy-zy (Farkas' facial index)
    "intercanthal_index": ((39, 42), (36, 45)),       # en-en / ex-ex (intercanthal index)
    "biocular_to_face_width": ((36, 45), (0, 16)),    # ex-ex / zy-zy
    "nasal_to_face_width": ((31, 35), (0, 16)),       # al-al / zy-zy
    "mouth_to_face_width": ((48, 54), (0, 16)),       # ch-ch / zy-zy
    "zygomandibular_index": ((4, 12), (0, 16)),       # go-go / zy-zy (zygomandibular index)
    "lower_face_height": ((33, 8), (27, 8)),          # sn-gn / n-gn
    "nasal_height": ((27, 33), (27, 8)),              # n-sn / n-gn
    "nasal_index": ((31, 35), (27, 33)),              # al-al / n-sn (nasal index)
    "upper_lip_height": ((33, 62, 33, 66), (33, 8)),  # sn-sto / sn-gn (upper lip to lower face height)
}
MIN_PAIRS = 4
CLUSTER_BOOTSTRAP = "bootstrap over real faces (their clips resampled together)"


def _distance(points: np.ndarray, spec: tuple[int, ...]) -> np.ndarray:
    if len(spec) == 2:
        return np.linalg.norm(points[:, spec[0]] - points[:, spec[1]], axis=1)
    a = (points[:, spec[0]] + points[:, spec[2]]) / 2
    b = (points[:, spec[1]] + points[:, spec[3]]) / 2
    return np.linalg.norm(a - b, axis=1)


def craniofacial_ratios(landmarks: np.ndarray) -> np.ndarray:
    """(n, 10) float64 ratios (``RATIOS`` order) of landmark sets (n, 68, 2); NaN rows where landmarks are NaN."""
    points = np.asarray(landmarks, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([_distance(points, top) / _distance(points, bottom) for top, bottom in RATIOS.values()],
                        axis=1)


def pearson_figure(x: np.ndarray, y: np.ndarray, independent: int) -> dict:
    """Pearson r with a Fisher-z interval on ``independent`` samples; not applicable when a side is constant."""
    if len(x) < MIN_PAIRS or independent < MIN_PAIRS:
        return {"status": "not applicable", "reason": f"{independent} independent pairs (needs {MIN_PAIRS})"}
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"status": "not applicable", "reason": "a side does not vary (e.g. the same face for every clip)"}
    r = float(np.clip(np.corrcoef(x, y)[0, 1], -1.0, 1.0))
    half = Z95 / np.sqrt(independent - 3)
    z = np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15))
    return figure(r, (float(np.tanh(z - half)), float(np.tanh(z + half))), {"clips": len(x), "faces": independent},
                  0.0, "Fisher z")


def weighted_column_correlations(x: np.ndarray, y: np.ndarray, weights: np.ndarray,
                                 groups: np.ndarray | None = None) -> np.ndarray:
    """Pearson r (B, c) of each column of x (n, c) with the same column of y, on rows taken ``weights`` (B, n) times
    (a resample's row multiplicities; a row of ones: the sample itself); with ``groups`` (n,), of the values centred
    within each group (the correlation beyond group means). NaN where a side does not vary."""
    w = weights[:, :, None]
    if groups is None:
        x = x[None] - (w * x).sum(axis=1, keepdims=True) / w.sum(axis=1, keepdims=True)
        y = y[None] - (w * y).sum(axis=1, keepdims=True) / w.sum(axis=1, keepdims=True)
    else:
        _, group = np.unique(groups, return_inverse=True)
        one_hot = (group[:, None] == np.arange(group.max() + 1)[None, :]).astype(np.float64)  # (n, groups)
        sizes = (weights @ one_hot)[:, :, None]  # (B, groups, 1); 0 for a group absent from a resample
        with np.errstate(invalid="ignore", divide="ignore"):
            x = x[None] - (np.einsum("bn,ng,nc->bgc", weights, one_hot, x) / sizes)[:, group]
            y = y[None] - (np.einsum("bn,ng,nc->bgc", weights, one_hot, y) / sizes)[:, group]
    x, y = np.where(w > 0, x, 0.0), np.where(w > 0, y, 0.0)  # rows absent from a resample count for nothing
    scale = np.sqrt((w * x**2).sum(axis=1) * (w * y**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (w * x * y).sum(axis=1) / scale
    largest = np.abs(x).max(axis=(1, 2), initial=0) * np.abs(y).max(axis=(1, 2), initial=0)
    return np.where(scale > 1e-12 * np.maximum(1.0, largest)[:, None], r, np.nan)


def column_correlations(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Pearson r (c,) of each column of x (n, c) with the same column of y (``weighted_column_correlations`` of the
    sample itself)."""
    return weighted_column_correlations(x, y, np.ones((1, len(x))), groups)[0]


def _finite_means(r: np.ndarray) -> np.ndarray:
    """Mean of the finite values of each row of r (B, c); 0 where none is finite."""
    finite = np.isfinite(r)
    counts = finite.sum(axis=1)
    return np.where(counts > 0, np.where(finite, r, 0.0).sum(axis=1) / np.maximum(counts, 1), 0.0)


def _agreement(ctx: MetricContext, generated: np.ndarray, real: np.ndarray, clusters: np.ndarray,
               speakers: np.ndarray, *names: str) -> dict:
    """Figures of paired ratio rows (n, 10); ``clusters`` (n,) groups the pairs that share a real face: the unit of
    the Fisher interval's n and of the bootstrap (whole clusters are resampled); ``speakers`` (n,) the speaker of
    each pair, for the correlation within speakers. Every interval's replicates are computed a block at a time from
    the resamples' row multiplicities (``stats.resample_weight_blocks``)."""
    cluster_ids, cluster_of = np.unique(clusters, return_inverse=True)
    independent = len(cluster_ids)

    def interval_of(statistic: Callable[[np.ndarray], np.ndarray], *what: str) -> tuple[float, float]:
        """Percentile interval of ``statistic`` (row weights (B, n) -> (B,)) over resamples of whole clusters."""
        values = np.empty(ctx.options.bootstrap)
        for rows, (weights,) in resample_weight_blocks([Clusters.singletons(independent)], ctx.options.bootstrap,
                                                    ctx.rng("craniofacial", *what, *names), 8 * generated.size):
            values[rows] = statistic(weights[:, cluster_of])
        return percentile_interval(values)

    def mean_of(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        return lambda weights: weights @ values / weights.sum(axis=1)

    log_ratio = np.log(generated / real)
    error = np.abs(log_ratio).mean(axis=1)
    per_ratio = {}
    for k, name in enumerate(RATIOS):
        correlation = pearson_figure(generated[:, k], real[:, k], independent)
        bias = log_ratio[:, k]
        interval = interval_of(mean_of(bias), "bias", name)
        per_ratio[name] = {"r": correlation, "bias": figure(bias.mean(), interval, len(bias), 0.0, CLUSTER_BOOTSTRAP)}
    result: dict[str, Any] = {"ratios": per_ratio}
    for figure_name, groups in (("mean_r", None), ("mean_r_within_speaker", speakers)):
        def mean_r(weights: np.ndarray, groups: np.ndarray | None = groups) -> np.ndarray:
            return _finite_means(weighted_column_correlations(generated, real, weights, groups))

        if np.isfinite(column_correlations(generated, real, groups)).any():
            result[figure_name] = figure(float(mean_r(np.ones((1, len(generated))))[0]),
                                         interval_of(mean_r, figure_name), len(generated), 0.0, CLUSTER_BOOTSTRAP)
        else:
            result[figure_name] = {"status": "not applicable", "reason": "the generated ratios do not vary"
                                   + (" within a speaker" if groups is not None else "")}
    result["ratio_error"] = figure(error.mean(), interval_of(mean_of(error), "error"), len(error), None,
                                   CLUSTER_BOOTSTRAP)
    return result


def _pairs(ctx: MetricContext, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ratios of every clip's generated and real face (NaN rows where either has no landmarks), the real face of
    each clip and the mask of clips with both."""
    generated, real = ctx.features("dlib")
    ev = ctx.evalset
    faces = ev.paired_real[split]
    g = craniofacial_ratios(generated["landmarks"][ev.generated_index[split]])
    r = craniofacial_ratios(real["landmarks"][faces])
    valid = np.isfinite(g).all(axis=1) & np.isfinite(r).all(axis=1) & (g > 0).all(axis=1) & (r > 0).all(axis=1)
    return g, r, faces, valid


def all_pairings_error(generated: np.ndarray, real: np.ndarray) -> float:
    """Mean over every (generated row, real row) pairing of the mean |ln(generated / real)| over the ratios: the
    expected ``ratio_error`` of a random pairing. Per ratio, sum_ij |a_i - b_j| from the sorted b and its prefix
    sums (each a_i adds a_i c - S_below + S_above - a_i (m - c), c the b's below it): O((n + m) log m) time and
    O(n + m) memory instead of the n x m pairs."""
    log_g, log_r = np.log(generated), np.log(real)
    total = 0.0
    for a, b in zip(log_g.T, log_r.T, strict=True):
        b = np.sort(b)
        prefix = np.concatenate([[0.0], np.cumsum(b)])
        below = np.searchsorted(b, a)  # b's below a (ties add |a - b| = 0 on either side)
        total += float((a * below - prefix[below] + (prefix[-1] - prefix[below]) - a * (len(b) - below)).sum())
    return total / (len(log_g) * len(log_r) * log_g.shape[1])


def per_clip(ctx: MetricContext, split: str) -> dict[str, np.ndarray]:
    """{"ratio_error": mean |ln(generated / real)| over the ten ratios per clip; NaN where a face has no landmarks}."""
    g, r, _, valid = _pairs(ctx, split)
    error = np.full(len(g), np.nan)
    error[valid] = np.abs(np.log(g[valid] / r[valid])).mean(axis=1)
    return {"ratio_error": error}


def evaluate(ctx: MetricContext, split: str) -> dict:
    g, r, faces, valid = _pairs(ctx, split)
    g, r, faces = g[valid], r[valid], faces[valid]
    counts = {"clips": len(valid), "with_landmarks": int(valid.sum())}
    if valid.sum() < MIN_PAIRS:
        return {"status": "not applicable", "reason": f"only {int(valid.sum())} clips where both faces have "
                f"landmarks (needs {MIN_PAIRS})", **counts}
    speakers = ctx.evalset.generated.identities[ctx.evalset.generated_index[split]][valid]
    result = _agreement(ctx, g, r, faces, speakers, split)
    # the chance row: every clip of real face f paired with the real face that follows f in a random cyclic order
    # of the distinct faces (never itself); clusters stay intact
    distinct = ctx.rng("craniofacial shuffle", split).permutation(np.unique(faces))
    partner = dict(zip(distinct.tolist(), np.roll(distinct, -1).tolist(), strict=True))
    first_clip = {face: k for k, face in reversed(list(enumerate(faces.tolist())))}
    shuffled = np.array([first_clip[partner[face]] for face in faces.tolist()])
    result["shuffled"] = _agreement(ctx, g, r[shuffled], faces, speakers, split, "shuffled")
    result["ratio_error"]["chance"] = all_pairings_error(g, r)
    return {**result, **counts, "landmarks": "dlib 68-point (iBUG 300-W)", "source": "Farkas 1994"}


METRIC = register(Metric(
    name="craniofacial",
    description="agreement of ten landmark ratios (Farkas 1994) between each generated face and its clip's real "
                "face: Pearson r per ratio, mean |log-ratio| error; shuffled pairing as chance",
    requires="dlib face models (face-recognition-models package)",
    columns=("mean_r", "mean_r_within_speaker", "ratio_error"),
    extractors=lambda options: ("dlib",),
    evaluate=evaluate,
    per_clip=per_clip,
))
