"""Image loading, the one rule of the toolkit (every image mode Pillow opens to 8-bit RGB, or one clear error), and
face loading: optional BGR->RGB fix, bilinear resize, scaled to [-1, 1] (reference notes §6.4)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from generator.errors import DataError

IMAGE_SIZES = (64, 128)


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
ALPHA_BACKGROUND = (0, 0, 0, 255)


def read_image_rgb(path: str | Path) -> Image.Image:
    """The one image loader of the toolkit: any file Pillow opens, as an 8-bit RGB image, or one DataError.

    Modes map faithfully (first frame of a multi-frame file, EXIF orientation applied):

    * 8-bit ``L``/``P``/``1``/``YCbCr``/``LAB``/``HSV``: Pillow's conversion;
    * 16-bit grey ``I;16``/``I;16B``/``I;16L``/``I;16N`` and ``I`` holding 0..65535 (16-bit PNG, TIFF, PGM, whose
      other maxvals Pillow scales to 16 bits): the high byte, ``v >> 8``, which is how Pillow and libpng
      (``png_set_strip_16``) reduce 48-bit RGB, so a grey image and its 48-bit RGB copy read the same; an 8-bit
      face stored x257 reads back exactly. (Pillow's own ``convert("RGB")`` clips these to 255: white faces.)
    * floating-point ``F`` with values in [0, 1]: ``round(255 v)``;
    * alpha (``LA``, ``PA``, ``RGBA``, ``RGBa``, a palette or colour key with transparency): composited over black,
      which leaves opaque pixels unchanged;
    * ``CMYK``: through its embedded ICC profile to sRGB when it has one, else Pillow's conversion.

    Refused with a DataError naming the file: a missing, unreadable, truncated or over-large (decompression bomb)
    file; an ``I`` image outside 0..65535 or an ``F`` image outside [0, 1] or not finite (their intensity scale is
    unknown); an empty image; any mode Pillow cannot convert.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    try:
        with Image.open(path) as opened:
            opened.load()
            rgb = _to_rgb8(ImageOps.exif_transpose(opened), path)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    if rgb.width == 0 or rgb.height == 0:
        raise DataError(f"{path}: image is empty")
    return rgb


def _to_rgb8(img: Image.Image, path: Path) -> Image.Image:
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img.copy()
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(img).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError(f"{path}: 32-bit integer image with values {values.min()}..{values.max()} outside "
                            "0..65535; its intensity scale is unknown (save it as 8- or 16-bit)")
        return Image.fromarray((values >> 8).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if values.size and (not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1):
            raise DataError(f"{path}: floating-point image with values outside [0, 1] (or not finite); its intensity "
                            "scale is unknown (save it as 8- or 16-bit)")
        return Image.fromarray(np.round(values * 255).astype(np.uint8), "L").convert("RGB")
    try:
        if mode == "CMYK" and img.info.get("icc_profile"):
            return _cmyk_via_icc(img, path)
        if mode in ALPHA_MODES or "transparency" in img.info:
            rgba = img.convert("RGBA") if mode != "La" else img.convert("LA").convert("RGBA")
            return Image.alpha_composite(Image.new("RGBA", rgba.size, ALPHA_BACKGROUND), rgba).convert("RGB")
        return img.convert("RGB")
    except ValueError as exc:
        raise DataError(f"{path}: image mode {mode} cannot be converted to 8-bit RGB ({exc})") from None


def _cmyk_via_icc(img: Image.Image, path: Path) -> Image.Image:
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
        # not in place, so an image comes back (None is only for inPlace=True)
        return cast(Image.Image, ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"),
                                                           outputMode="RGB"))
    except (ImageCms.PyCMSError, OSError):  # a broken profile: the plain conversion, as every viewer falls back to
        return img.convert("RGB")


def read_face_rgb(path: str | Path, swap_bgr: bool = False) -> Image.Image:
    """A face image as 8-bit RGB (``read_image_rgb``); ``swap_bgr`` fixes crops that were written in BGR order."""
    rgb = read_image_rgb(path)
    if swap_bgr:
        r, g, b = rgb.split()
        rgb = Image.merge("RGB", (b, g, r))
    return rgb


def face_to_array(img: Image.Image, size: int) -> np.ndarray:
    """Bilinear resize to size x size and scale to [-1, 1], float32 CHW."""
    if size not in IMAGE_SIZES:
        raise DataError(f"image size {size} is not supported (use one of {IMAGE_SIZES})")
    resized = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(resized, dtype=np.float32)
    return ((arr - 127.5) / 127.5).transpose(2, 0, 1).copy()


def load_face(path: str | Path, size: int, swap_bgr: bool = False) -> np.ndarray:
    """One face as the model's target: float32 (3, size, size) in [-1, 1], RGB order."""
    return face_to_array(read_face_rgb(path, swap_bgr), size)


def array_to_image(arr: np.ndarray) -> Image.Image:
    """Inverse of ``face_to_array``: a CHW array in [-1, 1] to an 8-bit RGB image."""
    hwc = np.clip((np.asarray(arr).transpose(1, 2, 0) + 1.0) * 127.5, 0, 255)
    return Image.fromarray(np.round(hwc).astype(np.uint8), "RGB")
