"""Source images of a study as 8-bit RGB: the toolkit's one image rule, kept here so the app depends on no other
package of the toolkit (the same rule as ``generator.data.faces.read_image_rgb``; its tests cover both).

16-bit grey (``I;16*``, and ``I`` holding 0..65535) keeps the high byte, as Pillow reduces 48-bit RGB; ``F`` in
[0, 1] is scaled by 255; transparency is composited over black; EXIF orientation is applied; anything without a
known intensity scale, or that Pillow cannot convert, is an ``ImageError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageError(ValueError):
    """A source image cannot be shown faithfully as 8-bit RGB; the message names the file."""


def read_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageError(f"{path}: not a readable image ({error})") from None
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = (0, 65535) if mode != "F" else (0, 1)
        if values.size and (not np.all(np.isfinite(values)) or values.min() < low or values.max() > high):
            raise ImageError(f"{path}: {mode} image with values outside {low}..{high}; its intensity scale is unknown")
        grey = np.round(values * 255) if mode == "F" else values.astype(np.int64) >> 8
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")
    try:
        if mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in image.info:
            rgba = image.convert("LA").convert("RGBA") if mode == "La" else image.convert("RGBA")
            return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB")
        return image.convert("RGB")
    except ValueError as error:
        raise ImageError(f"{path}: image mode {mode} cannot be converted to 8-bit RGB ({error})") from None
