"""Face loading: JPEG/PNG of any size and mode, BGR->RGB fix, 64/128 px, values in [-1, 1]."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generator.data.faces import array_to_image, face_to_array, load_face, read_face_rgb, read_image_rgb
from generator.errors import DataError
from survey_app.images import ImageError, read_rgb

LOADERS = [read_image_rgb, read_rgb]  # the toolkit's loader and the survey app's copy of its rule


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize(
    "name, dims, mode",
    [("a.png", (37, 53), "RGB"), ("b.jpg", (200, 180), "RGB"), ("c.png", (64, 64), "L"), ("d.png", (300, 300), "RGBA"),
     ("e.jpeg", (17, 17), "RGB"), ("f.png", (128, 96), "P")],
)
def test_any_image_becomes_chw_float_in_range(tmp_path, make_face, name, dims, mode, size):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(dims[1], dims[0], 3), dtype=np.uint8)
    face = load_face(make_face(tmp_path / name, pixels, mode=mode), size)
    assert face.shape == (3, size, size) and face.dtype == np.float32
    assert face.min() >= -1.0 and face.max() <= 1.0
    assert face.max() - face.min() > 0.5  # the content survived


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_white_and_black_map_to_the_range_ends(tmp_path, make_face, suffix):
    white = load_face(make_face(tmp_path / f"w{suffix}", (255, 255, 255), size=(50, 70)), 64)
    black = load_face(make_face(tmp_path / f"k{suffix}", (0, 0, 0), size=(50, 70)), 64)
    np.testing.assert_array_equal(white, np.ones((3, 64, 64), np.float32))
    np.testing.assert_array_equal(black, -np.ones((3, 64, 64), np.float32))


def test_mid_grey_value_by_hand(tmp_path, make_face):
    face = load_face(make_face(tmp_path / "g.png", (51, 102, 204)), 64)
    np.testing.assert_allclose(face[:, 10, 10], [(51 - 127.5) / 127.5, (102 - 127.5) / 127.5, (204 - 127.5) / 127.5])


def test_bgr_fix_swaps_red_and_blue(tmp_path, make_face):
    path = make_face(tmp_path / "stored_bgr.png", (255, 0, 0))  # a BGR crop of a blue thing, read as RGB: red
    as_stored = load_face(path, 64)
    fixed = load_face(path, 64, swap_bgr=True)
    np.testing.assert_array_equal(as_stored[:, 0, 0], [1.0, -1.0, -1.0])
    np.testing.assert_array_equal(fixed[:, 0, 0], [-1.0, -1.0, 1.0])
    np.testing.assert_array_equal(fixed, as_stored[::-1])
    assert read_face_rgb(path, swap_bgr=True).getpixel((0, 0)) == (0, 0, 255)


def test_array_to_image_inverts_face_to_array(tmp_path, make_face):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    face = load_face(make_face(tmp_path / "r.png", pixels), 64)
    img = array_to_image(face)
    assert img.size == (64, 64) and img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), pixels)  # same size: no resampling, exact round trip
    np.testing.assert_array_equal(face_to_array(img, 64), face)


@pytest.mark.parametrize("case, fragment", [("missing", "not found"), ("corrupt", "not a readable"),
                                            ("truncated", "not a readable"), ("text", "not a readable")])
def test_bad_images_give_one_clear_error_naming_the_file(tmp_path, make_face, case, fragment):
    path = tmp_path / f"{case}.png"
    if case == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    elif case == "truncated":
        full = make_face(tmp_path / "full.jpg", np.random.default_rng(2).integers(0, 256, (120, 120, 3), np.uint8))
        path = tmp_path / "truncated.jpg"
        path.write_bytes(full.read_bytes()[:400])
    elif case == "text":
        path.write_text("not an image")
    with pytest.raises(DataError) as err:
        load_face(path, 64)
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_unsupported_size_is_rejected(tmp_path, make_face):
    with pytest.raises(DataError, match="image size 96"):
        load_face(make_face(tmp_path / "x.png"), 96)


# ---------------------------------------------------------------------------------------------------------------
# the one image loader: every mode Pillow opens -> 8-bit RGB, faithfully, or one error naming the file
# ---------------------------------------------------------------------------------------------------------------

def _face8(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (24, 20, 3), dtype=np.uint8)


def _grey8(seed: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (24, 20), dtype=np.uint8)


def _save(tmp_path, name: str, image: Image.Image, **kwargs) -> Path:
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize("name, make", [
    ("grey16.png", lambda g: Image.fromarray(g.astype(np.uint16) * 257)),  # PNG 16-bit grey: mode I;16
    ("grey16.tif", lambda g: Image.fromarray(g.astype(np.uint16) * 257)),  # TIFF I;16
    ("grey16b.tif", lambda g: Image.frombytes("I;16B", g.shape[::-1], (g.astype(">u2") * 257).astype(">u2").tobytes())),
    ("grey32.tif", lambda g: Image.fromarray(g.astype(np.int32) * 257)),  # mode I
    ("greyf.tif", lambda g: Image.fromarray(g.astype(np.float32) / 255)),  # mode F in [0, 1]
    ("grey.png", lambda g: Image.fromarray(g)),  # L
    ("greyalpha.png", lambda g: Image.fromarray(np.stack([g, np.full_like(g, 255)], -1), "LA")),  # opaque LA
])
@pytest.mark.parametrize("loader", LOADERS)
def test_every_grey_mode_reads_as_the_8bit_grey_it_holds(tmp_path, name, make, loader):
    grey = _grey8()
    path = _save(tmp_path, name, make(grey))
    rgb = loader(path)
    assert rgb.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(rgb), np.repeat(grey[..., None], 3, axis=2))


def test_16bit_pgm_with_another_maxval_is_scaled_to_8_bits(tmp_path):
    values = np.arange(20, dtype=np.int64).reshape(4, 5) * 50  # maxval 1023: 10-bit data
    path = tmp_path / "ten_bit.pgm"
    path.write_bytes(b"P5\n5 4\n1023\n" + values.astype(">u2").tobytes())
    grey = np.asarray(read_image_rgb(path))[..., 0].astype(int)
    np.testing.assert_allclose(grey, values * 255 / 1023, atol=1.0)


def _png48(path: Path, rgb16: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    height, width, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("loader", LOADERS)
def test_16bit_grey_reads_as_its_48bit_rgb_png_copy(tmp_path, loader):
    grey16 = np.random.default_rng(5).integers(0, 65536, (16, 16)).astype(np.uint16)
    rgb48 = _png48(tmp_path / "rgb48.png", np.repeat(grey16[..., None], 3, axis=2))
    grey = _save(tmp_path, "grey16.png", Image.fromarray(grey16))
    np.testing.assert_array_equal(np.asarray(loader(grey)), np.asarray(loader(rgb48)))
    np.testing.assert_array_equal(np.asarray(loader(grey))[..., 0], grey16 >> 8)


@pytest.mark.parametrize("mode", ["RGB", "P", "CMYK", "YCbCr", "1"])
def test_colour_modes_use_pillows_conversion(tmp_path, mode):
    image = Image.fromarray(_face8()).convert(mode)
    path = _save(tmp_path, f"face_{mode}.{'tif' if mode in ('CMYK', 'YCbCr') else 'png'}", image)
    np.testing.assert_array_equal(np.asarray(read_image_rgb(path)), np.asarray(image.convert("RGB")))


@pytest.mark.parametrize("loader", LOADERS)
def test_transparency_is_composited_over_black(tmp_path, loader):
    face = _face8()
    alpha = np.full(face.shape[:2], 255, np.uint8)
    alpha[:5] = 0
    alpha[5:10] = 128
    path = _save(tmp_path, "rgba.png", Image.fromarray(np.dstack([face, alpha]), "RGBA"))
    rgb = np.asarray(loader(path)).astype(int)
    np.testing.assert_array_equal(rgb[10:], face[10:])  # opaque: unchanged
    np.testing.assert_array_equal(rgb[:5], 0)  # transparent: the background
    np.testing.assert_allclose(rgb[5:10], face[5:10].astype(int) * 128 / 255, atol=1)


@pytest.mark.parametrize("loader", LOADERS)
def test_palette_with_a_transparent_entry(tmp_path, loader):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette.putpixel((0, 0), 0)
    path = _save(tmp_path, "p.png", palette, transparency=0)
    rgb = np.asarray(loader(path))
    assert tuple(rgb[0, 0]) == (0, 0, 0) and tuple(rgb[1, 1]) == (200, 100, 50)


@pytest.mark.parametrize("loader", LOADERS)
def test_exif_orientation_is_applied(tmp_path, loader):
    face = _face8()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display after a 90 degree clockwise turn
    path = _save(tmp_path, "rotated.png", Image.fromarray(face), exif=exif)
    np.testing.assert_array_equal(np.asarray(loader(path)), np.rot90(face, k=-1))


@pytest.mark.parametrize("name, make", [
    ("big32.tif", lambda: Image.fromarray(np.full((4, 4), 70000, np.int32))),
    ("negative.tif", lambda: Image.fromarray(np.full((4, 4), -3, np.int32))),
    ("hdr.tif", lambda: Image.fromarray(np.full((4, 4), 3.5, np.float32))),
    ("nan.tif", lambda: Image.fromarray(np.full((4, 4), np.nan, np.float32))),
])
@pytest.mark.parametrize("loader", LOADERS)
def test_images_without_a_known_intensity_scale_are_refused(tmp_path, name, make, loader):
    path = _save(tmp_path, name, make())
    with pytest.raises((DataError, ImageError)) as err:
        loader(path)
    assert str(path) in str(err.value) and "outside" in str(err.value)


@pytest.mark.parametrize("loader", LOADERS)
def test_decompression_bomb_is_one_clear_error(tmp_path, monkeypatch, loader):
    path = _save(tmp_path, "big.png", Image.new("L", (300, 300)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises((DataError, ImageError), match="not a readable image"):
        loader(path)
