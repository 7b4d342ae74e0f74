"""Voice dependence: does the generated face change with the voice, beyond noise?

On the unit-norm dlib descriptors u_i of a split's generated faces, grouped by speaker (speakers with one clip left
out):

- ``within_speaker_cosine``: mean over clips of the mean cosine to the other clips of the same speaker (consistency
  across a speaker's clips). Chance: the mean over clips of the mean cosine to clips of other speakers, which a face
  that ignores the voice also reaches within a speaker.
- ``speaker_gap``: mean over clips of (cosine to the same speaker's other clips - cosine to other speakers' clips);
  chance 0. ``p_value``: one-sided permutation test of the gap, speaker labels permuted over whole clusters (below)
  ``RunOptions.permutations`` times, seeded, p = (1 + #{permuted gap >= observed}) / (1 + permutations) (Phipson &
  Smyth 2010, never 0). A constant face gives gap 0 and p = 1.
- ``icc``: ICC(1), one-way random effects, single measurement (Shrout & Fleiss 1979, Psychol. Bull. 86:420), speakers
  as targets and clips as measurements, on the descriptor's total variance: MSB and MSW are the one-way ANOVA mean
  squares summed over the descriptor dimensions, ICC = (MSB - MSW) / (MSB + (k0 - 1) MSW) with
  k0 = (N - sum n_i^2 / N) / (g - 1) for unequal group sizes. Interval: Shrout & Fleiss's F interval with the
  degrees of freedom of one dimension, (g - 1, N - g), conservative for the summed statistic; with few speakers it is
  wide, as it should be. Identical faces for every clip (no variance) give ICC 0; faces that vary only between
  speakers give 1.

The real row applies the same figures to the distinct real faces of the evaluated splits, grouped by identity.

Intervals of the per-clip means (``within_speaker_cosine``, ``speaker_gap``) resample whole clusters (the manifest's
``group``, else the real face: ``MetricContext.split_clusters``), as every per-clip figure of evalkit does: clips that
share a recording or a face are not independent draws. With a single cluster, rows are resampled and the method says
so. The permutation test permutes speaker labels over whole clusters when each cluster belongs to one speaker (else
over clips; ``test`` says which): with few clusters its smallest p-value is correspondingly large, as it should be.
The ICC's F interval counts clips as measurements (stated in its ``ci_method``).
"""

from __future__ import annotations

import numpy as np

from evalkit.gallery import unit_rows
from evalkit.metrics import Metric, MetricContext, register
from evalkit.stats import Z95, Clusters, figure, mean_figure, wilson_interval

MIN_CLIPS = 2


def _class_sums(u: np.ndarray, labels: np.ndarray, groups: int) -> np.ndarray:
    sums = np.zeros((groups, u.shape[1]))
    np.add.at(sums, labels, u)
    return sums


def per_clip_similarity(u: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: mean cosine to the other rows of its label, and to rows of other labels (u: unit rows (n, d);
    labels: 0..g-1, each with at least 2 rows, at least 2 labels)."""
    groups = labels.max() + 1
    sums = _class_sums(u, labels, groups)
    counts = np.bincount(labels, minlength=groups)
    own = np.einsum("ij,ij->i", u, u)
    within = (np.einsum("ij,ij->i", u, sums[labels]) - own) / (counts[labels] - 1)
    between = np.einsum("ij,ij->i", u, sums.sum(axis=0) - sums[labels]) / (len(u) - counts[labels])
    return within, between


PERMUTATION_BLOCK_BYTES = 32 * 2**20  # float64 working memory of one block of permutations


def _mean_gaps(sums: np.ndarray, counts: np.ndarray, own: np.ndarray, labels: np.ndarray, groups: int) -> np.ndarray:
    """Mean over rows of (within - between) for each row b of ``labels`` (B, A), a labelling of A units (rows, or
    clusters of rows) whose feature sums, row counts and summed squared norms are ``sums`` (A, d), ``counts`` (A,)
    and ``own`` (A,): the permutation test's statistic, from the class sums alone (a one-hot (B, groups, A) product
    per block). Rows of a label with fewer than 2 rows are left out, as speakers with one clip are (a permutation
    over clusters can leave a speaker one row); NaN when no label has 2 rows or one label holds every row (no
    comparison)."""
    one_hot = (labels[:, None, :] == np.arange(groups)[None, :, None]).astype(np.float64)  # (B, groups, A)
    class_sums = one_hot @ sums  # (B, groups, d)
    class_counts = one_hot @ counts
    class_own = one_hot @ own
    n = counts.sum()
    kept = class_counts >= 2
    total = sums.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        within = np.where(kept, (np.einsum("bgd,bgd->bg", class_sums, class_sums) - class_own)
                          / (class_counts - 1), 0.0).sum(axis=1)
        between = np.where(kept, np.einsum("bgd,bgd->bg", class_sums, total - class_sums)
                           / (n - class_counts), 0.0).sum(axis=1)
        gaps = (within - between) / np.where(kept, class_counts, 0.0).sum(axis=1)
    undefined = ~kept.any(axis=1) | (class_counts.max(axis=1) == n)
    return np.where(undefined, np.nan, gaps)


def _mean_gap(u: np.ndarray, labels: np.ndarray, groups: int) -> float:
    """``_mean_gaps`` of one labelling (n,) of unit rows u (n, d)."""
    return float(_mean_gaps(u, np.ones(len(u)), np.einsum("ij,ij->i", u, u), labels[None, :], groups)[0])


def permutation_units(labels: np.ndarray, clusters: np.ndarray | None) -> tuple[np.ndarray | None, str]:
    """The units the permutation test exchanges: whole clusters (the cluster code of each row, remapped to 0..C-1)
    when every cluster holds rows of one speaker and there are more clusters than speakers, else clips (None); and
    the test's description."""
    if clusters is not None:
        codes = np.unique(clusters, return_inverse=True)[1].ravel()
        first = np.unique(codes, return_index=True)[1]
        if np.array_equal(labels[first][codes], labels) and len(first) > labels.max() + 1 \
                and len(first) < len(labels):
            return codes, ("one-sided permutation of speaker labels over whole clusters (the manifest's groups, else "
                           "the faces: the exchangeable units under the null; clips of a cluster are not independent)")
    return None, "one-sided permutation of speaker labels over clips (every clip its own cluster)"


