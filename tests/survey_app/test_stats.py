import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from survey_app import stats

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers x 12 units, with missing values;
# the paper gives alpha = 0.743 (nominal) and 0.815 (ordinal) for these data.
KRIPPENDORFF_EXAMPLE = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _example_ratings() -> list[tuple[int, int]]:
    return [(unit, value) for row in KRIPPENDORFF_EXAMPLE for unit, value in enumerate(row) if value is not None]


def test_krippendorff_alpha_matches_the_published_example() -> None:
    nominal = stats.krippendorff_alpha(_example_ratings(), [1, 2, 3, 4, 5], ordinal=False)
    ordinal = stats.krippendorff_alpha(_example_ratings(), [1, 2, 3, 4, 5], ordinal=True)
    assert nominal.alpha == pytest.approx(0.743, abs=5e-4)
    assert ordinal.alpha == pytest.approx(0.815, abs=5e-4)
    assert ordinal.reason is None and ordinal.units == 11  # unit 12 has one value: unpairable


def test_krippendorff_alpha_is_one_for_perfect_agreement_and_says_why_when_undefined() -> None:
    perfect = [(0, "yes"), (0, "yes"), (1, "no"), (1, "no")]
    assert stats.krippendorff_alpha(perfect, ["yes", "no", "not_sure"], ordinal=False).alpha == pytest.approx(1.0)
    unpaired = stats.krippendorff_alpha([(0, "yes"), (1, "no")], ["yes", "no"], ordinal=False)
    assert unpaired.alpha is None and "two raters" in unpaired.reason
    constant = stats.krippendorff_alpha([(0, "3"), (0, "3"), (1, "3"), (1, "3")], list("12345"), ordinal=True)
    assert constant.alpha is None and "no variation" in constant.reason
    assert stats.krippendorff_alpha([], ["yes"], ordinal=False).reason == "no included answers yet"


def test_wilson_interval_of_the_seed_study_yes_share() -> None:
    # 34 % "yes" of 42 x 32 = 1,344 votes: the reference notes give [31.5 %, 36.6 %].
    low, high = stats.wilson_interval(457, 1344)
    assert (round(low * 100, 1), round(high * 100, 1)) == (31.5, 36.6)
    assert stats.wilson_interval(0, 10)[0] == 0.0
    assert stats.wilson_interval(0, 0) is None


def test_t_interval_uses_the_t_quantile() -> None:
    values = [1, 2, 3, 4, 5]
    half = scipy_stats.t.ppf(0.975, 4) * np.std(values, ddof=1) / math.sqrt(5)
    assert stats.t_interval(values) == pytest.approx((3 - half, 3 + half))
    assert stats.t_interval([3]) is None


def _votes_with_rater_bias(seed: int) -> tuple[list[float], list[int], list[int]]:
    generator = np.random.default_rng(seed)
    bias = generator.normal(0, 1.0, size=20)
    values, raters, items = [], [], []
    for rater in range(20):
        for item in range(16):
            values.append(3 + bias[rater] + generator.normal(0, 0.5))
            raters.append(rater)
            items.append(item)
    return values, raters, items


def test_clustered_bootstrap_is_wider_than_the_naive_interval_when_raters_differ() -> None:
    values, raters, items = _votes_with_rater_bias(0)
    naive_low, naive_high = stats.t_interval(values)
    low, high = stats.clustered_bootstrap_interval(values, raters, items, replicates=1000, seed=1)
    assert low < np.mean(values) < high
    assert (high - low) > 2 * (naive_high - naive_low)
    assert stats.clustered_bootstrap_interval(values, raters, items, 1000, 1) == (low, high)


def test_rater_icc_is_high_with_rater_bias_and_zero_without() -> None:
    values, raters, _ = _votes_with_rater_bias(0)
    assert stats.rater_icc(values, raters) > 0.6
    generator = np.random.default_rng(2)
    noise = list(generator.normal(3, 1, size=400))
    assert stats.rater_icc(noise, [index % 20 for index in range(400)]) < 0.05


def _achieved_half_width(sd: float, votes: int) -> float:
    return scipy_stats.t.ppf(0.975, votes - 1) * sd / math.sqrt(votes)


def test_votes_for_half_width_is_the_smallest_sufficient_n() -> None:
    for sd, half_width in [(1.0, 0.1), (1.0, 0.2), (0.8, 0.3)]:
        votes = stats.votes_for_half_width(sd, half_width)
        assert _achieved_half_width(sd, votes) <= half_width < _achieved_half_width(sd, votes - 1)


def test_plan_raters_applies_the_design_effect() -> None:
    independent = stats.plan_raters(1.0, 0.2, votes_per_rater=32, icc=0.0)
    clustered = stats.plan_raters(1.0, 0.2, votes_per_rater=32, icc=0.1)
    assert clustered.design_effect == pytest.approx(1 + 31 * 0.1)
    assert clustered.votes_needed == math.ceil(independent.independent_votes * clustered.design_effect)
    assert clustered.raters_needed == math.ceil(clustered.votes_needed / 32)
    with pytest.raises(ValueError):
        stats.plan_raters(1.0, 0.2, votes_per_rater=32, icc=1.5)


def test_binomial_p_above_chance() -> None:
    # HYPE's qualification: >= 65 of 100 correct by guessing has p = 0.0018 (reference notes, section 9).
    assert stats.binomial_p_above_chance(65, 100, 0.5) == pytest.approx(0.0018, abs=1e-4)
    assert stats.binomial_p_above_chance(0, 0, 0.5) is None


def test_bradley_terry_recovers_known_strengths_from_expected_wins() -> None:
    """With win counts equal to their expectations under known log-strengths, the fit returns them (mean 0)."""
    truth = np.array([-0.7, 0.1, 0.6])
    comparisons = 4000
    wins = np.array(
        [[0 if i == j else comparisons / (1 + np.exp(truth[j] - truth[i])) for j in range(3)] for i in range(3)]
    )
    assert np.allclose(stats.bradley_terry(wins, regularization=1e-6), truth, atol=0.01)


def test_clustered_bootstrap_difference_holds_the_difference_and_needs_both_groups() -> None:
    rng = np.random.default_rng(0)
    raters = np.repeat(np.arange(20), 10)
    clips = np.tile(np.arange(10), 20)
    second = np.tile([False, True], 100)
    values = (rng.random(200) < np.where(second, 0.5, 0.8)).astype(float)
    low, high = stats.clustered_bootstrap_difference(values, second, raters, clips, 500, 1)
    observed = values[second].mean() - values[~second].mean()
    assert low < observed < high < 0
    assert stats.clustered_bootstrap_difference(values, np.zeros(200, bool), raters, clips, 50, 1) is None


def test_two_sided_binomial_test_of_position_bias() -> None:
    assert stats.binomial_p_two_sided(50, 100) == 1.0
    assert stats.binomial_p_two_sided(80, 100) < 1e-8
    assert stats.binomial_p_two_sided(0, 0) is None
