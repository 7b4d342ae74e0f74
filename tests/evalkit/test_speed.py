"""The speed work keeps every number: vectorised bootstraps give the loops' replicates for the same seed, a repeated
image is embedded once with the same features, the pairwise metrics' row cap leaves small sets alone and says when it
bites, generated faces stream through a memory-mapped cache file, stage timings are logged on request, and the
command layer starts without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalkit.features import FeatureCache
from evalkit.metrics import distribution
from evalkit.stats import (
    Clusters,
    GramPair,
    frechet_from_gram,
    frechet_replicates,
    kid_from_gram,
    kid_replicates,
    seeded_rng,
)
from evalkit.streaming import stored_array
from evalkit.timing import STAGE_LOG_ENV, stage
from tests.evalkit.support import loop_replicates
from tests.evalkit.test_features import CountingExtractor, images

ROOT = Path(__file__).resolve().parents[2]


def _sets(n: int = 60, m: int = 24, dim: int = 8) -> tuple[GramPair, tuple[Clusters, Clusters]]:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(n, dim)), rng.normal(size=(m, dim)) + 0.4
    # clips in groups of unequal size, sharing clusters with the real faces (as a split's clips and faces do)
    generated = [k % 11 for k in range(n)]
    real = [k % 13 for k in range(m)]
    return GramPair.of(x, y), Clusters.joint(generated, real, by="group")


@pytest.mark.parametrize("independent", [False, True])
@pytest.mark.parametrize("budget", [None, 40_000])
def test_vectorised_frechet_bootstrap_gives_the_loops_replicates(independent, budget, monkeypatch):
    """From the clusters' moment matrices, and (a small byte budget) from the rows, a few replicates a block."""
    if budget is not None:
        import evalkit.stats as stats

        monkeypatch.setattr(stats, "WEIGHT_BLOCK_BYTES", budget)
    gram, clusters = _sets()
    if independent:
        clusters = (Clusters.singletons(60), Clusters.singletons(24))
    loop = loop_replicates(lambda i, j: frechet_from_gram(gram, i, j), clusters, 50, seeded_rng(0, "fd"))
    fast = frechet_replicates(gram, clusters, 50, seeded_rng(0, "fd"))
    np.testing.assert_allclose(fast, loop, rtol=1e-9, atol=1e-12)
    # more generated than real rows and the other way round take the two sides of the cross term
    flipped = GramPair(gram.yy, gram.xx, gram.xy.T, gram.dim)
    loop = loop_replicates(lambda i, j: frechet_from_gram(flipped, i, j), clusters[::-1], 50,
                                        seeded_rng(0, "fd"))
    np.testing.assert_allclose(frechet_replicates(flipped, clusters[::-1], 50, seeded_rng(0, "fd")), loop, rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("subset_size", [1000, 20])
def test_vectorised_kid_bootstrap_gives_the_loops_replicates(subset_size):
    """Resamples that fit in one subset are vectorised; larger ones draw their subsets as the loop does (with 20 the
    two kinds mix, and the subset generator must be consumed in the same order)."""
    gram, clusters = _sets()
    subsets = seeded_rng(1, "s")
    loop = loop_replicates(lambda i, j: kid_from_gram(gram, subset_size, 5, subsets, i, j),
                                        clusters, 50, seeded_rng(0, "kid"))
    fast = kid_replicates(gram, subset_size, 5, seeded_rng(1, "s"), clusters, 50, seeded_rng(0, "kid"))
    np.testing.assert_allclose(fast, loop, rtol=1e-9, atol=1e-12)


def test_each_distinct_image_is_embedded_once_per_run(tmp_path):
    base = images(3)
    repeated = base[[0, 1, 0, 0, 2, 1]]
    cache = FeatureCache(tmp_path / "cache")
    extractor = CountingExtractor(2.0)
    extractor.seen = 0
    original = extractor.extract

    def counting(batch: np.ndarray) -> dict[str, np.ndarray]:
        extractor.seen += len(batch)
        return original(batch)

    extractor.extract = counting
    features = cache.features(extractor, repeated)["features"]
    np.testing.assert_array_equal(features, CountingExtractor(2.0).extract(repeated)["features"])
    assert extractor.seen == 3
    # a later set of the run made of images already embedded (a reference generator drawing real faces) costs none
    again = cache.features(extractor, base[[2, 2, 1]])["features"]
    np.testing.assert_array_equal(again, features[[4, 4, 1]])
    assert extractor.seen == 3
    fresh = images(1, seed=5)
    cache.features(extractor, np.concatenate([fresh, base[:1]]))
    assert extractor.seen == 4


def test_pairwise_metrics_cap_their_rows_and_say_so(monkeypatch):
    """Below the cap every row is used (the numbers do not change); above it a seeded subsample of the cap, the same
    for every generator scored on the split, noted in the figure, and the per-clip values of the rows left out NaN."""

    class Context:
        def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
            self.x, self.y = x, y
            self.evalset = type("E", (), {"generated_index": {"s": np.arange(len(x))}})()

        def split_features(self, extractor, key, split):
            return self.x, self.y

        def split_clusters(self, split):
            return Clusters.singletons(len(self.x)), Clusters.singletons(len(self.y))

        def rng(self, *names):
            return seeded_rng(0, *names)

    rng = np.random.default_rng(0)
    ctx = Context(rng.normal(size=(40, 4)), rng.normal(size=(12, 4)))
    whole = distribution.pairwise_rows(ctx, "e", "k", "s")
    assert whole.subsample is None and len(whole.x) == 40 and whole.note({"a": 1}) == {"a": 1}
    monkeypatch.setattr(distribution, "GRAM_CAP", 30)
    capped = distribution.pairwise_rows(ctx, "e", "k", "s")
    assert len(capped.x) == 30 and len(capped.y) == 12 and capped.subsample["generated"] == [30, 40]
    np.testing.assert_array_equal(capped.x, ctx.x[capped.rows_x])
    other = Context(rng.normal(size=(40, 4)), ctx.y)  # another generator on the same split: the same rows
    np.testing.assert_array_equal(distribution.pairwise_rows(other, "e", "k", "s").rows_x, capped.rows_x)
    assert "subsample" in capped.note({"a": 1})


def test_pairwise_cap_leaves_the_embedded_splits_whole():
    assert distribution.GRAM_CAP >= 675  # the embedded set's largest split: its figures are computed on every row


def test_stored_array_is_atomic_and_reads_back_as_a_memory_map(tmp_path):
    target = tmp_path / "faces" / "set.npy"
    with stored_array(target, (5, 4, 4, 3), np.uint8) as out:
        out[:] = np.arange(5 * 48, dtype=np.uint8).reshape(5, 4, 4, 3)
    mapped = np.load(target, mmap_mode="r")
    assert isinstance(mapped, np.memmap) and mapped[4, 3, 3, 2] == 239
    with pytest.raises(RuntimeError), stored_array(tmp_path / "broken.npy", (2, 2), np.uint8):
        raise RuntimeError("generation failed")
    assert list(tmp_path.glob("*.npy")) == []  # nothing half-written left behind


def test_stages_are_logged_only_when_asked(tmp_path, monkeypatch):
    log = tmp_path / "stages.jsonl"
    with stage("quiet"):
        pass
    assert not log.exists()
    monkeypatch.setenv(STAGE_LOG_ENV, str(log))
    with stage("outer"), stage("inner"):
        pass
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(line["stage"], line["depth"]) for line in lines] == [("inner", 1), ("outer", 0)]
    assert all(line["seconds"] >= 0 and line["peak_rss_mb"] > 0 for line in lines)


