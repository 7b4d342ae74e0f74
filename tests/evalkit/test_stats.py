"""Metric arithmetic: Fréchet distance against pytorch-fid and closed forms, KID, precision/recall, intervals."""

from __future__ import annotations

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance, compute_statistics_of_path

from evalkit.stats import (
    GramPair,
    bootstrap_interval,
    frechet_distance,
    frechet_from_gram,
    kid_from_gram,
    knn_manifolds,
    read_stats,
    seeded_rng,
    statistics,
    wilson_interval,
    write_stats,
)


def features(n: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return rng.normal(size=(n, dim)) @ mixing + shift


@pytest.mark.parametrize("n, dim", [(400, 32), (300, 128)])
def test_frechet_distance_equals_pytorch_fid(n, dim):
    a, b = statistics(features(n, dim, 0)), statistics(features(n, dim, 1, shift=0.3))
    ours = frechet_distance(*a, *b)
    theirs = calculate_frechet_distance(*a, *b)
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert ours > 0


def test_frechet_closed_forms():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    shared = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]])
    assert frechet_distance(mu1, shared, mu2, shared) == pytest.approx(5.0, abs=1e-9)
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum() + 5.0
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(mu1, shared, mu1, shared) == pytest.approx(0.0, abs=1e-9)


def test_frechet_stays_finite_for_singular_covariances():
    x, y = features(20, 64, 0), features(25, 64, 1, shift=0.5)
    value = frechet_distance(*statistics(x), *statistics(y))
    assert np.isfinite(value) and value > 0
    assert frechet_from_gram(GramPair.of(x, y)) == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("n, m, dim", [(200, 150, 16), (30, 40, 64)])
def test_gram_frechet_equals_statistics_form_on_any_resample(n, m, dim):
    x, y = features(n, dim, 2), features(m, dim, 3, shift=0.2)
    gram = GramPair.of(x, y)
    assert frechet_from_gram(gram) == pytest.approx(frechet_distance(*statistics(x), *statistics(y)), rel=1e-6)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, n, n), rng.integers(0, m, m)
    resampled = frechet_distance(*statistics(x[i]), *statistics(y[j]))
    assert frechet_from_gram(gram, i, j) == pytest.approx(resampled, rel=1e-6)


def brute_force_kid(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_kid_equals_the_unbiased_estimator_written_out():
    x, y = features(12, 5, 4), features(9, 5, 5, shift=1.0)
    value = kid_from_gram(GramPair.of(x, y), subset_size=1000, subsets=10, rng=np.random.default_rng(0))
    assert value == pytest.approx(brute_force_kid(x, y), rel=1e-10)
    assert value > 0


def test_kid_subsets_are_seeded_and_near_zero_for_one_distribution():
    x, y = features(300, 8, 6), features(300, 8, 7)
    gram = GramPair.of(x, y)
    first = kid_from_gram(gram, 50, 20, seeded_rng(0, "kid"))
    assert first == kid_from_gram(gram, 50, 20, seeded_rng(0, "kid"))
    assert first != kid_from_gram(gram, 50, 20, seeded_rng(1, "kid"))
    shifted = kid_from_gram(GramPair.of(x, features(300, 8, 8, shift=2.0)), 50, 20, seeded_rng(0, "kid"))
    assert abs(first) < 0.1 * shifted


def test_precision_recall_on_hand_made_points():
    grid = np.array([[i, j] for i in range(5) for j in range(5)], dtype=float)
    inside = grid[:10] + 0.1
    far = grid + 100.0
    same = knn_manifolds(GramPair.of(grid, grid), k=3)
    assert same.precision.all() and same.recall.all() and same.coverage.all()
    apart = knn_manifolds(GramPair.of(far, grid), k=3)
    assert not apart.precision.any() and not apart.recall.any() and not apart.coverage.any()
    assert not apart.density.any()
    near = knn_manifolds(GramPair.of(inside, grid), k=3)
    assert near.precision.all()
    assert 0 < near.recall.mean() < 1 and 0 < near.coverage.mean() < 1


def test_wilson_interval_known_values():
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(0).normal(2.0, 1.0, 400)
    first = bootstrap_interval(lambda i: values[i].mean(), [400], 300, seeded_rng(0, "m"))
    assert first == bootstrap_interval(lambda i: values[i].mean(), [400], 300, seeded_rng(0, "m"))
    assert first[0] < values.mean() < first[1]
    assert first[1] - first[0] == pytest.approx(2 * 1.96 / np.sqrt(400), rel=0.25)


def test_stats_files_are_pytorch_fid_npz(tmp_path):
    mu, sigma = statistics(features(50, 6, 9))
    path = write_stats(tmp_path / "real.npz", mu, sigma)
    theirs = compute_statistics_of_path(str(path), None, 1, 6, "cpu")
    np.testing.assert_array_equal(theirs[0], mu)
    np.testing.assert_array_equal(theirs[1], sigma)
    ours = read_stats(path)
    np.testing.assert_array_equal(ours[1], sigma)


def test_bias_corrected_bootstrap_contains_a_biased_estimate():
    """The share of distinct clips is 1 on the sample but about 0.632 in every resample: the percentile interval
    misses the estimate, the bias-corrected one is centred on it."""
    def distinct_share(i):
        return len(np.unique(i)) / len(i)

    plain = bootstrap_interval(distinct_share, [400], 200, np.random.default_rng(0))
    corrected = bootstrap_interval(distinct_share, [400], 200, np.random.default_rng(0), estimate=1.0)
    assert plain[1] < 0.75
    assert corrected[0] <= 1.0 <= corrected[1]
    assert corrected[1] - corrected[0] == pytest.approx(plain[1] - plain[0])
