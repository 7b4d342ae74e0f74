"""Cost of ``evalkit run`` as the evaluation set grows: seconds per stage, peak memory, clips/s and the growth exponent.

The evaluation sets repeat the embedded set (875 clips of 2 speakers, 335 real faces) with small seeded changes, so
that every clip's generated face and every real face's features differ: copy 0 is the embedded set itself; in copy
c >= 1 each clip is its audio plus seeded white noise 40 dB below the clip's RMS level (written as 16-bit FLAC, 16 kHz)
and each real face its pixels plus seeded uniform noise of +-3 levels (PNG); a copy's clips form groups of their own
(``<group>-c<c>``), so clusters grow with the set. A set of N clips is the first N rows of copies 0, 1, ...

Each size runs ``python -m evalkit run --data MANIFEST`` (defaults otherwise: every metric the installed weights allow,
the four reference generators) in a fresh process on an empty cache (``--cache-dir``) and a fresh run folder; its
stages (``evalkit.timing``: ``EVALKIT_STAGE_LOG``) give seconds and the peak resident memory so far; the process's
own peak RSS comes from ``os.wait4``. The growth exponent b is the least-squares slope of log(seconds) on log(N)
(b = 1: linear), for the whole run and for each stage. With ``--torchrun-size N`` the same run at N clips is also
launched as ``torchrun --nproc-per-node 2`` and the speed-up over one process is reported.

    nice -n 5 python benchmarks/evalkit_scale.py [--sizes 1000,3000,10000] [--torchrun-size 1000] [--work DIR]

Scratch files go under ``--work`` (default: a temporary folder, removed after). The last line is JSON; the machine's
load average (1 min, at the start and end of every run) is in it: on a shared machine absolute seconds are inflated.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from evalkit.options import EMBEDDED_DATA
from evalkit.timing import STAGE_LOG_ENV
from generator.data.faces import read_face_rgb
from generator.data.manifest import Manifest, Pair, read_manifest, write_manifest

NOISE_DB = -40.0
PIXEL_NOISE = 3
GOAL_EXPONENT = 1.1


def perturbed_audio(source: Path, target: Path, rng: np.random.Generator) -> None:
    """``source`` plus white noise ``NOISE_DB`` below its RMS level, as 16-bit FLAC."""
    data, rate = sf.read(str(source), dtype="float64")
    rms = float(np.sqrt(np.mean(data**2))) or 1e-4
    noisy = np.clip(data + rng.normal(0.0, rms * 10 ** (NOISE_DB / 20), data.shape), -1.0, 1.0)
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(target), noisy, rate, subtype="PCM_16", format="FLAC")


def perturbed_face(source: Path, swap_bgr: bool, target: Path, rng: np.random.Generator) -> None:
    """``source`` (as RGB) plus uniform noise of +-``PIXEL_NOISE`` levels, as PNG."""
    pixels = np.asarray(read_face_rgb(source, swap_bgr), dtype=np.int16)
    noisy = np.clip(pixels + rng.integers(-PIXEL_NOISE, PIXEL_NOISE + 1, pixels.shape), 0, 255).astype(np.uint8)
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noisy).save(target)


def scaled_pairs(base: Manifest, clips: int, folder: Path, seed: int) -> list[Pair]:
    """The first ``clips`` rows of copies 0, 1, ... of ``base`` (see the module docstring); files under ``folder``."""
    pairs: list[Pair] = []
    for copy in range(math.ceil(clips / len(base))):
        rng = np.random.default_rng([seed, copy])
        faces: dict[Path, Path] = {}
        for k, pair in enumerate(base.pairs[: clips - len(pairs)]):
            if copy == 0:
                pairs.append(pair)
                continue
            if pair.face not in faces:
                faces[pair.face] = folder / f"c{copy}" / "faces" / pair.identity / f"{pair.face.stem}_{len(faces)}.png"
                perturbed_face(pair.face, pair.face_order == "bgr", faces[pair.face], rng)
            audio = folder / f"c{copy}" / "audio" / pair.split / pair.identity / f"{pair.audio.stem}_{k}.flac"
            perturbed_audio(pair.audio, audio, rng)
            pairs.append(replace(pair, face=faces[pair.face], audio=audio, face_order="rgb",
                                 group=f"{pair.group or pair.face.stem}-c{copy}"))
    return pairs


def run_once(command: list[str], log: Path, env: dict[str, str]) -> dict:
    """Run ``command`` with the stage log at ``log``; its wall seconds, peak RSS (MiB, os.wait4), stages and load."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with open(log.with_suffix(".out"), "w") as output:
        process = subprocess.Popen(command, env={**env, STAGE_LOG_ENV: str(log)}, stdout=output,
                                   stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}); see {log.with_suffix('.out')}")
    stages: dict[str, dict] = {}
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    main_pid = lines[0]["pid"] if lines else None  # the process that logged first: rank 0 under torchrun
    for entry in lines:
        if entry["depth"] == 0 and entry["pid"] == main_pid:  # top-level stages, summed (one per reference generator)
            total = stages.setdefault(entry["stage"], {"seconds": 0.0, "peak_rss_mb": 0.0})
            total["seconds"] += entry["seconds"]
            total["peak_rss_mb"] = max(total["peak_rss_mb"], entry["peak_rss_mb"])
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "stages": stages,
            "load": [load_before, os.getloadavg()[0]]}


