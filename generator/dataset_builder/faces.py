"""Face detection, the speaker's face, crops and identity descriptors, with dlib.

Models: dlib's HOG frontal detector (built in) or its CNN (MMOD) detector, the 5-point landmark predictor (alignment
and descriptors) and the ResNet face descriptor; the model files come from the PyPI package
``face-recognition-models``, located without importing it (its import pulls in pkg_resources). Descriptors are
dlib's ``compute_face_descriptor`` made fast: dlib's own face chip (``face_chip``) through our PyTorch port of its
ResNet (``generator.dataset_builder.dlib_resnet``, cosine > 0.9999 to dlib's), a batch of chips at a time
(``descriptors``): about a tenth of dlib's one call per face (benchmarks/face_descriptors.py).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dlib
import numpy as np
from PIL import Image

from generator.errors import DataError

CHIP_SIZE = 150
CHIP_PADDING = 0.25  # dlib's compute_face_descriptor default: the chip holds the face plus 25 % of its size each side

if TYPE_CHECKING:  # the port loads torch: imported where a network is built
    from generator.dataset_builder.dlib_resnet import DlibFaceResnet

Detector = Literal["hog", "cnn"]
MODEL_FILES = {
    "cnn": "mmod_human_face_detector.dat",
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
}


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def area(self) -> int:
        return max(0, self.right - self.left) * max(0, self.bottom - self.top)

    def rectangle(self) -> dlib.rectangle:
        return dlib.rectangle(self.left, self.top, self.right, self.bottom)


def model_dir() -> Path:
    """The ``models/`` folder of face-recognition-models, found without importing the package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the dlib model files are missing: pip install face-recognition-models")
    return Path(spec.submodule_search_locations[0]) / "models"


def _model_path(kind: str) -> str:
    path = model_dir() / MODEL_FILES[kind]
    if not path.is_file():
        raise DataError(f"dlib model file not found: {path} (reinstall face-recognition-models)")
    return str(path)


@cache
def _detector(kind: Detector) -> Any:  # dlib's detector objects (no type stubs)
    if kind == "hog":
        return dlib.get_frontal_face_detector()
    if kind == "cnn":
        return dlib.cnn_face_detection_model_v1(_model_path("cnn"))
    raise DataError(f"unknown face detector {kind!r} (use 'hog' or 'cnn')")


@cache
def _landmarks() -> Any:
    return dlib.shape_predictor(_model_path("landmarks"))


@cache
def _descriptor_network() -> DlibFaceResnet:
    from generator.dataset_builder.dlib_resnet import load_dlib_resnet

    return load_dlib_resnet(Path(_model_path("descriptor")))


def load_models(detector: Detector = "hog") -> None:
    """Load the detector, landmark and descriptor models now; each process keeps them once loaded."""
    _detector(detector)
    _landmarks()
    _descriptor_network()


def detect_faces(rgb: np.ndarray, detector: Detector = "hog", upsample: int = 1) -> list[Box]:
    """Face boxes in an RGB uint8 image, largest first."""
    found = _detector(detector)(rgb, upsample)
    rects = [d.rect if detector == "cnn" else d for d in found]
    boxes = [Box(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def speaker_face(boxes: list[Box], similar_ratio: float) -> Box | None:
    """The largest face, or None when another face is at least ``similar_ratio`` times its area (who speaks?)."""
    if not boxes:
        return None
    if len(boxes) > 1 and boxes[1].area >= similar_ratio * boxes[0].area:
        return None
    return boxes[0]


def landmarks(rgb: np.ndarray, box: Box) -> dlib.full_object_detection:
    return _landmarks()(rgb, box.rectangle())


def face_chip(rgb: np.ndarray, shape: dlib.full_object_detection) -> np.ndarray:
    """The face chip dlib's ``compute_face_descriptor`` embeds: uint8 (150, 150, 3), aligned on ``shape``, padding
    0.25 of the face's size on each side."""
    return dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)


DESCRIPTOR_BATCH = 64  # chips embedded at a time: memory stays flat however many faces a video has


def descriptors(chips: list[np.ndarray]) -> np.ndarray:
    """dlib's 128-d face descriptors (same person: Euclidean distance below about 0.6) of face chips
    (``face_chip``), float64 (N, 128), ``DESCRIPTOR_BATCH`` chips at a time, on the CPU."""
    import torch

    network = _descriptor_network()
    rows = [np.zeros((0, 128))]
    with torch.inference_mode():
        for start in range(0, len(chips), DESCRIPTOR_BATCH):
            batch = torch.from_numpy(np.stack(chips[start : start + DESCRIPTOR_BATCH]))
            rows.append(network(batch).numpy().astype(np.float64))
    return np.concatenate(rows)


def crop_face(rgb: np.ndarray, box: Box, margin: float, size: int) -> Image.Image:
    """A square crop around the box, ``margin`` of the box's side added on each side, resized to size x size.

    Parts of the square outside the frame are black.
    """
    side = max(box.right - box.left, box.bottom - box.top) * (1 + 2 * margin)
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    square = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    return Image.fromarray(rgb).crop(square).resize((size, size), Image.Resampling.BILINEAR)


def aligned_face(rgb: np.ndarray, shape: dlib.full_object_detection, margin: float, size: int) -> Image.Image:
    """dlib's 5-point alignment (eyes level, fixed scale), ``margin`` as its chip padding."""
    return Image.fromarray(dlib.get_face_chip(rgb, shape, size=size, padding=margin))


def thumbnail(rgb: np.ndarray, boxes: list[Box], side: int) -> Image.Image:
    """The frame shrunk to fit side x side, with the face boxes drawn (for the contact sheet of rejections)."""
    from PIL import ImageDraw

    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    width = max(2, img.width // 100)
    for b in boxes:
        draw.rectangle((b.left, b.top, b.right, b.bottom), outline=(255, 0, 0), width=width)
    img.thumbnail((side, side))
    return img
