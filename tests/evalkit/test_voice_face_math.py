"""The arithmetic of the voice→face metrics on small fixed arrays: checked against the prdc package, torch-fidelity,
published values and brute force."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest

from evalkit.gallery import Gallery, unit_rows
from evalkit.metrics.craniofacial import (
    RATIOS,
    all_pairings_error,
    column_correlations,
    craniofacial_ratios,
    weighted_column_correlations,
)
from evalkit.metrics.forced_matching import elementary_symmetric, matching_probabilities
from evalkit.metrics.memorization import authentic, data_copying, training_nearer
from evalkit.metrics.retrieval import true_ranks, voice_blind_recall
from evalkit.metrics.vendi import vendi_replicates, vendi_score
from evalkit.metrics.voice_dependence import icc1, per_clip_similarity, permutation_test, permutation_units
from evalkit.stats import Clusters, GramPair, cluster_resamples, knn_manifolds, seeded_rng
from tests.evalkit.support import loop_replicates


def _sets(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(120, 16)).astype(np.float32), (rng.normal(size=(90, 16)) + 0.4).astype(np.float32)


@pytest.mark.parametrize("k", [3, 5])
def test_knn_manifolds_match_the_prdc_package(k):
    prdc = pytest.importorskip("prdc")
    fake, real = _sets()
    ours = knn_manifolds(GramPair.of(fake, real), k)
    theirs = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    for name in ("precision", "recall", "density", "coverage"):  # continuous data: no boundary ties, < equals <=
        assert getattr(ours, name).mean() == pytest.approx(theirs[name], abs=1e-9), name


def test_knn_precision_recall_match_torch_fidelity():
    torch = pytest.importorskip("torch")
    metric_prc = pytest.importorskip("torch_fidelity.metric_prc")
    fake, real = _sets(1)
    ours = knn_manifolds(GramPair.of(fake, real), 3)
    precision, recall = metric_prc.calculate_precision_recall_part(torch.from_numpy(fake), torch.from_numpy(real), 3)
    assert ours.precision.mean() == pytest.approx(precision, abs=1e-6)
    assert ours.recall.mean() == pytest.approx(recall, abs=1e-6)


def test_identical_sets_give_full_precision_recall_coverage():
    _, real = _sets(2)
    same = knn_manifolds(GramPair.of(real, real), 5)
    assert same.precision.all() and same.recall.all() and same.coverage.all()
    assert same.density.mean() >= 1.0  # every sample lies in its own ball and its neighbours'


def test_icc1_reproduces_shrout_and_fleiss_table_2():
    # Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; ICC(1,1) = .17; F(5, 18) = 1.79
    ratings = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)
    labels = np.repeat(np.arange(6), 4)
    value, (low, high), details = icc1(ratings.reshape(-1, 1), labels)
    assert value == pytest.approx(0.166, abs=1e-3)
    assert details["msb"] / details["msw"] == pytest.approx(1.795, abs=1e-3)
    assert (low, high) == pytest.approx((-0.133, 0.723), abs=2e-3)  # the F interval (pingouin prints the same)


def test_icc1_limits():
    labels = np.repeat(np.arange(3), 4)
    assert icc1(np.ones((12, 5)), labels)[0] == 0.0  # no variation at all
    lookup = np.repeat(np.random.default_rng(0).normal(size=(3, 5)), 4, axis=0)
    assert icc1(lookup, labels)[:2] == (1.0, (1.0, 1.0))  # variation only between speakers


def _brute_force_gap(u: np.ndarray, labels: np.ndarray) -> float:
    gaps = []
    for i in range(len(u)):
        same = [u[i] @ u[j] for j in range(len(u)) if j != i and labels[j] == labels[i]]
        other = [u[i] @ u[j] for j in range(len(u)) if labels[j] != labels[i]]
        gaps.append(np.mean(same) - np.mean(other))
    return float(np.mean(gaps))


def test_speaker_gap_and_its_permutation_test_match_brute_force():
    rng = np.random.default_rng(3)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    u = unit_rows(rng.normal(size=(9, 6)) + 0.8 * np.eye(6)[labels])
    within, between = per_clip_similarity(u, labels)
    gap, _ = permutation_test(u, labels, 19, np.random.default_rng(0))
    assert gap == pytest.approx(_brute_force_gap(u, labels)) == pytest.approx((within - between).mean())
    generator = np.random.default_rng(5)
    _, reached = permutation_test(u, labels, 200, generator)
    replay = np.random.default_rng(5)
    expected = sum(_brute_force_gap(u, replay.permutation(labels)) >= gap - 1e-12 for _ in range(200))
    assert reached == expected


def test_forced_matching_probability_is_exact():
    rng = np.random.default_rng(4)
    identities, faces, dims = 6, 3, 8
    features = unit_rows(rng.normal(size=(identities * faces, dims)))
    gallery = Gallery(identities=tuple("abcdef"), genders=("m", "m", "f", "m", "f", "f"), features=features,
                      owner=np.repeat(np.arange(identities), faces), pool_index=np.full(identities * faces, -1),
                      per_identity=faces, external=(), source="test")
    queries, true_faces = rng.normal(size=(4, dims)), rng.normal(size=(2, dims))
    true_identity = np.array([0, 2])
    for n_way in (2, 3):
        whole = list(matching_probabilities(queries, true_faces, true_identity, gallery, n_way))
        assert [rows for rows, _ in whole] == [slice(0, 4)]  # the default block holds these 4 queries
        p = whole[0][1]
        blocked = list(matching_probabilities(queries, true_faces, true_identity, gallery, n_way, block=3))
        assert [rows for rows, _ in blocked] == [slice(0, 3), slice(3, 4)]
        np.testing.assert_allclose(np.concatenate([b for _, b in blocked]), p)
        for q, f in itertools.product(range(4), range(2)):
            eligible = [x for x in range(identities) if x != true_identity[f]
                        and gallery.genders[x] == gallery.genders[true_identity[f]]]
            true_cos = unit_rows(queries[q:q + 1]) @ unit_rows(true_faces[f:f + 1]).T
            wins = []
            for chosen in itertools.combinations(eligible, n_way - 1):  # every impostor set, every face of each
                for picks in itertools.product(range(faces), repeat=n_way - 1):
                    cos = [unit_rows(queries[q:q + 1]) @ features[x * faces + j]
                           for x, j in zip(chosen, picks, strict=True)]
                    wins.append(all(float(true_cos[0, 0]) > float(c[0]) for c in cos))
            assert p[q, f] == pytest.approx(np.mean(wins)), (n_way, q, f)


def test_elementary_symmetric_polynomials():
    p = [np.array(v) for v in (0.2, 0.5, 0.9, 0.4)]
    for k in range(5):
        expected = sum(np.prod(c) for c in itertools.combinations([0.2, 0.5, 0.9, 0.4], k))
        assert float(elementary_symmetric(p, k)) == pytest.approx(expected)
    assert float(elementary_symmetric([np.array(1.0)] * 5, 2)) == comb(5, 2)


def test_voice_blind_recall_is_the_mean_over_all_repairings():
    rng = np.random.default_rng(6)
    scores, truth = rng.normal(size=(6, 4)), np.array([0, 0, 1, 1, 2, 3])
    for k in (1, 2):
        permuted = [(true_ranks(scores, truth[list(order)]) < k).mean() for order in itertools.permutations(range(6))]
        assert voice_blind_recall(scores, truth, k) == pytest.approx(np.mean(permuted))
    constant = np.tile(scores[:1], (6, 1))  # the same face for every clip scores exactly the voice-blind level
    assert (true_ranks(constant, truth) < 2).mean() == pytest.approx(voice_blind_recall(constant, truth, 2))


def test_vendi_score_known_values():
    assert vendi_score(np.ones((10, 4))) == pytest.approx(1.0)
    assert vendi_score(np.eye(6)) == pytest.approx(6.0)
    x = np.random.default_rng(7).normal(size=(12, 5))
    k = unit_rows(x) @ unit_rows(x).T / 12
    eig = np.linalg.eigvalsh(k)
    eig = eig[eig > 1e-12]
    assert vendi_score(x) == pytest.approx(np.exp(-(eig * np.log(eig)).sum()))


def test_data_copying_statistic():
    rng = np.random.default_rng(8)
    training, heldout = rng.normal(size=(200, 4)), rng.normal(size=(150, 4))
    fresh = data_copying(rng.normal(size=(300, 4)), heldout, training, np.random.default_rng(0), 50)
    assert fresh["ci95"][0] < 0 < fresh["ci95"][1] and fresh["chance"] == 0.0
    copies = training[rng.integers(0, 200, 300)] + rng.normal(scale=0.01, size=(300, 4))
    copied = data_copying(copies, heldout, training, np.random.default_rng(0), 50)
    assert copied["ci95"][1] < -3
    small = data_copying(rng.normal(size=(15, 4)), heldout[:15], training, np.random.default_rng(0), 50)
    assert small["status"] == "not applicable" and small["reason"].startswith("N too small")


def test_craniofacial_ratios_are_scale_free_and_named():
    points = np.random.default_rng(9).uniform(0, 100, size=(3, 68, 2))
    ratios = craniofacial_ratios(points)
    assert ratios.shape == (3, len(RATIOS)) == (3, 10)
    rotation = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    moved = 2.5 * points @ rotation.T + 17.0
    np.testing.assert_allclose(craniofacial_ratios(moved), ratios, rtol=1e-9)
    assert np.isnan(craniofacial_ratios(np.full((1, 68, 2), np.nan))).all()


def test_correlation_within_groups_removes_group_means():
    rng = np.random.default_rng(10)
    groups = np.repeat(["a", "b", "c"], 20)
    offsets = {"a": 0.0, "b": 5.0, "c": -3.0}
    x = np.array([[offsets[g]] for g in groups]) + rng.normal(size=(60, 1))
    y = np.array([[2 * offsets[g]] for g in groups]) + rng.normal(size=(60, 1))
    assert column_correlations(x, y)[0] > 0.9  # driven by the group means
    centred = [np.concatenate([v[groups == g] - v[groups == g].mean() for g in "abc"]) for v in (x[:, 0], y[:, 0])]
    assert column_correlations(x, y, groups)[0] == pytest.approx(np.corrcoef(*centred)[0, 1])
    assert abs(column_correlations(x, y, groups)[0]) < 0.3
    assert np.isnan(column_correlations(np.array([[offsets[g]] for g in groups]), y, groups)[0])  # constant within


def test_permutation_over_clusters_does_not_mistake_cohesive_recordings_for_voice_dependence():
    """Faces that depend on the recording (each cluster's clips alike) but not on the speaker: permuting clip labels
    calls it voice dependence (p tiny), permuting whole clusters does not (6 clusters: p cannot go below ~2/20)."""
    rng = np.random.default_rng(7)
    cluster_of = np.repeat(np.arange(6), 10)  # 3 clusters per speaker, 10 near-identical clips each
    labels = (cluster_of >= 3).astype(np.int64)
    u = unit_rows(rng.normal(size=(6, 16))[cluster_of] + 0.05 * rng.normal(size=(60, 16)))
    units, test = permutation_units(labels, cluster_of)
    assert units is not None and "whole clusters" in test
    _, reached_clips = permutation_test(u, labels, 199, np.random.default_rng(0))
    _, reached_clusters = permutation_test(u, labels, 199, np.random.default_rng(0), units)
    assert (1 + reached_clips) / 200 < 0.01
    assert (1 + reached_clusters) / 200 > 0.09
    assert permutation_units(labels, np.arange(60))[0] is None  # every clip its own cluster: clips permuted
    assert permutation_units(labels, np.zeros(60, np.int64))[0] is None  # a cluster spanning speakers: clips


def _loop_mean_gap(u: np.ndarray, labels: np.ndarray, groups: int) -> float:
    """The permutation statistic as evalkit computed it one labelling at a time (the vectorised form's reference)."""
    sums = np.zeros((groups, u.shape[1]))
    np.add.at(sums, labels, u)
    counts = np.bincount(labels, minlength=groups)
    kept = counts >= 2
    if not kept.any() or counts.max() == len(u):
        return float("nan")
    own = np.bincount(labels, weights=np.einsum("ij,ij->i", u, u), minlength=groups)
    within = ((np.einsum("ij,ij->i", sums, sums) - own)[kept] / (counts[kept] - 1)).sum()
    between = (np.einsum("ij,ij->i", sums, sums.sum(axis=0) - sums)[kept] / (len(u) - counts[kept])).sum()
    return float((within - between) / counts[kept].sum())


@pytest.mark.parametrize("clustered", [False, True])
def test_vectorised_permutation_test_counts_what_the_loop_counts(clustered, monkeypatch):
    """Blocks of permutations (forced small here) reach the observed gap exactly as often as the one-at-a-time loop
    on the same draws, with units of unequal size that can leave a speaker one row (left out of the statistic)."""
    import evalkit.metrics.voice_dependence as voice_dependence

    monkeypatch.setattr(voice_dependence, "PERMUTATION_BLOCK_BYTES", 4096)
    rng = np.random.default_rng(11)
    cluster_of = np.repeat(np.arange(7), [1, 3, 2, 4, 1, 2, 3])
    labels = np.array([0, 0, 1, 1, 2, 2, 3])[cluster_of]
    u = unit_rows(rng.normal(size=(len(labels), 5)) + 0.6 * np.eye(5)[labels])
    units = cluster_of if clustered else None
    observed, reached = permutation_test(u, labels, 300, np.random.default_rng(2), units)
    replay = np.random.default_rng(2)
    unit_labels = labels[np.unique(cluster_of, return_index=True)[1]]
    loop_observed = _loop_mean_gap(u, labels, 4)
    labellings = [replay.permutation(unit_labels)[cluster_of] if clustered else replay.permutation(labels)
                  for _ in range(300)]
    gaps = [_loop_mean_gap(u, labelling, 4) for labelling in labellings]
    assert observed == pytest.approx(loop_observed, rel=1e-12)
    assert reached == sum(bool(np.isnan(g) or g >= loop_observed - 1e-9) for g in gaps)
    assert 0 < reached < 300
    # the clustered draws do leave a speaker a single row
    assert clustered == any(np.bincount(labelling, minlength=4).min() == 1 for labelling in labellings)


def _loop_vendi_score(features: np.ndarray) -> float:
    """The Vendi score as evalkit computed it for one resample (the vectorised replicates' reference)."""
    u = unit_rows(features)
    eigenvalues = np.linalg.eigvalsh(u.T @ u / len(u))
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    eigenvalues = eigenvalues / eigenvalues.sum()
    return float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))


