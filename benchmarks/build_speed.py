"""Dataset build speed on this machine's CPU: video seconds processed per wall-clock second.

Builds the GRID sample clips (../shared/data/grid-samples: 8 clips of 3 s) from scratch with the default options
(1 frame/s, HOG detector, 5 windows per face), the whole pipeline included: decoding, detection, descriptors, audio
windows, voice activity, cleaning, the leak-free split and the report. The dlib models are loaded once before the
clock starts, as a long build amortises them.

    python benchmarks/build_speed.py [--workers 1] [--repeats 3] [--source ../shared/data/grid-samples]

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from generator.dataset_builder.faces import load_models
from generator.dataset_builder.pipeline import BuildOptions, build_dataset

GRID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "grid-samples"


def timed_build(source: Path, options: BuildOptions) -> tuple[float, float]:
    """Wall seconds of one fresh build, and the seconds of video it processed."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = build_dataset(source, Path(out), options, progress=False)
        wall = time.perf_counter() - start
    return wall, result.figures["totals"]["video_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=GRID)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.source.is_dir():
        raise SystemExit(f"{args.source}: GRID samples not found (the ../shared folder beside the checkout)")
    options = replace(BuildOptions(layout="one-per-identity"), workers=args.workers)
    load_models()
    runs = [timed_build(args.source, options) for _ in range(args.repeats)]
    walls = [wall for wall, _ in runs]
    video_seconds = runs[0][1]
    median = statistics.median(walls)
    for i, wall in enumerate(walls, 1):
        print(f"run {i}: {video_seconds:.1f} s of video in {wall:.2f} s ({video_seconds / wall:.2f} video s per s)")
    print(json.dumps({
        "benchmark": "build_speed", "source": str(args.source), "workers": args.workers, "cpus": os.cpu_count(),
        "video_seconds": video_seconds, "wall_seconds_median": round(median, 3),
        "wall_seconds": [round(w, 3) for w in walls],
        "video_seconds_per_wall_second": round(video_seconds / median, 3),
    }))


if __name__ == "__main__":
    main()
