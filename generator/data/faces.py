"""Face loading: any JPEG/PNG, optional BGR->RGB fix, bilinear resize, scaled to [-1, 1] (reference notes §6.4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from generator.errors import DataError

IMAGE_SIZES = (64, 128)


def read_face_rgb(path: str | Path, swap_bgr: bool = False) -> Image.Image:
    """Open a face image as RGB; ``swap_bgr`` fixes crops that were written in BGR order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: face image not found")
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable JPEG/PNG image ({exc})") from None
    if rgb.width == 0 or rgb.height == 0:
        raise DataError(f"{path}: image is empty")
    if swap_bgr:
        r, g, b = rgb.split()
        rgb = Image.merge("RGB", (b, g, r))
    return rgb


def face_to_array(img: Image.Image, size: int) -> np.ndarray:
    """Bilinear resize to size x size and scale to [-1, 1], float32 CHW."""
    if size not in IMAGE_SIZES:
        raise DataError(f"image size {size} is not supported (use one of {IMAGE_SIZES})")
    resized = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(resized, dtype=np.float32)
    return ((arr - 127.5) / 127.5).transpose(2, 0, 1).copy()


def load_face(path: str | Path, size: int, swap_bgr: bool = False) -> np.ndarray:
    """One face as the model's target: float32 (3, size, size) in [-1, 1], RGB order."""
    return face_to_array(read_face_rgb(path, swap_bgr), size)


def array_to_image(arr: np.ndarray) -> Image.Image:
    """Inverse of ``face_to_array``: a CHW array in [-1, 1] to an 8-bit RGB image."""
    hwc = np.clip((np.asarray(arr).transpose(1, 2, 0) + 1.0) * 127.5, 0, 255)
    return Image.fromarray(np.round(hwc).astype(np.uint8), "RGB")