@pytest.mark.parametrize("by", ["group", "none"])
def test_vectorised_vendi_bootstrap_gives_the_loops_replicates(by, monkeypatch):
    """Blocks of replicates (forced small) give the loop's values on the same draws, zero rows (no descriptor) and
    a rank below the dimension included; from 9 clusters' moment matrices, and from the rows (40 singletons: more
    moment matrices than the byte budget allows)."""
    import evalkit.stats as stats

    monkeypatch.setattr(stats, "WEIGHT_BLOCK_BYTES", 4 * 8 * 36 * 20)  # moments of 20 clusters of 6 dimensions
    rng = np.random.default_rng(8)
    x = rng.normal(size=(40, 3)) @ rng.normal(size=(3, 6))  # rank 3 in 6 dimensions
    x[[4, 17]] = 0.0
    clusters = Clusters.singletons(40) if by == "none" else Clusters.joint((np.arange(40) % 9).tolist(), by=by)[0]
    loop = loop_replicates(lambda i: _loop_vendi_score(x[i]), [clusters], 30, seeded_rng(0, "vendi"))
    fast = vendi_replicates(x, clusters, 30, seeded_rng(0, "vendi"))
    np.testing.assert_allclose(fast, loop, rtol=1e-9)
    assert vendi_score(x) == pytest.approx(_loop_vendi_score(x), rel=1e-12)


