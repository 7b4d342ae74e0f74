"""dlib's per-image work for the dlib face features: resize, HOG detection, the 68-point shape and the face chip.

One function (``detect``) does an image's detection for every caller; ``Detector.chips`` turns a block of images into
what the descriptor network and the metrics need (chips, landmarks, detected). HOG detection is single-threaded and
holds the GIL (dlib's Python binding does not release it), so a run spreads blocks over worker processes
(``detect_in_processes``): the workers are forked from a process that has loaded the detector and the shape predictor,
take contiguous blocks of images and return their chips; blocks come back in order, at most a few in flight, so memory
stays flat however many images there are. Forked, not spawned: a spawned worker re-imports the caller's main module
(and fails under a script without a ``__main__`` guard), and costs ~0.5 s to start; a forked one starts at once. Fork
is safe here although the parent holds torch's OpenMP and CUDA state because a worker runs only dlib and PIL, which
use neither. Where fork does not exist (Windows) detection stays in one process. Same detections in any number of
processes: each image is detected alone (tests/evalkit/test_dlib_resnet.py).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from evalkit.errors import EvalError
from generator.dataset_builder.faces import CHIP_SIZE, face_chip

LANDMARK_POINTS = 68
IN_FLIGHT_PER_WORKER = 2  # blocks submitted ahead per worker: enough to keep it busy, few enough to bound memory


@dataclass
class Face:
    """One image's detection: the resized pixels dlib searched, the 68-point shape on them, and whether a face was
    found (else the shape was fitted to the whole image)."""

    pixels: np.ndarray  # (size, size, 3) uint8
    shape: Any  # dlib.full_object_detection, 68 parts
    detected: bool


@dataclass
class Chips:
    """A block's detections: ``chips`` (n, 150, 150, 3) uint8 dlib face chips, ``landmarks`` (n, 68, 2) float32
    (pixels of the resized image; NaN where no face was detected), ``detected`` (n,) bool."""

    chips: np.ndarray
    landmarks: np.ndarray
    detected: np.ndarray


class Detector:
    """dlib's HOG frontal detector and 68-point shape predictor (``landmarks_path``), loaded once, on images resized
    (bilinear) to ``size`` pixels and searched with ``upsample`` upsamplings."""

    def __init__(self, landmarks_path: Path, size: int, upsample: int) -> None:
        import dlib

        self.size, self.upsample = size, upsample
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(landmarks_path))
        self.whole = dlib.rectangle(0, 0, size - 1, size - 1)

    def detect(self, image: np.ndarray) -> Face:
        """The detection of one (H, W, 3) uint8 RGB image: the largest detected box, else the whole image."""
        pixels = np.asarray(Image.fromarray(image).resize((self.size, self.size), Image.Resampling.BILINEAR))
        boxes = self.detector(pixels, self.upsample)
        box = max(boxes, key=lambda b: b.area()) if len(boxes) else self.whole
        return Face(pixels, self.predictor(pixels, box), len(boxes) > 0)

    def chips(self, images: np.ndarray) -> Chips:
        """The ``Chips`` of (n, H, W, 3) uint8 RGB images."""
        n = len(images)
        out = Chips(np.empty((n, CHIP_SIZE, CHIP_SIZE, 3), np.uint8),
                    np.full((n, LANDMARK_POINTS, 2), np.nan, np.float32), np.zeros(n, bool))
        for i, image in enumerate(images):
            face = self.detect(image)
            out.detected[i] = face.detected
            if face.detected:
                out.landmarks[i] = [(point.x, point.y) for point in face.shape.parts()]
            out.chips[i] = face_chip(face.pixels, face.shape)
        return out


_WORKER: Detector | None = None  # the detector a forked worker inherits


def _worker_chips(images: np.ndarray) -> Chips:
    assert _WORKER is not None, "worker forked without a detector"
    return _WORKER.chips(images)


def can_fork() -> bool:
    """Whether worker processes can be forked here (not on Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


def detect_in_processes(detector: Detector, blocks: Iterator[np.ndarray], workers: int) -> Iterator[Chips]:
    """``detector.chips(block)`` of each block, in order, computed by ``workers`` forked processes with at most
    ``IN_FLIGHT_PER_WORKER`` blocks each in flight.

    Raises:
        ValueError: ``workers`` < 1, or no fork on this platform (``can_fork``).
        EvalError: a worker died (killed, e.g. out of memory).
    """
    global _WORKER
    if workers < 1 or not can_fork():
        raise ValueError(f"cannot detect in {workers} forked processes here")
    _WORKER = detector  # set before the pool forks its workers: each inherits the loaded models
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            pending: deque[Future[Chips]] = deque()
            for block in blocks:
                pending.append(pool.submit(_worker_chips, block))
                if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    except BrokenProcessPool:
        raise EvalError("a face-detection worker process died (killed, e.g. out of memory); free memory or run on "
                        "fewer cores (taskset)") from None
    finally:
        _WORKER = None
