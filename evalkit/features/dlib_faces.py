"""dlib face features: HOG face detection, the 68-point landmarks and the 128-d ResNet face descriptor, from one
detection per image.

Each image is resized (bilinear) to ``--detector-size`` pixels and searched by dlib's HOG frontal detector with
``--detector-upsample`` upsamplings. ``detected`` says whether a face was found (the landmark-detection ratio's event).
The 68-point predictor runs on the largest detected box, or on the whole image when none is found. That one shape
serves every use: ``landmarks`` (N, 68, 2) float32, the 68 iBUG 300-W points (x, y) of the largest detected face in
pixels of the resized ``detector_size`` image, NaN where no face was detected (craniofacial ratios), and the
descriptor, which every image has: dlib's ``compute_face_descriptor`` made fast. Its face chip is dlib's own
(``get_face_chip``: 150 px, padding 0.25, aligned on the 68 points, exactly the chip that ``compute_face_descriptor``
extracts) and its network our PyTorch port of dlib's ResNet reading dlib's own weights file
(``generator/dataset_builder/dlib_resnet.py``, shared with the dataset builder), run on batches of chips on the run's
device. Its descriptors equal dlib's to cosine > 0.9999
(tests/evalkit/test_dlib_resnet.py) at about a tenth of dlib's time (benchmarks/face_descriptors.py). Model files
come from the face-recognition-models package, located without importing it (its import needs pkg_resources).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from evalkit.errors import EvalError
from evalkit.features import FeatureExtractor, Features, register_extractor
from evalkit.features.dlib_detect import LANDMARK_POINTS, Chips, Detector, Face, can_fork, detect_in_processes
from evalkit.options import RunOptions
from evalkit.threads import FreeCores, cpu_threads
from generator.dataset_builder.dlib_resnet import CHIP_PADDING, CHIP_SIZE, DESCRIPTOR_DIMS, load_dlib_resnet
from generator.runtime import pick_device, sha256_file

LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CPU = torch.device("cpu")
CHUNK = 64  # images detected, then embedded as one batch: memory stays flat however many images there are
PROCESSES_FROM = 2 * CHUNK  # images from which detection is spread over worker processes (a block each at least)


def dlib_models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise EvalError("dlib face models missing: install the face-recognition-models package")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def dlib_model(name: str) -> Path:
    path = dlib_models_dir() / name
    if not path.is_file():
        raise EvalError(f"{path}: dlib model file missing (reinstall face-recognition-models)")
    return path


class DlibFaceExtractor(FeatureExtractor):
    name = "dlib"
    batch_size = CHUNK
    version = "3"  # 2: landmarks; 3: descriptors from the PyTorch port (float32 rounding differs from dlib's)

    def __init__(self, detector_size: int, upsample: int, device: torch.device = CPU) -> None:
        if detector_size < 64:
            raise EvalError(f"--detector-size must be at least 64 pixels, got {detector_size}")
        if upsample < 0:
            raise EvalError(f"--detector-upsample must be >= 0, got {upsample}")
        self.detector_size = detector_size
        self.upsample = upsample
        self.device = device
        self.landmarks_path = dlib_model(LANDMARKS_FILE)
        self.descriptor_path = dlib_model(DESCRIPTOR_FILE)
        self.hashes = {LANDMARKS_FILE: sha256_file(self.landmarks_path),
                       DESCRIPTOR_FILE: sha256_file(self.descriptor_path)}
        self._detector: Detector | None = None
        self._network: torch.nn.Module | None = None

    def settings(self) -> dict:
        return {"detector": "dlib HOG frontal", "resize": f"bilinear {self.detector_size}",
                "detector_size": self.detector_size, "upsample": self.upsample, "box": "largest, else whole image",
                "descriptor": f"dlib ResNet (PyTorch port), dlib face chip {CHIP_SIZE} px padding {CHIP_PADDING}",
                "weights_sha256": self.hashes}

    def provenance(self) -> dict:
        paths = {LANDMARKS_FILE: self.landmarks_path, DESCRIPTOR_FILE: self.descriptor_path}
        return {name: {"path": str(paths[name]), "sha256": digest} for name, digest in self.hashes.items()}

    def detector(self) -> Detector:
        """dlib's HOG detector and 68-point shape predictor in this process, loaded once."""
        if self._detector is None:
            self._detector = Detector(self.landmarks_path, self.detector_size, self.upsample)
        return self._detector

    @property
    def network(self) -> torch.nn.Module:
        if self._network is None:
            self._network = load_dlib_resnet(self.descriptor_path).to(self.device)
        return self._network

    def faces(self, images: np.ndarray) -> Iterator[Face]:
        """The one detection of each image (N, H, W, 3) uint8 RGB, in order, in this process."""
        detector = self.detector()
        return (detector.detect(image) for image in images)

    def chip_blocks(self, images: np.ndarray, workers: int) -> Iterator[Chips]:
        """The ``Chips`` of consecutive blocks of ``CHUNK`` images, in order: in ``workers`` processes when there
        are at least ``PROCESSES_FROM`` images, else in this one."""
        blocks = (images[start : start + CHUNK] for start in range(0, len(images), CHUNK))
        if workers > 1 and len(images) >= PROCESSES_FROM and can_fork():
            return detect_in_processes(self.detector(), blocks, workers)
        return (self.detector().chips(block) for block in blocks)

    @torch.inference_mode()
    def descriptors(self, chips: np.ndarray, threads: int | None = None) -> np.ndarray:
        """(N, 150, 150, 3) uint8 dlib face chips -> (N, 128) float32 descriptors, on the extractor's device; on the
        CPU with ``threads`` threads (default: the cores free now, evalkit.threads)."""
        batch = torch.from_numpy(chips).to(self.device)
        if self.device.type == "cpu":
            with cpu_threads(threads or FreeCores().threads()):
                return self.network(batch).numpy()
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # full float32, as dlib computes
            return self.network(batch).cpu().numpy()

    def extract(self, images: np.ndarray) -> Features:
        """``descriptor`` (N, 128) float32, ``detected`` (N,) bool and ``landmarks`` (N, 68, 2) float32 (pixels of the
        resized image, NaN without a detected face), for (N, H, W, 3) uint8 RGB images. Detection runs in as many
        processes as there are free cores (evalkit.threads), each block's descriptors in this one as it arrives."""
        n = len(images)
        detected = np.zeros(n, dtype=bool)
        landmarks = np.full((n, LANDMARK_POINTS, 2), np.nan, dtype=np.float32)
        descriptors = np.zeros((n, DESCRIPTOR_DIMS), dtype=np.float32)
        free_cores = FreeCores()  # sampled between blocks, read before each batch of descriptors
        start = 0
        with tqdm(total=n, desc="dlib faces", unit="image", disable=None) as progress:
            for block in self.chip_blocks(images, free_cores.threads()):
                rows = slice(start, start + len(block.chips))
                detected[rows], landmarks[rows] = block.detected, block.landmarks
                free_cores.sample()
                descriptors[rows] = self.descriptors(block.chips, free_cores.threads())
                start = rows.stop
                progress.update(len(block.chips))
        return {"descriptor": descriptors, "detected": detected, "landmarks": landmarks}


@register_extractor("dlib")
def make_dlib(options: RunOptions) -> DlibFaceExtractor:
    return DlibFaceExtractor(options.detector_size, options.detector_upsample, pick_device(options.device))