def permutation_test(u: np.ndarray, labels: np.ndarray, permutations: int, rng: np.random.Generator,
                     units: np.ndarray | None = None) -> tuple[float, int]:
    """(observed mean gap, number of label permutations whose gap reaches it); p = (1 + reached) / (1 + P).

    ``units`` (n,) cluster codes 0..C-1, each cluster of one speaker (``permutation_units``): the C cluster labels
    are permuted and every row takes its cluster's (a restricted permutation; Good 2005, Permutation, Parametric and
    Bootstrap Tests of Hypotheses, §3.5); None: the clips' labels are permuted. A permuted statistic that is
    undefined (NaN) counts as reaching the observed one (conservative)."""
    groups = labels.max() + 1
    observed = _mean_gap(u, labels, groups)
    # a permuted gap equal to the observed one up to rounding counts as reaching it (a constant face: all equal)
    tolerance = 1e-9 * max(1.0, abs(observed))
    norms = np.einsum("ij,ij->i", u, u)
    if units is None:  # each row a unit
        unit_labels, sums, counts, own = labels, u, np.ones(len(u)), norms
        draws = (rng.permutation(labels) for _ in range(permutations))
    else:  # units' feature sums: the statistic depends on the rows only through them
        unit_labels = labels[np.unique(units, return_index=True)[1]]
        sums = _class_sums(u, units, len(unit_labels))
        counts = np.bincount(units, minlength=len(unit_labels)).astype(np.float64)
        own = np.bincount(units, weights=norms, minlength=len(unit_labels))
        draws = (rng.permutation(unit_labels) for _ in range(permutations))
    block = max(1, PERMUTATION_BLOCK_BYTES // (8 * groups * (len(unit_labels) + u.shape[1])))
    reached = 0
    for start in range(0, permutations, block):  # the draws in the loop's order, a block at a time
        permuted = np.stack([next(draws) for _ in range(min(block, permutations - start))])
        gaps = _mean_gaps(sums, counts, own, permuted, groups)
        reached += int((np.isnan(gaps) | (gaps >= observed - tolerance)).sum())
    return observed, reached


def icc1(x: np.ndarray, labels: np.ndarray) -> tuple[float, tuple[float, float], dict]:
    """ICC(1) of rows x (n, d) grouped by ``labels`` on the summed per-dimension mean squares, with the
    Shrout & Fleiss F interval (degrees of freedom of one dimension)."""
    groups = labels.max() + 1
    n = len(x)
    counts = np.bincount(labels, minlength=groups)
    means = _class_sums(x, labels, groups) / counts[:, None]
    grand = x.mean(axis=0)
    ssb = float((counts * ((means - grand) ** 2).sum(axis=1)).sum())
    ssw = float(((x - means[labels]) ** 2).sum())
    df_b, df_w = groups - 1, n - groups
    msb, msw = ssb / df_b, ssw / df_w
    k0 = (n - (counts**2).sum() / n) / df_b
    details = {"msb": msb, "msw": msw, "k0": float(k0), "speakers": int(groups), "clips": int(n)}
    if msb + msw <= 1e-15 * max(1.0, float((x**2).sum())):
        return 0.0, (0.0, 0.0), {**details, "note": "no variation: every face is the same"}
    if msw == 0:
        return 1.0, (1.0, 1.0), {**details, "note": "no variation within speakers"}
    value = (msb - msw) / (msb + (k0 - 1) * msw)
    f_obs = msb / msw
    from scipy import stats as scipy_stats  # imported here: scipy.stats costs ~1 s, and a re-run reads cached scores

    alpha = 2 * (1 - scipy_stats.norm.cdf(Z95))
    f_low = f_obs / scipy_stats.f.ppf(1 - alpha / 2, df_b, df_w)
    f_high = f_obs * scipy_stats.f.ppf(1 - alpha / 2, df_w, df_b)
    interval = ((f_low - 1) / (f_low + k0 - 1), (f_high - 1) / (f_high + k0 - 1))
    return float(value), (float(interval[0]), float(interval[1])), details


def _grouped(features: np.ndarray, identities: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """Unit rows and 0-based labels of the identities with at least MIN_CLIPS rows, the mask of those rows; kept and
    dropped names."""
    names, counts = np.unique(identities, return_counts=True)
    kept = names[counts >= MIN_CLIPS]
    rows = np.isin(identities, kept)
    labels = np.searchsorted(kept, identities[rows])
    return unit_rows(features[rows]), labels, rows, kept.tolist(), names[counts < MIN_CLIPS].tolist()


def _figures(ctx: MetricContext, features: np.ndarray, identities: np.ndarray, clusters: Clusters, *names: str
             ) -> dict:
    """The figures of rows ``features`` (n, d) of ``identities`` (n,) whose dependence ``clusters`` describes."""
    u, labels, rows, kept, dropped = _grouped(features, identities)
    if len(kept) < 2:
        return {"status": "not applicable",
                "reason": f"needs at least 2 speakers with {MIN_CLIPS}+ clips, got {len(kept)}"}
    within, between = per_clip_similarity(u, labels)
    gap = within - between
    permutations = ctx.options.permutations
    units, test = permutation_units(labels, clusters.subset(rows).codes)
    gap_value, reached = permutation_test(u, labels, permutations, ctx.rng("voice_dependence", *names), units)

    def averaged(values: np.ndarray, chance: float, what: str) -> dict:
        return mean_figure(values, chance, clusters.subset(rows), ctx.options.bootstrap,
                           ctx.rng("voice_dependence", what, *names))

    value, interval, details = icc1(u, labels)
    return {
        "icc": {**figure(value, interval, {"speakers": len(kept), "clips": len(u)}, 0.0,
                         "F interval (Shrout & Fleiss 1979; clips as independent measurements)"),
                "form": "ICC(1), one-way random, single measurement", **details},
        "speaker_gap": averaged(gap, 0.0, "gap"),
        "p_value": {**figure((1 + reached) / (1 + permutations), wilson_interval(reached, permutations), len(u), None,
                             "Monte-Carlo error of the permutation p-value (Wilson)"),
                    "permutations": permutations, "statistic": gap_value,
                    "test": test},
        "within_speaker_cosine": averaged(within, float(between.mean()), "within"),
        "speakers_left_out": dropped,
    }


def per_clip(ctx: MetricContext, split: str) -> dict[str, np.ndarray]:
    """{"speaker_gap", "within_speaker_cosine"} per clip; NaN for clips of speakers with a single clip."""
    generated, _ = ctx.features("dlib")
    index = ctx.evalset.generated_index[split]
    identities = ctx.evalset.generated.identities[index]
    gap = np.full(len(index), np.nan)
    within_all = np.full(len(index), np.nan)
    u, labels, rows, kept, _ = _grouped(generated["descriptor"][index], identities)
    if len(kept) >= 2:
        within, between = per_clip_similarity(u, labels)
        gap[rows], within_all[rows] = within - between, within
    return {"speaker_gap": gap, "within_speaker_cosine": within_all}


def evaluate(ctx: MetricContext, split: str) -> dict:
    generated, _ = ctx.features("dlib")
    index = ctx.evalset.generated_index[split]
    return _figures(ctx, generated["descriptor"][index], ctx.evalset.generated.identities[index],
                    ctx.split_clusters(split)[0], split)


def reference(ctx: MetricContext) -> dict:
    _, real = ctx.features("dlib")
    faces = np.unique(np.concatenate([ctx.evalset.real_index[s] for s in ctx.evalset.splits]))
    return _figures(ctx, real["descriptor"][faces], ctx.evalset.real.identities[faces], ctx.real_clusters(faces),
                    "real")


METRIC = register(Metric(
    name="voice_dependence",
    description="does the face follow the voice: ICC(1) of generated-face descriptors between speakers, the "
                "same-vs-other-speaker cosine gap with a permutation p-value, within-speaker consistency",
    requires="dlib face models (face-recognition-models package)",
    columns=("icc", "speaker_gap", "p_value"),
    extractors=lambda options: ("dlib",),
    evaluate=evaluate,
    reference=reference,
    per_clip=per_clip,
    descriptor_only=True,
))
