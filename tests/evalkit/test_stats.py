"""Metric arithmetic: Fréchet distance against pytorch-fid and closed forms, KID, precision/recall, intervals."""

from __future__ import annotations

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance, compute_statistics_of_path

from evalkit.errors import EvalError
from evalkit.stats import (
    Clusters,
    GramPair,
    ManifoldDistances,
    cluster_draws,
    cluster_mean_replicates,
    frechet_distance,
    frechet_distance_of_features,
    frechet_from_gram,
    half_sample_replicates,
    kid_from_gram,
    knn_manifolds,
    mean_figure,
    percentile_interval,
    proportion_figure,
    read_stats,
    recentred_interval,
    seeded_rng,
    statistics,
    wilson_interval,
    write_stats,
)
from tests.evalkit.support import loop_replicates


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
    clusters = Clusters.singletons(400)
    first = percentile_interval(cluster_mean_replicates(values, clusters, 300, seeded_rng(0, "m")))
    assert first == percentile_interval(cluster_mean_replicates(values, clusters, 300, seeded_rng(0, "m")))
    assert first[0] < values.mean() < first[1]
    assert first[1] - first[0] == pytest.approx(2 * 1.96 / np.sqrt(400), rel=0.25)


def test_vectorised_cluster_bootstrap_equals_the_loop_over_the_same_draws():
    rng = np.random.default_rng(1)
    values = rng.normal(size=60)
    (clusters,) = Clusters.joint(rng.integers(0, 13, 60).tolist(), by="group")
    fast = cluster_mean_replicates(values, clusters, 50, seeded_rng(3, "x"))
    draws = cluster_draws([clusters], 50, seeded_rng(3, "x"))
    slow = [values[clusters.rows(d)].mean() for block in draws for d in block]
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    loop = loop_replicates(lambda i: values[i].mean(), [clusters], 50, seeded_rng(3, "x"))
    np.testing.assert_allclose(fast, loop, rtol=1e-12)


def test_cluster_rows_return_whole_clusters_on_every_side():
    gen, real = Clusters.joint(["a", "b", "a", "c", "b"], ["a", "b", "c"], by="group")
    assert gen.count == real.count == 3
    np.testing.assert_array_equal(gen.rows(np.array([0, 0, 2])), [0, 2, 0, 2, 3])  # cluster a twice, then c
    np.testing.assert_array_equal(real.rows(np.array([0, 0, 2])), [0, 0, 2])
    assert gen.describe() == {"by": "group", "clusters": 3} and not gen.independent


def test_clustered_flags_get_the_width_of_their_clusters_not_their_rows():
    """50 identical clips per group: 10 groups carry the information of 10 clips, not of 500."""
    flags = np.repeat(np.arange(10) < 5, 50)
    (clusters,) = Clusters.joint(np.repeat(np.arange(10), 50).tolist(), by="group")
    clustered = proportion_figure(flags, None, clusters, 2000, seeded_rng(0, "c"))
    naive = proportion_figure(flags, None)
    assert naive["ci_method"] == "wilson" and clustered["ci_method"].startswith("cluster bootstrap, percentile")
    assert clustered["clusters"] == {"by": "group", "clusters": 10} and clustered["proportion"]
    width = clustered["ci95"][1] - clustered["ci95"][0]
    assert width == pytest.approx(2 * 1.96 * np.sqrt(0.25 / 10), rel=0.2)
    assert width > 3 * (naive["ci95"][1] - naive["ci95"][0])
    independent = proportion_figure(flags, None, Clusters.singletons(500), 200, seeded_rng(0, "c"))
    assert independent["ci95"] == naive["ci95"]  # one row per cluster: Wilson, as without clusters


def test_mean_figure_names_its_method_and_clusters():
    (clusters,) = Clusters.joint([0, 0, 1, 1, 2, 2], by="face")
    cell = mean_figure(np.arange(6.0), None, clusters, 100, seeded_rng(0, "m"))
    assert cell["ci_method"] == "cluster bootstrap, percentile (B=100)" and cell["clusters"]["by"] == "face"


def test_recentred_interval_contains_a_biased_estimate():
    """The share of distinct clips is 1 on the sample but about 0.632 in every resample: the percentile interval
    misses the estimate, the re-centred one is centred on it."""
    def distinct_share(i):
        return len(np.unique(i)) / len(i)

    replicates = loop_replicates(distinct_share, [Clusters.singletons(400)], 200,
                                              np.random.default_rng(0))
    plain, recentred = percentile_interval(replicates), recentred_interval(1.0, replicates)
    assert plain[1] < 0.75
    assert recentred[0] <= 1.0 <= recentred[1]
    assert recentred[1] - recentred[0] == pytest.approx(plain[1] - plain[0])
    assert recentred_interval(0.01, np.array([0.5, 0.6, 0.7]))[0] == 0.0  # a distance: truncated at 0


