"""dlib face features: HOG face detection, the 68-point landmark predictor and the 128-d ResNet face descriptor.

Each image is resized (bilinear) to ``--detector-size`` pixels and searched by dlib's HOG frontal detector with
``--detector-upsample`` upsamplings. ``detected`` says whether a face was found (the landmark-detection ratio's event:
the 68-point predictor then runs). The descriptor is computed on the largest detected box, or on the whole image when
none is found, so every image has one. Model files come from the face-recognition-models package, located without
importing it (its import needs pkg_resources).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from evalkit.errors import EvalError
from evalkit.features import FeatureExtractor, Features, register_extractor
from evalkit.options import RunOptions
from generator.runtime import sha256_file

LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DESCRIPTOR_DIMS = 128


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
    version = "1"

    def __init__(self, detector_size: int, upsample: int) -> None:
        if detector_size < 64:
            raise EvalError(f"--detector-size must be at least 64 pixels, got {detector_size}")
        if upsample < 0:
            raise EvalError(f"--detector-upsample must be >= 0, got {upsample}")
        self.detector_size = detector_size
        self.upsample = upsample
        self.landmarks_path = dlib_model(LANDMARKS_FILE)
        self.descriptor_path = dlib_model(DESCRIPTOR_FILE)
        self.hashes = {LANDMARKS_FILE: sha256_file(self.landmarks_path), DESCRIPTOR_FILE: sha256_file(self.descriptor_path)}

    def settings(self) -> dict:
        return {"detector": "dlib HOG frontal", "resize": f"bilinear {self.detector_size}",
                "detector_size": self.detector_size, "upsample": self.upsample, "box": "largest, else whole image",
                "weights_sha256": self.hashes}

    def provenance(self) -> dict:
        paths = {LANDMARKS_FILE: self.landmarks_path, DESCRIPTOR_FILE: self.descriptor_path}
        return {name: {"path": str(paths[name]), "sha256": digest} for name, digest in self.hashes.items()}

    def extract(self, images: np.ndarray) -> Features:
        import dlib

        detector = dlib.get_frontal_face_detector()
        predictor = dlib.shape_predictor(str(self.landmarks_path))
        encoder = dlib.face_recognition_model_v1(str(self.descriptor_path))
        size = self.detector_size
        whole = dlib.rectangle(0, 0, size - 1, size - 1)
        detected = np.zeros(len(images), dtype=bool)
        descriptors = np.zeros((len(images), DESCRIPTOR_DIMS), dtype=np.float32)
        for i, image in enumerate(tqdm(images, desc="dlib faces", unit="image", disable=None)):
            pixels = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
            boxes = detector(pixels, self.upsample)
            detected[i] = len(boxes) > 0
            box = max(boxes, key=lambda b: b.area()) if detected[i] else whole
            descriptors[i] = np.asarray(encoder.compute_face_descriptor(pixels, predictor(pixels, box)))
        return {"descriptor": descriptors, "detected": detected}


@register_extractor("dlib")
def make_dlib(options: RunOptions) -> DlibFaceExtractor:
    return DlibFaceExtractor(options.detector_size, options.detector_upsample)
