"""Face loading: JPEG/PNG of any size and mode, BGR->RGB fix, 64/128 px, values in [-1, 1]."""

from __future__ import annotations

import numpy as np
import pytest

from generator.data.faces import array_to_image, face_to_array, load_face, read_face_rgb
from generator.errors import DataError


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