def test_stats_files_are_pytorch_fid_npz(tmp_path):
    mu, sigma = statistics(features(50, 6, 9))
    path = write_stats(tmp_path / "real.npz", mu, sigma)
    theirs = compute_statistics_of_path(str(path), None, 1, 6, "cpu")
    np.testing.assert_array_equal(theirs[0], mu)
    np.testing.assert_array_equal(theirs[1], sigma)
    ours = read_stats(path)
    np.testing.assert_array_equal(ours[1], sigma)


# ---------------------------------------------------------------------------------------------------------------
# tiny sets, identical sets, exactness below d samples
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, dim", [(20, 512), (20, 64), (300, 32),
                                    pytest.param(20, 2048, marks=pytest.mark.slow)])
def test_identical_sets_are_at_distance_zero(n, dim):
    x = features(n, dim, 11)
    a = statistics(x)
    assert frechet_distance(*a, *a) == pytest.approx(0.0, abs=1e-9 * np.trace(a[1]))
    assert frechet_distance_of_features(x, x) == pytest.approx(0.0, abs=1e-9 * np.trace(a[1]))
    assert frechet_distance(*a, *a) >= 0 and frechet_distance_of_features(x, x) >= 0


def test_distance_is_never_negative():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = features(int(rng.integers(2, 30)), 16, int(rng.integers(1000)))
        y = x + rng.normal(0, 1e-9, x.shape)  # almost identical: rounding could push it below 0
        assert frechet_distance(*statistics(x), *statistics(y)) >= 0
        assert frechet_from_gram(GramPair.of(x, y)) >= 0


def test_below_d_samples_two_independent_computations_agree():
    """The Gram form (samples' span) and the statistics form (d x d, rounding-level eigenvalues set to 0) agree to
    ~1e-15; pytorch-fid's sqrtm carries ~1e-7 relative error there."""
    x, y = features(20, 512, 12), features(25, 512, 13, shift=0.2)
    gram = frechet_from_gram(GramPair.of(x, y))
    stats = frechet_distance(*statistics(x), *statistics(y))
    assert gram == pytest.approx(stats, rel=1e-12)
    assert frechet_distance_of_features(x, y) == gram


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_samples_is_one_clear_error(n):
    x = features(5, 8, 14)[:n]
    with pytest.raises(EvalError, match="at least 2 samples"):
        statistics(x)
    with pytest.raises(EvalError, match="at least 2 samples"):
        frechet_distance_of_features(x, features(5, 8, 15))
    if n:
        with pytest.raises(EvalError, match="at least 2 samples"):
            kid_from_gram(GramPair.of(x, features(5, 8, 15)), 1000, 10, np.random.default_rng(0))


def test_two_samples_work():
    x, y = features(2, 8, 16), features(2, 8, 17, shift=1.0)
    assert frechet_distance_of_features(x, y) == pytest.approx(frechet_distance(*statistics(x), *statistics(y)))
    assert np.isfinite(kid_from_gram(GramPair.of(x, y), 1000, 10, np.random.default_rng(0)))


def test_npz_with_nan_is_refused_on_writing_and_reading(tmp_path):
    mu, sigma = np.zeros(3), np.full((3, 3), np.nan)
    with pytest.raises(EvalError, match="NaN"):
        write_stats(tmp_path / "bad.npz", mu, sigma)
    np.savez(tmp_path / "theirs.npz", mu=mu, sigma=sigma)  # as another tool writes one image's statistics
    with pytest.raises(EvalError, match="NaN"):
        read_stats(tmp_path / "theirs.npz")
    np.savez(tmp_path / "shape.npz", mu=np.zeros(3), sigma=np.zeros((2, 2)))
    with pytest.raises(EvalError, match="do not match"):
        read_stats(tmp_path / "shape.npz")


# ---------------------------------------------------------------------------------------------------------------
# precision / recall intervals: coverage by simulation
# ---------------------------------------------------------------------------------------------------------------

def test_precision_interval_covers_its_conditional_estimand():
    """With the real set (hence its k-NN manifold) fixed, precision is the share of generated samples inside it;
    the interval's coverage of the true share (Monte Carlo over 200,000 draws) is close to the nominal 95 %."""
    rng = np.random.default_rng(20)
    dim, k = 4, 3
    real = rng.normal(size=(200, dim))
    gram_of_real = GramPair.of(real[:1], real)
    radii = np.sqrt(np.sort(np.clip(np.diag(gram_of_real.yy)[:, None] + np.diag(gram_of_real.yy)[None, :]
                                    - 2 * gram_of_real.yy, 0, None), axis=1)[:, k])

    def inside(points: np.ndarray) -> np.ndarray:
        d2 = (points**2).sum(1)[:, None] + (real**2).sum(1)[None, :] - 2 * points @ real.T
        return (np.sqrt(np.clip(d2, 0, None)) <= radii[None, :]).any(axis=1)

    truth = np.mean(np.concatenate([inside(rng.normal(0.3, 1.1, (20_000, dim))) for _ in range(10)]))
    covered = 0
    trials = 400
    for _ in range(trials):
        generated = rng.normal(0.3, 1.1, (100, dim))
        precision = knn_manifolds(GramPair.of(generated, real), k).precision
        np.testing.assert_array_equal(precision, inside(generated))
        low, high = proportion_figure(precision, None)["ci95"]
        covered += low <= truth <= high
    assert 0.92 <= covered / trials <= 0.98


