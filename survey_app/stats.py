"""Statistics of a rating study: confidence intervals, a rater x item bootstrap, agreement and sample size.

Pure functions on plain sequences; survey_app.results feeds them from the database.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import choix
import krippendorff
import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_CHUNK = 256


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """mean +- t(1-alpha/2, n-1) * s / sqrt(n); None below two values."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return None
    half_width = stats.t.ppf(0.5 + confidence / 2, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size)
    return float(data.mean() - half_width), float(data.mean() + half_width)


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    if trials == 0:
        return None
    z = stats.norm.ppf(0.5 + confidence / 2)
    share = successes / trials
    denominator = 1 + z**2 / trials
    centre = (share + z**2 / (2 * trials)) / denominator
    half_width = z * math.sqrt(share * (1 - share) / trials + z**2 / (4 * trials**2)) / denominator
    return max(0.0, float(centre - half_width)), min(1.0, float(centre + half_width))


def clustered_bootstrap_interval(
    values: Sequence[float],
    rater_ids: Sequence[Hashable],
    item_ids: Sequence[Hashable],
    replicates: int,
    seed: int,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """Percentile CI of the mean when raters and items are both resampled with replacement (two-way bootstrap).

    Each replicate weights a vote by (times its rater was drawn) x (times its item was drawn), so a vote
    counts only when both its rater and its item are in the resample.
    """
    scores = np.asarray(values, dtype=float)
    if scores.size < 2:
        return None
    means = [
        (weights @ scores) / weights.sum(axis=1)
        for weights in clustered_bootstrap_weights(rater_ids, item_ids, replicates, seed)
    ]
    return _percentile_interval(np.concatenate(means), confidence)


def clustered_bootstrap_weights(
    rater_ids: Sequence[Hashable], item_ids: Sequence[Hashable], replicates: int, seed: int
) -> Iterator[np.ndarray]:
    """The two-way (rater x item) bootstrap's vote weights, in chunks of at most BOOTSTRAP_CHUNK replicates: int64
    arrays (chunk, votes), a vote's weight = (draws of its rater) x (draws of its item); replicates whose weights are
    all zero are left out."""
    rater_index = np.unique(np.asarray(rater_ids, dtype=object).astype(str), return_inverse=True)[1]
    item_index = np.unique(np.asarray(item_ids, dtype=object).astype(str), return_inverse=True)[1]
    n_raters, n_items = rater_index.max() + 1, item_index.max() + 1
    generator = np.random.default_rng(seed)
    for start in range(0, replicates, BOOTSTRAP_CHUNK):
        size = min(BOOTSTRAP_CHUNK, replicates - start)
        rater_weights = generator.multinomial(n_raters, np.full(n_raters, 1 / n_raters), size=size)
        item_weights = generator.multinomial(n_items, np.full(n_items, 1 / n_items), size=size)
        vote_weights = rater_weights[:, rater_index] * item_weights[:, item_index]
        yield vote_weights[vote_weights.sum(axis=1) > 0]


def clustered_bootstrap_difference(
    values: Sequence[float],
    in_second: Sequence[bool],
    rater_ids: Sequence[Hashable],
    item_ids: Sequence[Hashable],
    replicates: int,
    seed: int,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """Percentile CI of mean(second group) - mean(first group) under the two-way bootstrap of raters and items
    (items shared by the groups, e.g. the clips of two arms, are drawn once for both). None when a group is empty."""
    scores = np.asarray(values, dtype=float)
    second = np.asarray(in_second, dtype=bool)
    if second.all() or not second.any():
        return None
    differences = []
    for weights in clustered_bootstrap_weights(rater_ids, item_ids, replicates, seed):
        first_total, second_total = weights[:, ~second].sum(axis=1), weights[:, second].sum(axis=1)
        kept = (first_total > 0) & (second_total > 0)
        differences.append(
            (weights[kept][:, second] @ scores[second]) / second_total[kept]
            - (weights[kept][:, ~second] @ scores[~second]) / first_total[kept]
        )
    return _percentile_interval(np.concatenate(differences), confidence)


def _percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float] | None:
    if replicates.size == 0:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def bradley_terry(wins: np.ndarray, regularization: float = 0.01) -> np.ndarray:
    """Bradley-Terry log-strengths (natural log, centred to mean 0) from a (systems, systems) float matrix whose
    [i, j] counts the comparisons i won against j (a tie counted as half a win each way), by `choix`'s iterative
    Luce spectral ranking (Maystre & Grossglauser, NeurIPS 2015) with a small Gaussian prior so that a system that
    never lost or never won still gets a finite score."""
    return np.asarray(choix.ilsr_pairwise_dense(np.asarray(wins, dtype=float), alpha=regularization), dtype=float)


@dataclass(frozen=True)
class Agreement:
    """Krippendorff's alpha, or why there is none yet."""

    alpha: float | None
    reason: str | None  # set when alpha is None
    units: int  # units (items) with at least two values: the pairable ones
    ratings: int  # values in those units


def krippendorff_alpha(
    ratings: Sequence[tuple[Hashable, Hashable]], categories: Sequence[Hashable], ordinal: bool
) -> Agreement:
    """Krippendorff's alpha of (unit, value) pairs, nominal or ordinal, computed by the `krippendorff` package
    (Castro's implementation of Krippendorff 2011, "Computing Krippendorff's alpha-reliability").

    `categories` gives every possible value in scale order (the order matters only for the ordinal metric). Units with
    a single value are unpairable and ignored. Alpha is undefined (None, with the reason) without a pairable unit or
    when every pairable value is the same (no expected disagreement).
    """
    category_index = {category: index for index, category in enumerate(categories)}
    by_unit: dict[Hashable, list[int]] = {}
    for unit, value in ratings:
        by_unit.setdefault(unit, []).append(category_index[value])
    pairable = [values for values in by_unit.values() if len(values) >= 2]
    units, values = len(pairable), sum(len(unit_values) for unit_values in pairable)
    if not ratings:
        return Agreement(None, "no included answers yet", 0, 0)
    if not pairable:
        return Agreement(None, "no item has been rated by two raters yet", 0, 0)
    if len({value for unit_values in pairable for value in unit_values}) < 2:
        return Agreement(None, "every rating of the items rated twice is the same value (no variation)", units, values)
    # The package takes a raters x units matrix; which rater gave a value does not enter alpha, so row k holds the
    # k-th value of each unit.
    matrix = np.full((max(len(unit_values) for unit_values in pairable), units), np.nan)
    for column, unit_values in enumerate(pairable):
        matrix[: len(unit_values), column] = unit_values
    alpha = krippendorff.alpha(
        reliability_data=matrix,
        level_of_measurement="ordinal" if ordinal else "nominal",
        value_domain=list(range(len(categories))),
    )
    return Agreement(float(alpha), None, units, values)


def rater_icc(values: Sequence[float], rater_ids: Sequence[Hashable]) -> float | None:
    """One-way random-effects ICC(1) of votes grouped by rater (unequal group sizes), floored at 0."""
    groups: dict[Hashable, list[float]] = {}
    for value, rater in zip(values, rater_ids, strict=True):
        groups.setdefault(rater, []).append(float(value))
    n_groups, n_votes = len(groups), len(values)
    if n_groups < 2 or n_votes <= n_groups:
        return None
    grand_mean = float(np.mean(values))
    between = sum(len(group) * (np.mean(group) - grand_mean) ** 2 for group in groups.values()) / (n_groups - 1)
    within = sum(((np.asarray(group) - np.mean(group)) ** 2).sum() for group in groups.values()) / (n_votes - n_groups)
    mean_group_size = (n_votes - sum(len(group) ** 2 for group in groups.values()) / n_votes) / (n_groups - 1)
    denominator = between + (mean_group_size - 1) * within
    if denominator <= 0:
        return None
    return max(0.0, float((between - within) / denominator))


def votes_for_half_width(sd: float, half_width: float, confidence: float = CONFIDENCE) -> int:
    """Smallest number of independent votes whose t-interval half-width is at most `half_width`."""
    if sd <= 0 or half_width <= 0:
        raise ValueError("sd and half_width must be positive")
    z = stats.norm.ppf(0.5 + confidence / 2)
    votes = max(2, math.ceil((z * sd / half_width) ** 2))
    while stats.t.ppf(0.5 + confidence / 2, votes - 1) * sd / math.sqrt(votes) > half_width:
        votes += 1
    return votes


@dataclass(frozen=True)
class RaterPlan:
    half_width: float
    independent_votes: int
    design_effect: float
    votes_needed: int
    raters_needed: int


def plan_raters(sd: float, half_width: float, votes_per_rater: int, icc: float) -> RaterPlan:
    """Raters needed for a MOS CI of +-half_width when each rater gives `votes_per_rater` correlated votes.

    Clustering inflates the variance by the design effect 1 + (m - 1) * ICC (m votes per rater).
    """
    if votes_per_rater < 1 or not 0 <= icc <= 1:
        raise ValueError("votes_per_rater must be >= 1 and icc within [0, 1]")
    independent = votes_for_half_width(sd, half_width)
    design_effect = 1 + (votes_per_rater - 1) * icc
    needed = math.ceil(independent * design_effect)
    return RaterPlan(half_width, independent, design_effect, needed, math.ceil(needed / votes_per_rater))


def binomial_p_above_chance(successes: int, trials: int, chance: float) -> float | None:
    """One-sided exact binomial test: P(at least `successes` correct | guessing at `chance`)."""
    if trials == 0:
        return None
    return float(stats.binomtest(successes, trials, chance, alternative="greater").pvalue)


def binomial_p_two_sided(successes: int, trials: int, share: float = 0.5) -> float | None:
    """Two-sided exact binomial test of `successes` out of `trials` against `share` (e.g. a position bias)."""
    if trials == 0:
        return None
    return float(stats.binomtest(successes, trials, share).pvalue)
