"""Seconds each metric of ``evalkit run`` takes for one generator on the embedded evaluation set, features cached.

The faces come from the default generator (the shipped checkpoint) and the features from ``--cache-dir`` (a filled
feature cache makes this a measure of the metric computations alone: extraction is done once, before the timings).
Each repeat scores every metric of the default plan (its ``real`` row and every split, as ``evalkit run`` does) in a
fresh ``MetricContext``, so nothing one metric memoises is reused by the next repeat; the figures are the median
seconds of ``--repeats`` repeats per metric, and their sum.

    python benchmarks/metric_speed.py [--cache-dir DIR] [--repeats 3] [--bootstrap 200]

The last line is JSON; the load average is in it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

from evalkit.distributed import Shard
from evalkit.features import FeatureCache
from evalkit.metrics import MetricContext
from evalkit.options import RunOptions
from evalkit.runner import _score, evaluate_metric, prepare


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=RunOptions().cache_dir, help="feature cache (filled once)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=RunOptions().bootstrap)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    options = replace(RunOptions(), cache_dir=args.cache_dir, bootstrap=args.bootstrap, device="cpu")
    inputs = prepare(options)
    shard = Shard()
    evalset, first = _score(inputs, inputs.source, shard, FeatureCache(options.cache_dir, shard), None)
    times: dict[str, list[float]] = {m.name: [] for m in inputs.plan.metrics}
    for _ in range(args.repeats):
        ctx = MetricContext(options, evalset, None, first.features)
        for name in inputs.plan.extractors:
            ctx.features(name)
        for metric in inputs.plan.metrics:
            start = time.perf_counter()
            evaluate_metric(metric, ctx, inputs.plan)
            times[metric.name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in sorted(medians.items(), key=lambda item: -item[1]):
        print(f"{name:>22}: {seconds:7.3f} s")
    total = sum(medians.values())
    print(f"{'all metrics':>22}: {total:7.3f} s")
    print(json.dumps({"generator": inputs.source.info.name, "repeats": args.repeats, "bootstrap": args.bootstrap,
                      "metrics_s": {k: round(v, 4) for k, v in medians.items()}, "total_s": round(total, 4),
                      "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