def test_the_command_layer_starts_without_torch():
    """``evalkit report`` and ``evalkit --help`` do not import torch (seconds on a busy machine)."""
    code = "import sys, evalkit.cli; print(sorted(m for m in ('torch', 'dlib', 'torchvision') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "[]"


def test_weighted_mann_whitney_u_is_scipys_on_the_resampled_values():
    from scipy.stats import mannwhitneyu

    from evalkit.metrics.memorization import weighted_u

    rng = np.random.default_rng(4)
    generated, heldout = rng.integers(0, 9, 30).astype(float), rng.integers(0, 9, 25).astype(float)  # many ties
    for _ in range(5):
        i, j = rng.integers(0, 30, 30), rng.integers(0, 25, 25)
        weights = np.bincount(i, minlength=30)[None].astype(float), np.bincount(j, minlength=25)[None].astype(float)
        expected = mannwhitneyu(generated[i], heldout[j], alternative="less").statistic
        assert weighted_u(generated, heldout, *weights)[0] == expected


def test_data_copying_interval_is_the_per_replicate_rank_tests():
    """C_T and its bootstrap interval as the loop of scipy rank tests over the same resamples computed them."""
    from scipy.cluster.vq import kmeans2
    from scipy.stats import mannwhitneyu

    from evalkit.metrics.memorization import MIN_CELL, data_copying, squared_distances
    from evalkit.stats import percentile_interval

    rng = np.random.default_rng(6)
    training, generated, heldout = rng.normal(size=(60, 4)), rng.normal(size=(90, 4)), rng.normal(size=(80, 4))
    result = data_copying(generated, heldout, training, seeded_rng(0, "ct"), 40)
    # the loop, replayed: the same k-means cells, the same draws
    replay = seeded_rng(0, "ct")
    centroids, training_cell = kmeans2(training, result["cells"], minit="++", rng=replay)
    cells = [squared_distances(rows, centroids).argmin(axis=1) for rows in (generated, heldout)]
    distances = []
    for rows, cell in zip((generated, heldout), cells, strict=True):
        d = squared_distances(rows, training)
        d[cell[:, None] != training_cell[None, :]] = np.inf
        distances.append(np.sqrt(d.min(axis=1)))

    def statistic(i: np.ndarray, j: np.ndarray) -> float:
        z, weights = [], []
        for c in range(result["cells"]):
            g, h = distances[0][i][cells[0][i] == c], distances[1][j][cells[1][j] == c]
            if len(g) >= MIN_CELL and len(h) >= MIN_CELL:
                u = mannwhitneyu(g, h, alternative="less").statistic
                z.append((u - len(g) * len(h) / 2) / np.sqrt(len(g) * len(h) * (len(g) + len(h) + 1) / 12))
                weights.append(len(h) / len(j))
        return float(np.dot(weights, z) / np.sum(weights)) if z else float("nan")

    value = statistic(np.arange(90), np.arange(80))
    assert result["value"] == pytest.approx(value, rel=1e-12)
    loop = loop_replicates(statistic, [Clusters.singletons(90), Clusters.singletons(80)], 40, replay)
    expected = percentile_interval(np.where(np.isfinite(loop), loop, value))
    np.testing.assert_allclose(result["ci95"], expected, rtol=1e-12)


