"""dlib detection, the speaker's face, crops and descriptors on the astronaut's face."""

from __future__ import annotations

import dlib
import numpy as np

from generator.dataset_builder import faces
from tests.generator.dataset_builder.media import canvas, with_faces


def test_model_files_are_found_without_importing_the_package():
    import sys

    folder = faces.model_dir()
    assert all((folder / name).is_file() for name in faces.MODEL_FILES.values())
    assert "face_recognition_models" not in sys.modules


def test_one_face_is_found_where_it_was_pasted():
    [box] = faces.detect_faces(with_faces([(100, 40, 180)]))
    centre = ((box.left + box.right) / 2, (box.top + box.bottom) / 2)
    assert 100 < centre[0] < 280 and 40 < centre[1] < 220
    assert faces.speaker_face([box], 0.5) == box


def test_no_face_on_a_plain_frame():
    assert faces.detect_faces(canvas()) == []
    assert faces.speaker_face([], 0.5) is None


def test_two_similar_faces_have_no_speaker_but_a_small_second_face_is_ignored():
    two = faces.detect_faces(with_faces([(10, 60, 170), (200, 60, 170)], width=400))
    assert len(two) == 2 and faces.speaker_face(two, 0.5) is None
    big_and_small = faces.detect_faces(with_faces([(10, 40, 200), (260, 60, 110)], width=400, height=300))
    assert len(big_and_small) == 2
    assert faces.speaker_face(big_and_small, 0.5) == big_and_small[0]


def test_crop_is_a_square_with_the_margin_on_each_side():
    columns = np.tile(np.arange(300, dtype=np.uint8)[None, :, None], (200, 1, 3))  # pixel value = x
    box = faces.Box(100, 20, 200, 100)  # 100 wide, 80 high: the square's side follows the width
    crop = np.asarray(faces.crop_face(columns, box, 0.5, 200)).astype(int)
    assert crop.shape == (200, 200, 3)
    assert abs(crop[100, 0, 0] - 50) <= 1 and abs(crop[100, 199, 0] - 249) <= 1  # x from 50 to 250
    assert crop[0, 100].max() == 0  # rows above the frame (y < 0) are black
    assert np.asarray(faces.crop_face(columns, box, 0.0, 64)).shape == (64, 64, 3)


def test_aligned_crop_and_descriptors():
    frame = with_faces([(100, 40, 180)])
    moved = with_faces([(130, 60, 150)])
    a, b = faces.detect_faces(frame)[0], faces.detect_faces(moved)[0]
    shape_a, shape_b = faces.landmarks(frame, a), faces.landmarks(moved, b)
    assert faces.aligned_face(frame, shape_a, 0.25, 96).size == (96, 96)
    da, db = faces.descriptors([faces.face_chip(frame, shape_a), faces.face_chip(moved, shape_b)])
    assert da.shape == (128,)
    assert np.linalg.norm(da - db) < 0.6  # the same person at another place and scale
    # dlib's own descriptor of the same chip (one call per face): the batched port gives the same vector
    reference = np.asarray(dlib.face_recognition_model_v1(faces._model_path("descriptor"))
                           .compute_face_descriptor(frame, shape_a))
    assert da @ reference / np.linalg.norm(da) / np.linalg.norm(reference) > 0.9999


def test_cnn_detector_finds_the_face():
    [box] = faces.detect_faces(with_faces([(100, 40, 180)]), "cnn", upsample=0)
    assert 100 < (box.left + box.right) / 2 < 280
