"""Speed of dlib face descriptors: dlib's own per-image ``compute_face_descriptor`` (evalkit's path until extractor
version 2) against evalkit's (dlib's face chip + the PyTorch port of dlib's ResNet, batched), in the same run.

Images: the embedded evaluation set's real faces and the included checkpoint's faces for its clips, at the
checkpoint's size (64 px), as ``evalkit run`` sees them; ``--images`` of them, half real and half generated. Each is
detected once (HOG, ``--detector-size`` 256, no upsampling) and its 68-point shape computed; both descriptor paths
then start from the same shapes. Timed, in alternation (old, new, old, new, ... for ``--repeats`` pairs, the ratio
taken pair by pair):

* ``descriptor``: the descriptor stage alone: dlib per image vs chips + batched network (batches of 64);
* ``extractor``: detection, landmarks and descriptors of every image: the old extractor's work vs
  ``DlibFaceExtractor.extract``.

Other options, timed once per pair for the record: dlib's batched API (``compute_face_descriptor`` on a list of
images and shapes: dlib batches its network by 16), dlib per image in 2 worker processes, and the network with 1 and
2 fixed torch threads instead of the free-core policy (evalkit/threads.py). The agreement (minimum cosine of the two
descriptors of an image, over every image) is printed too.

    python benchmarks/face_descriptors.py [--images 300] [--repeats 3]

Figures are wall-clock seconds per image on a shared machine; the load average before and after is in the JSON on
the last line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics as stats
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import dlib
import numpy as np
import torch
from tqdm import tqdm

from evalkit.features.dlib_detect import Face
from evalkit.features.dlib_faces import CHUNK, DESCRIPTOR_FILE, DlibFaceExtractor, dlib_model
from evalkit.options import EMBEDDED_DATA, RunOptions
from evalkit.threads import cpu_threads
from generator.checkpoint import load_generator
from generator.data.audio import load_speech
from generator.data.faces import array_to_image, face_to_array, read_face_rgb
from generator.dataset_builder.dlib_resnet import CHIP_PADDING, CHIP_SIZE
from generator.synthesis import generate

WORKERS = 2
GOAL_RATIO = 5.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="faces timed, half real and half generated")
    parser.add_argument("--repeats", type=int, default=3, help="alternated old/new pairs")
    return parser.parse_args()


def embedded_images(count: int) -> np.ndarray:
    """``count // 2`` real faces and ``count - count // 2`` generated faces of the embedded set (uint8, 64 px)."""
    checkpoint = load_generator()
    size = checkpoint.config.image_size
    with open(EMBEDDED_DATA, newline="") as f:
        rows = list(csv.DictReader(f))
    faces = sorted({r["face"]: r for r in rows}.values(), key=lambda r: r["face"])
    real = [np.asarray(array_to_image(face_to_array(read_face_rgb(EMBEDDED_DATA.parent / r["face"],
                                                                  r["face_order"] == "bgr"), size)))
            for r in faces[: count // 2]]
    clips = [r["audio"] for r in rows][: count - len(real)]
    speech = np.stack([load_speech(EMBEDDED_DATA.parent / c, checkpoint.config.audio_seconds, checkpoint.normalisation)
                       for c in clips])
    generated = torch.cat([generate(checkpoint.model, torch.from_numpy(speech[k : k + 64])[:, None], "eval", 0,
                                    checkpoint.output_order) for k in range(0, len(speech), 64)])
    return np.stack(real + [np.asarray(array_to_image(face)) for face in generated.numpy()])


def timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def dlib_per_image(encoder, faces: list[Face]) -> np.ndarray:
    return np.array([encoder.compute_face_descriptor(f.pixels, f.shape) for f in faces], dtype=np.float32)


def dlib_batched(encoder, faces: list[Face]) -> np.ndarray:
    rows = []
    for k in range(0, len(faces), CHUNK):
        chunk = faces[k : k + CHUNK]
        out = encoder.compute_face_descriptor([f.pixels for f in chunk],
                                              [dlib.full_object_detections([f.shape]) for f in chunk])
        rows += [vectors[0] for vectors in out]
    return np.array(rows, dtype=np.float32)


def ours(extractor: DlibFaceExtractor, faces: list[Face], threads: int | None = None) -> np.ndarray:
    rows = []
    for k in range(0, len(faces), CHUNK):
        chips = np.stack([dlib.get_face_chip(f.pixels, f.shape, size=CHIP_SIZE, padding=CHIP_PADDING)
                          for f in faces[k : k + CHUNK]])
        if threads is None:
            rows.append(extractor.descriptors(chips))
        else:
            with cpu_threads(threads), torch.inference_mode():
                rows.append(extractor.network(torch.from_numpy(chips)).numpy())
    return np.concatenate(rows)


_worker_encoder = None


def _worker_start() -> None:
    global _worker_encoder
    _worker_encoder = dlib.face_recognition_model_v1(str(dlib_model(DESCRIPTOR_FILE)))


def _worker_descriptor(task: tuple[np.ndarray, tuple[int, int, int, int], list[tuple[int, int]]]) -> np.ndarray:
    pixels, box, points = task
    shape = dlib.full_object_detection(dlib.rectangle(*box), [dlib.point(x, y) for x, y in points])
    return np.asarray(_worker_encoder.compute_face_descriptor(pixels, shape), dtype=np.float32)


def dlib_processes(pool: ProcessPoolExecutor, faces: list[Face]) -> np.ndarray:
    tasks = [(f.pixels, (f.shape.rect.left(), f.shape.rect.top(), f.shape.rect.right(), f.shape.rect.bottom()),
              [(p.x, p.y) for p in f.shape.parts()]) for f in faces]
    return np.array(list(pool.map(_worker_descriptor, tasks, chunksize=16)))


def old_extractor(extractor: DlibFaceExtractor, encoder, images: np.ndarray) -> np.ndarray:
    """Evalkit's extractor version 1: detection, landmarks and dlib's descriptor, image by image."""
    return dlib_per_image(encoder, list(extractor.faces(images)))


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def main() -> None:
    args = parse_args()
    load_before = os.getloadavg()
    options = RunOptions(device="cpu")
    images = embedded_images(args.images)
    n = len(images)
    extractor = DlibFaceExtractor(options.detector_size, options.detector_upsample)
    encoder = dlib.face_recognition_model_v1(str(dlib_model(DESCRIPTOR_FILE)))
    faces = list(tqdm(extractor.faces(images), total=n, desc="detecting", unit="image"))
    ours(extractor, faces[:CHUNK])  # warm-up: weights read, oneDNN kernels chosen
    seconds: dict[str, list[float]] = {k: [] for k in ("dlib_per_image", "ours", "old_extractor", "new_extractor",
                                                       "dlib_batched", f"dlib_{WORKERS}_processes",
                                                       "ours_1_thread", "ours_2_threads")}
    agreement = []
    with ProcessPoolExecutor(WORKERS, initializer=_worker_start) as pool:
        dlib_processes(pool, faces[:WORKERS])  # workers started and models loaded before timing
        for _ in tqdm(range(args.repeats), desc="pairs", unit="pair"):
            s, theirs = timed(lambda: dlib_per_image(encoder, faces))
            seconds["dlib_per_image"].append(s)
            s, mine = timed(lambda: ours(extractor, faces))
            seconds["ours"].append(s)
            agreement.append(min_cosine(mine, theirs))
            seconds["old_extractor"].append(timed(lambda: old_extractor(extractor, encoder, images))[0])
            s, features = timed(lambda: extractor.extract(images))
            seconds["new_extractor"].append(s)
            agreement.append(min_cosine(features["descriptor"], theirs))
            for name, action in (("dlib_batched", lambda: dlib_batched(encoder, faces)),
                                 (f"dlib_{WORKERS}_processes", lambda: dlib_processes(pool, faces)),
                                 ("ours_1_thread", lambda: ours(extractor, faces, 1)),
                                 ("ours_2_threads", lambda: ours(extractor, faces, 2))):
                s, other = timed(action)
                seconds[name].append(s)
                agreement.append(min_cosine(other, theirs))
    ratio = {"descriptor": [a / b for a, b in zip(seconds["dlib_per_image"], seconds["ours"], strict=True)],
             "extractor": [a / b for a, b in zip(seconds["old_extractor"], seconds["new_extractor"], strict=True)]}
    ms_per_image = {k: round(1000 * stats.median(v) / n, 2) for k, v in seconds.items()}
    for k, v in ms_per_image.items():
        print(f"{k:>20}: {v:7.2f} ms/image (median of {args.repeats})")
    for k, v in ratio.items():
        print(f"{k:>20}: old/new {stats.median(v):.2f}x (pairs: {', '.join(f'{r:.2f}' for r in v)})")
    print(f"{'agreement':>20}: min cosine to dlib's own descriptor {min(agreement):.7f} over {n} images")
    print(json.dumps({
        "images": n, "repeats": args.repeats, "ms_per_image_median": ms_per_image,
        "descriptor_speedup": round(stats.median(ratio["descriptor"]), 2),
        "extractor_speedup": round(stats.median(ratio["extractor"]), 2),
        "descriptor_speedup_pairs": [round(r, 2) for r in ratio["descriptor"]],
        "goal_descriptor_speedup": GOAL_RATIO, "min_cosine_to_dlib": round(min(agreement), 7),
        "torch_threads_default": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
