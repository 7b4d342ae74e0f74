"""Speed of the per-clip bootstrap intervals: the vectorised cluster bootstrap of a mean (``evalkit.stats.
cluster_mean_replicates``: one draw of (replicates, clusters) codes, sums of cluster sums) against per-replicate loops:
the row bootstrap evalkit 0.1 ran (``values[rng.integers(0, n, n)].mean()`` per replicate; no clusters) and a loop
over the same cluster draws (index the rows of each resample, take their mean; checked to give the same values).

The data mimic the embedded unseen-speech split: 675 clips in 135 faces (5 clips each), one float per clip; the
figures are the median seconds of ``--repeats`` interleaved timings of each, for ``--replicates`` replicates (200 is
``evalkit run``'s default, several per-clip figures are computed per split). Both give the same replicate values (the
benchmark checks it).

    python benchmarks/interval_speed.py [--replicates 200] [--repeats 7]

The last line is JSON; the load average is in it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from evalkit.stats import Clusters, cluster_draws, cluster_mean_replicates, seeded_rng


def row_loop(values: np.ndarray, clusters: Clusters, replicates: int, rng: np.random.Generator) -> np.ndarray:
    n = len(values)
    return np.array([values[rng.integers(0, n, n)].mean() for _ in range(replicates)])


def loop(values: np.ndarray, clusters: Clusters, replicates: int, rng: np.random.Generator) -> np.ndarray:
    return np.array([values[clusters.rows(d)].mean() for block in cluster_draws([clusters], replicates, rng)
                     for d in block])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    values = rng.normal(size=675)
    (clusters,) = Clusters.joint(np.repeat(np.arange(135), 5).tolist(), by="face")
    fast = cluster_mean_replicates(values, clusters, args.replicates, seeded_rng(0, "bench"))
    slow = loop(values, clusters, args.replicates, seeded_rng(0, "bench"))
    assert np.allclose(fast, slow, rtol=1e-12)
    times: dict[str, list[float]] = {"row_loop_0.1": [], "cluster_loop": [], "vectorised": []}
    for _ in range(args.repeats):
        for name, function in (("row_loop_0.1", row_loop), ("cluster_loop", loop),
                               ("vectorised", cluster_mean_replicates)):
            start = time.perf_counter()
            function(values, clusters, args.replicates, seeded_rng(0, "bench"))
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in medians.items():
        print(f"{name:>13}: {1000 * seconds:8.3f} ms per interval ({args.replicates} replicates)")
    print(json.dumps({"replicates": args.replicates, "clips": 675, "clusters": 135, **{f"{k}_s": v for k, v in
                      medians.items()}, "speedup_vs_0.1": medians["row_loop_0.1"] / medians["vectorised"],
                      "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