def _loop_column_correlations(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Per-column Pearson r of repeated rows as evalkit computed it for one resample (the weighted form's reference)."""
    if groups is None:
        x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    else:
        _, group = np.unique(groups, return_inverse=True)
        counts = np.bincount(group)

        def centred(v: np.ndarray) -> np.ndarray:
            means = np.stack([np.bincount(group, weights=column) for column in v.T], axis=1) / counts[:, None]
            return v - means[group]

        x, y = centred(x), centred(y)
    scale = np.sqrt((x**2).sum(axis=0) * (y**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y).sum(axis=0) / scale
    return np.where(scale > 1e-12 * max(1.0, float(np.abs(x).max(initial=0) * np.abs(y).max(initial=0))), r, np.nan)


@pytest.mark.parametrize("within", [False, True])
def test_weighted_correlations_of_resamples_equal_the_correlations_of_their_rows(within):
    """Cluster resamples as row multiplicities give the per-column r of the repeated rows, within speakers too,
    with a constant column (NaN) and a speaker absent from some resamples."""
    rng = np.random.default_rng(9)
    faces = np.repeat(np.arange(12), 3)
    speakers = np.where(faces < 2, 9, faces % 3)  # speaker 9: two faces, absent from some resamples
    x = rng.normal(size=(36, 4))
    y = 0.5 * x + rng.normal(size=(36, 4))
    x[:, 2] = 1.5  # a constant column
    groups = speakers if within else None
    clusters = Clusters.singletons(12)
    draws = list(cluster_resamples([clusters], 25, seeded_rng(0, "r")))
    weights = np.stack([np.bincount(c, minlength=12) for (c,) in draws])[:, faces].astype(np.float64)
    rows = [np.concatenate([np.flatnonzero(faces == k) for k in c]) for (c,) in draws]
    loop = np.stack([_loop_column_correlations(x[i], y[i], None if groups is None else groups[i]) for i in rows])
    fast = weighted_column_correlations(x, y, weights, groups)
    np.testing.assert_allclose(fast, loop, rtol=1e-9)
    assert np.isnan(fast[:, 2]).all() and np.isfinite(fast[:, [0, 1, 3]]).all()
    assert any(9 not in speakers[i] for i in rows)
    np.testing.assert_allclose(column_correlations(x, y, groups), _loop_column_correlations(x, y, groups), rtol=1e-12)


def test_memorization_lookups_find_the_neighbours_of_the_expanded_distances():
    """The nearest-face lookups (SciPy's exact squared distances) give the outcomes of the |a|^2 + |b|^2 - 2 a.b
    distances evalkit used before on data without near ties, and find an exact copy at distance 0."""
    rng = np.random.default_rng(12)
    training, heldout = rng.normal(size=(60, 16)), rng.normal(size=(40, 16))
    queries = np.concatenate([training[:5], rng.normal(size=(45, 16))])  # five exact copies of training faces
    ids = lambda n: np.arange(n) % 3  # noqa: E731
    nearer, chance = training_nearer(queries, ids(50), training, ids(60), heldout, ids(40))

    def expanded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.clip((a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T, 0, None)

    to_training, to_heldout = expanded(queries, training), expanded(queries, heldout)
    to_training[ids(50)[:, None] != ids(60)[None, :]] = np.inf
    to_heldout[ids(50)[:, None] != ids(40)[None, :]] = np.inf
    np.testing.assert_array_equal(nearer, to_training.min(axis=1) < to_heldout.min(axis=1))
    assert nearer[:5].all() and np.all((chance > 0.55) & (chance < 0.65))  # 20 training vs ~13 held-out a speaker
    among = expanded(training, training)
    np.fill_diagonal(among, np.inf)
    nearest = expanded(queries, training).argmin(axis=1)
    expected = expanded(queries, training)[np.arange(50), nearest] >= among.min(axis=1)[nearest]
    np.testing.assert_array_equal(authentic(queries, training), expected)
    assert not authentic(queries, training)[:5].any()  # a copy is never authentic


def test_memorization_lookups_in_blocks_equal_the_whole_distance_matrix(monkeypatch):
    """With blocks of two queries (``NEIGHBOUR_MEMORY_MB`` ~1 KB), training-nearer (with each query left out of its
    own held-out comparison), its chance and authenticity equal the lookups on the whole (n, m) matrices of SciPy's
    squared distances; a speaker with no held-out face left is never training-nearer's loser by accident."""
    from scipy.spatial.distance import cdist

    from evalkit import neighbours

    rng = np.random.default_rng(3)
    training, heldout = rng.normal(size=(30, 8)), rng.normal(size=(21, 8))
    ids_training, ids_heldout = np.arange(30) % 3, np.array([0] * 10 + [1] * 10 + [2])
    queries, ids_queries, leave_out = heldout, ids_heldout, np.arange(21)  # the reference row: held-out faces
    monkeypatch.setattr(neighbours, "NEIGHBOUR_MEMORY_MB", 0.001)
    nearer, chance = training_nearer(queries, ids_queries, training, ids_training, heldout, ids_heldout, leave_out)
    to_training, to_heldout = cdist(queries, training, "sqeuclidean"), cdist(queries, heldout, "sqeuclidean")
    to_training[ids_queries[:, None] != ids_training[None, :]] = np.inf
    to_heldout[ids_queries[:, None] != ids_heldout[None, :]] = np.inf
    to_heldout[np.arange(21), leave_out] = np.inf
    np.testing.assert_array_equal(nearer, to_training.min(axis=1) < to_heldout.min(axis=1))
    assert nearer[20]  # speaker 2's only held-out face, left out: nothing held out is nearer
    n_heldout = (ids_queries[:, None] == ids_heldout[None, :]).sum(axis=1) - 1
    n_training = (ids_queries[:, None] == ids_training[None, :]).sum(axis=1)
    np.testing.assert_allclose(chance, n_training / (n_training + n_heldout))
    among = cdist(training, training, "sqeuclidean")
    np.fill_diagonal(among, np.inf)
    full = cdist(queries, training, "sqeuclidean")
    nearest = full.argmin(axis=1)
    np.testing.assert_array_equal(authentic(queries, training),
                                  full[np.arange(21), nearest] >= among.min(axis=1)[nearest])


def test_identity_similarity_in_blocks_equals_the_whole_cosine_matrix(monkeypatch):
    """``cosine_summaries`` over blocks of 3 generated faces gives what the whole (n, m) cosine matrix gives: each
    clip's own-face cosine, its mean same- and other-identity cosines (NaN without another identity), top-1
    retrieval and both chance levels."""
    from evalkit.metrics import identity_similarity

    rng = np.random.default_rng(5)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    generated, gallery = unit(rng.normal(size=(17, 6))), unit(rng.normal(size=(9, 6)))
    identities, gallery_identities = np.array(list("aabbbcccc") + list("abcabcab")), np.array(list("aaabbbccc"))
    identities[16] = "d"  # no real face of its own identity: same-identity mean NaN
    own = rng.integers(0, 9, 17)
    monkeypatch.setattr(identity_similarity, "BLOCK_BYTES", 3 * 8 * 9)
    got = identity_similarity.cosine_summaries(generated, gallery, own, identities, gallery_identities)
    cosines = generated @ gallery.T
    same = identities[:, None] == gallery_identities[None, :]
    np.testing.assert_allclose(got.own, cosines[np.arange(17), own], rtol=1e-12)
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(got.same_identity, [cosines[r, same[r]].mean() if same[r].any() else np.nan
                                                       for r in range(17)], rtol=1e-12)
    np.testing.assert_allclose(got.other_identity, [cosines[r, ~same[r]].mean() for r in range(17)], rtol=1e-12)
    np.testing.assert_array_equal(got.retrieved, same[np.arange(17), cosines.argmax(axis=1)])
    assert np.isnan(got.same_identity[16]) and not got.retrieved[16]
    assert got.chance_own == pytest.approx(cosines.mean(), rel=1e-12)
    assert got.chance_retrieval == pytest.approx(same.mean(axis=1).mean(), rel=1e-12)


def test_all_pairings_error_from_sorted_prefix_sums_equals_every_pair():
    """The chance level of the craniofacial ratio error (every generated face against every real face) from sorted
    prefix sums equals the mean over the whole (n, m, ratios) array of |ln(g / r)|, ties included."""
    rng = np.random.default_rng(8)
    generated, real = rng.uniform(0.5, 2.0, size=(37, 10)), rng.uniform(0.5, 2.0, size=(23, 10))
    real[:5] = generated[:5]  # equal values: ties between a generated and a real ratio
    expected = np.abs(np.log(generated)[:, None, :] - np.log(real)[None, :, :]).mean()
    assert all_pairings_error(generated, real) == pytest.approx(expected, rel=1e-12)