def test_large_file_hashes_are_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import hashlib

    from generator import runtime

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime, "_HASHES", {})
    monkeypatch.setattr(runtime, "RACY_NS", -10**12)  # the files below were written a moment ago
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"a" * runtime.HASH_MEMO_MIN_BYTES)
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert runtime.sha256_file(weights) == expected
    memo = tmp_path / "cache" / "wav2pix" / "file-sha256.jsonl"
    with memo.open("a") as handle:
        handle.write('{"key": [torn\n')
    monkeypatch.setattr(runtime, "_HASHES", {})  # a new process: read back from the memo, not from the file
    monkeypatch.setattr(runtime.hashlib, "sha256", lambda: pytest.fail("hashed again"))
    assert runtime.sha256_file(weights) == expected
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime, "RACY_NS", -10**12)
    weights.write_bytes(b"b" * runtime.HASH_MEMO_MIN_BYTES)  # same size, new content: hashed again
    assert runtime.sha256_file(weights) == hashlib.sha256(weights.read_bytes()).hexdigest()
    small = tmp_path / "small.txt"
    small.write_text("x")
    runtime.sha256_file(small)
    assert len(memo.read_text().splitlines()) == 3  # two large-file entries and the torn line; small files not kept
    monkeypatch.setattr(runtime, "RACY_NS", 10**12)
    weights.write_bytes(b"c" * runtime.HASH_MEMO_MIN_BYTES)  # changed just now: hashed, not remembered
    runtime.sha256_file(weights)
    assert len(memo.read_text().splitlines()) == 3