def test_a_single_cluster_falls_back_to_rows_and_says_so():
    (one,) = Clusters.joint(["g"] * 6, by="group")
    cell = proportion_figure(np.array([1, 1, 0, 1, 1, 0], bool), None, one, 100, seeded_rng(0, "one"))
    assert cell["ci_method"] == "wilson (a single cluster: rows treated as independent)"
    assert cell["ci95"] == pytest.approx(list(wilson_interval(4, 6)))
    mean = mean_figure(np.arange(6.0), None, one, 100, seeded_rng(0, "one"))
    assert mean["ci95"][0] < mean["ci95"][1] and "single cluster" in mean["ci_method"]


def _precision_recall(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    manifolds = knn_manifolds(GramPair.of(x, y), k)
    precision, recall = manifolds.precision, manifolds.recall
    return np.array([precision.mean(), recall.mean()])


@pytest.mark.slow
def test_half_sampling_intervals_of_precision_and_recall_cover():
    """Both sets random: the Wilson interval treats each flag as independent and covers ~0.87; half-sampling both
    sets (re-centred percentiles) covers at least the nominal 95 % (150 datasets, truth by Monte Carlo)."""
    rng = np.random.default_rng(30)
    dim, k, n, m = 8, 3, 150, 150

    def draw() -> tuple[np.ndarray, np.ndarray]:
        return rng.normal(0.3, 1.1, (n, dim)), rng.normal(0, 1, (m, dim))

    truth = np.mean([_precision_recall(*draw(), k) for _ in range(400)], axis=0)
    covered, wilson_covered, trials = np.zeros(2), np.zeros(2), 150
    for _ in range(trials):
        x, y = draw()
        estimate = _precision_recall(x, y, k)
        replicates = half_sample_replicates(lambda i, j, x=x, y=y: _precision_recall(x[i], y[j], k),
                                            (Clusters.singletons(n), Clusters.singletons(m)), 100, rng)
        for column in range(2):
            low, high = recentred_interval(estimate[column], replicates[:, column])
            covered[column] += low <= truth[column] <= high
            w_low, w_high = wilson_interval(int(round(estimate[column] * (n, m)[column])), (n, m)[column])
            wilson_covered[column] += w_low <= truth[column] <= w_high
    assert np.all(covered / trials >= 0.93), covered / trials
    assert np.all(wilson_covered / trials < 0.93), wilson_covered / trials  # what the issue measured (0.85)


def test_half_samples_hold_half_of_the_clusters_without_repeats():
    gen, real = Clusters.joint(["a", "a", "b", "c", "c", "d"], ["a", "b", "c", "d"], by="group")
    seen = []
    half_sample_replicates(lambda i, j: seen.append((i, j)) or 0.0, (gen, real), 20, np.random.default_rng(0))
    for i, j in seen:
        assert len(np.unique(i)) == len(i) and len(np.unique(j)) == len(j) == 2  # two of the four groups, once each
        assert {gen.codes[r] for r in i} == {real.codes[r] for r in j}  # the same groups on both sides


def test_half_sample_manifolds_index_the_distances_computed_once():
    """A half-sample's manifolds from the distances of the whole sets equal those recomputed from the half's own Gram
    matrices (the per-replicate form evalkit used), bit for bit: duplicated rows and a set against itself put samples
    exactly on ball boundaries, where any other rounding would flip them."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 6))
    x[7] = x[3]
    y = np.concatenate([x[:10], rng.normal(size=(25, 6)) + 0.3])
    gram = GramPair.of(x, y)
    distances = ManifoldDistances.of(gram)
    for _ in range(10):
        i, j = np.sort(rng.choice(40, 20, replace=False)), np.sort(rng.choice(35, 17, replace=False))
        xx, yy, xy = gram.xx[np.ix_(i, i)], gram.yy[np.ix_(j, j)], gram.xy[np.ix_(i, j)]
        cross = np.sqrt(np.clip(np.diag(xx)[:, None] + np.diag(yy)[None, :] - 2 * xy, 0, None))
        radii_x = np.sqrt(np.partition(np.clip(np.diag(xx)[:, None] + np.diag(xx)[None, :] - 2 * xx, 0, None), 3,
                                       axis=1)[:, 3])
        radii_y = np.sqrt(np.partition(np.clip(np.diag(yy)[:, None] + np.diag(yy)[None, :] - 2 * yy, 0, None), 3,
                                       axis=1)[:, 3])
        half = distances.manifolds(3, i, j)
        np.testing.assert_array_equal(half.precision, (cross <= radii_y).any(axis=1))
        np.testing.assert_array_equal(half.density, (cross <= radii_y).sum(axis=1) / 3)
        np.testing.assert_array_equal(half.recall, (cross <= radii_x[:, None]).any(axis=0))
        np.testing.assert_array_equal(half.coverage, cross.min(axis=0) <= radii_y)
    whole = distances.manifolds(3)
    assert whole.precision[:10].all() and whole.coverage[:10].all()  # x's first rows are y's: on the boundary