def exponent(sizes: list[int], seconds: list[float]) -> float | None:
    """Least-squares slope of log(seconds) on log(clips); None with fewer than 2 sizes."""
    if len(sizes) < 2 or min(seconds) <= 0:
        return None
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def evalkit_command(manifest: Path, out: Path, cache: Path, nproc: int, references: str | None) -> list[str]:
    """The ``evalkit run`` command line; empties ``out`` and ``cache`` first (a reused ``--work`` folder would
    otherwise give a warm cache)."""
    for folder in (out, cache):
        shutil.rmtree(folder, ignore_errors=True)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m"] \
        if nproc > 1 else [sys.executable, "-m"]
    chosen = ["--references", references] if references else []
    return [*launcher, "evalkit", "run", "--data", str(manifest), "--out", str(out), "--cache-dir", str(cache),
            "--offline", *chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000", help="comma-separated numbers of clips")
    parser.add_argument("--torchrun-size", type=int, default=0, help="also run this size under torchrun with 2 "
                        "processes and report the speed-up (0: skip)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder [default: a temporary one]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--references", default=None, help="passed to evalkit run (e.g. none) [default: all four]")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not sizes or sizes[0] < 2:
        sys.exit("--sizes needs clip counts >= 2")
    work = args.work or Path(tempfile.mkdtemp(prefix="evalkit_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    try:
        base = read_manifest(EMBEDDED_DATA)
        pairs = scaled_pairs(base, max(sizes + [args.torchrun_size]), work / "data", args.seed)
        results = {}
        for n in sizes:
            manifest = write_manifest(pairs[:n], work / f"manifest_{n}.csv")
            result = run_once(evalkit_command(manifest, work / f"run_{n}", work / f"cache_{n}", 1, args.references),
                              work / f"stages_{n}.jsonl", env)
            result["clips_per_s"] = n / result["seconds"]
            results[n] = result
            print(f"{n:>6} clips: {result['seconds']:8.1f} s, {result['clips_per_s']:6.1f} clips/s, peak RSS "
                  f"{result['peak_rss_mb']:7.0f} MiB, load {result['load'][0]:.1f}-{result['load'][1]:.1f}; " +
                  ", ".join(f"{k} {v['seconds']:.1f} s" for k, v in result["stages"].items()), flush=True)
        stage_names = list(dict.fromkeys(k for r in results.values() for k in r["stages"]))
        growth = {"total": exponent(sizes, [results[n]["seconds"] for n in sizes]),
                  **{s: exponent(sizes, [results[n]["stages"].get(s, {}).get("seconds", 0.0) for n in sizes])
                     for s in stage_names}}
        print("growth exponents (1 = linear): " + ", ".join(f"{k} {v:.2f}" for k, v in growth.items() if v is not None))
        summary = {"sizes": sizes, "references": args.references or "all", "runs": {str(n): results[n] for n in sizes},
                   "growth_exponent": growth, "goal_exponent": GOAL_EXPONENT}
        if args.torchrun_size:
            n = args.torchrun_size
            manifest = write_manifest(pairs[:n], work / f"manifest_{n}.csv")
            single = results.get(n) or run_once(
                evalkit_command(manifest, work / f"run1_{n}", work / f"cache1_{n}", 1, args.references),
                work / f"stages1_{n}.jsonl", env)
            double = run_once(evalkit_command(manifest, work / f"run2_{n}", work / f"cache2_{n}", 2, args.references),
                              work / f"stages2_{n}.jsonl", env)
            summary["torchrun"] = {"clips": n, "one_process_s": single["seconds"], "two_processes_s": double["seconds"],
                                   "speedup": single["seconds"] / double["seconds"], "load": double["load"],
                                   "stages": double["stages"]}
            print(f"torchrun --nproc-per-node 2 at {n} clips: {double['seconds']:.1f} s against "
                  f"{single['seconds']:.1f} s in one process (speed-up {summary['torchrun']['speedup']:.2f})")
        summary["usable_cpus"] = len(os.sched_getaffinity(0))
        print(json.dumps(summary))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
