"""Speed of ``evalkit run`` on the embedded evaluation set, and of evalkit's Inception features against pytorch-fid.

Three figures:

* ``evalkit run`` end to end (default checkpoint, embedded set, CPU) with an empty feature cache;
* the same command re-run on the filled cache (a fresh ``--out``);
* Inception feature extraction in images/s, files to mean and covariance, on the same embedded face crops: evalkit
  (``evalkit.fid_paths.folder_images`` + ``InceptionExtractor.extract`` + ``evalkit.stats.statistics``) against
  pytorch-fid's own ``calculate_activation_statistics`` (its defaults: batch 50, one loader worker), interleaved
  ``--repeats`` times; the best and the median of each are reported.

Both use one randomly initialised FID Inception (pytorch-fid's structure, seeded) saved as pytorch-fid's weights file
``pt_inception-2015-12-05-6726825d.pth`` in a temporary torch hub cache (``TORCH_HOME``): the speed of the network does
not depend on the values, the FID figures of such a run mean nothing, and nothing is downloaded. Run folders and the
feature cache (``--cache-dir``) are temporary too, so the user's caches and ``runs/`` are left alone.

    nice -n 5 python benchmarks/evalkit_speed.py [--images 100] [--repeats 2]

The last line is JSON. The figures are wall-clock seconds on a shared machine: the load average is in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics as stats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import torch
from pytorch_fid import inception as fid_inception
from pytorch_fid.fid_score import calculate_activation_statistics

from evalkit.features import make_extractor
from evalkit.features.inception import InceptionExtractor, hub_weights_path
from evalkit.fid_paths import folder_images
from evalkit.options import EMBEDDED_DATA, RunOptions
from evalkit.stats import statistics

FACES = EMBEDDED_DATA.parent / "faces"
DIMS = 2048
PYTORCH_FID_BATCH = 50
PYTORCH_FID_WORKERS = 1
GOALS = {"end_to_end_s": 300.0, "cached_rerun_s": 30.0}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="embedded face crops for the Inception throughput")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved timings of each Inception extraction")
    return parser.parse_args()


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """pytorch-fid's FID Inception, randomly initialised: its weight fetch and weight loading are switched off."""
    torch.manual_seed(seed)
    with mock.patch.object(fid_inception, "load_state_dict_from_url", return_value=None), \
            mock.patch("torchvision.models.inception.Inception3.load_state_dict"):
        return fid_inception.fid_inception_v3().state_dict()


def install_random_weights(torch_home: Path) -> Path:
    """Point ``TORCH_HOME`` at ``torch_home`` and write random weights under pytorch-fid's file name there."""
    os.environ["TORCH_HOME"] = str(torch_home)
    path = hub_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(random_inception_state(), path)
    return path


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def evalkit_run_command(out: Path, cache_dir: Path) -> list[str]:
    return [sys.executable, "-m", "evalkit", "run", "--device", "cpu", "--out", str(out), "--cache-dir", str(cache_dir)]


def time_evalkit_run(out: Path, cache_dir: Path, log: Path) -> float:
    """Seconds of one ``evalkit run`` subprocess (its output goes to ``log``); exits when the run fails."""
    command = evalkit_run_command(out, cache_dir)
    with log.open("w") as sink:
        start = time.perf_counter()
        completed = subprocess.run(command, check=False, stdout=sink, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({completed.returncode}):\n{log.read_text()[-3000:]}")
    return seconds


def fid_status(run_dir: Path) -> str:
    """Whether the run computed FID (so Inception extraction was part of the timing)."""
    return json.loads((run_dir / "results.json").read_text())["results"]["fid"]["status"]


def copy_faces(count: int, folder: Path) -> list[Path]:
    """The first ``count`` embedded face crops (sorted paths), copied flat into ``folder``."""
    sources = sorted(FACES.rglob("*.jpg"))[:count]
    if len(sources) < count:
        sys.exit(f"{FACES}: only {len(sources)} face crops, asked for {count}")
    folder.mkdir()
    copies = [folder / f"{k:05d}.jpg" for k in range(count)]
    for source, copy in zip(sources, copies, strict=True):
        shutil.copyfile(source, copy)
    return copies


def pytorch_fid_model() -> fid_inception.InceptionV3:
    """pytorch-fid's InceptionV3 built its own way: it reads the weights file from the torch hub cache."""
    return fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[DIMS]]).eval()


def evalkit_statistics(folder: Path, extractor: InceptionExtractor) -> None:
    statistics(extractor.extract(folder_images(folder))["features"])


def pytorch_fid_statistics(files: list[Path], model: fid_inception.InceptionV3) -> None:
    calculate_activation_statistics([str(f) for f in files], model, PYTORCH_FID_BATCH, DIMS, "cpu",
                                    PYTORCH_FID_WORKERS)


def throughput(count: int, seconds: list[float]) -> dict:
    return {"best_images_per_s": round(count / min(seconds), 2),
            "median_images_per_s": round(count / stats.median(seconds), 2),
            "seconds": [round(s, 2) for s in seconds]}


def compare_inception(work: Path, count: int, repeats: int) -> dict:
    """Interleaved timings of both extractions on the same files, alternating which goes first."""
    files = copy_faces(count, work / "faces")
    extractor = make_extractor("inception", RunOptions(device="cpu", inception_dims=DIMS))
    model = pytorch_fid_model()
    runs: dict[str, Callable[[], None]] = {
        "evalkit": lambda: evalkit_statistics(files[0].parent, extractor),
        "pytorch_fid": lambda: pytorch_fid_statistics(files, model),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats):
        order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in order:
            seconds[name].append(timed(runs[name]))
    figures = {name: throughput(count, times) for name, times in seconds.items()}
    ratio = figures["evalkit"]["best_images_per_s"] / figures["pytorch_fid"]["best_images_per_s"]
    return {"images": count, "image_size": 128, "dims": DIMS, "repeats": repeats, **figures,
            "evalkit_over_pytorch_fid_best": round(ratio, 3)}


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="evalkit-speed-") as tmp:
        work = Path(tmp)
        install_random_weights(work / "torch")
        cache_dir = work / "feature-cache"
        load_before = load_average()
        end_to_end = time_evalkit_run(work / "run-empty-cache", cache_dir, work / "run-empty-cache.log")
        print(f"evalkit run, empty cache: {end_to_end:.1f} s", flush=True)
        cached = time_evalkit_run(work / "run-cached", cache_dir, work / "run-cached.log")
        print(f"evalkit run, cached: {cached:.1f} s", flush=True)
        status = fid_status(work / "run-cached")
        inception = compare_inception(work, args.images, args.repeats)
        print(f"inception: evalkit {inception['evalkit']['best_images_per_s']} images/s, "
              f"pytorch-fid {inception['pytorch_fid']['best_images_per_s']} images/s", flush=True)
    report = {
        "command": " ".join(["evalkit", *evalkit_run_command(Path("<tmp>/run"), Path("<tmp>/cache"))[3:]]),
        "end_to_end_s": round(end_to_end, 1),
        "cached_rerun_s": round(cached, 1),
        "rerun_speedup": round(end_to_end / cached, 2),
        "fid_status": status,
        "goals_s": GOALS,
        "meets_goals": {name: value <= GOALS[name] for name, value in
                        {"end_to_end_s": end_to_end, "cached_rerun_s": cached}.items()},
        "inception": inception,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "torch": torch.__version__,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
