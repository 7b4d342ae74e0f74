"""The PyTorch port of dlib's face-recognition ResNet against dlib itself, its file reader, and the thread policy."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from evalkit.features.dlib_faces import DESCRIPTOR_FILE, DlibFaceExtractor, dlib_model
from evalkit.options import EMBEDDED_DATA
from evalkit.threads import compute_threads, cpu_threads, limited_pools, pool_controller
from generator.checkpoint import load_generator
from generator.data.audio import load_speech
from generator.data.faces import array_to_image
from generator.dataset_builder.dlib_resnet import (
    CHIP_PADDING,
    CHIP_SIZE,
    DlibFormatError,
    load_dlib_resnet,
    read_dlib_resnet,
)
from generator.synthesis import generate
from tests.evalkit.support import embedded_face

MIN_COSINE = 0.9999


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def real_faces(size: int) -> np.ndarray:
    return np.stack([np.asarray(Image.open(embedded_face(person, k)).convert("RGB")
                                .resize((size, size), Image.BILINEAR))
                     for person in ("jaimealtozano", "javiermuniz") for k in (0, 7, 30)])


def generated_faces() -> np.ndarray:
    """Faces of the included checkpoint for three unseen-speech clips of each embedded identity."""
    checkpoint = load_generator()
    with open(EMBEDDED_DATA, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "unseen_speech"]
    clips = [r["audio"] for person in ("jaimealtozano", "javiermuniz")
             for r in [r for r in rows if r["identity"] == person][:3]]
    speech = np.stack([load_speech(EMBEDDED_DATA.parent / c, checkpoint.config.audio_seconds, checkpoint.normalisation)
                       for c in clips])
    faces = generate(checkpoint.model, torch.from_numpy(speech)[:, None], "eval", 0, checkpoint.output_order)
    return np.stack([np.asarray(array_to_image(face)) for face in faces.numpy()])


@pytest.fixture(scope="module")
def extractor() -> DlibFaceExtractor:
    return DlibFaceExtractor(detector_size=256, upsample=0)


def dlib_own_descriptors(extractor: DlibFaceExtractor, images: np.ndarray) -> np.ndarray:
    """dlib's ``compute_face_descriptor``, one call per image, on the extractor's own detections."""
    import dlib

    encoder = dlib.face_recognition_model_v1(str(dlib_model(DESCRIPTOR_FILE)))
    return np.array([encoder.compute_face_descriptor(face.pixels, face.shape) for face in extractor.faces(images)])


@pytest.mark.parametrize("source", ["real", "generated"])
def test_descriptors_equal_dlibs_on_embedded_faces(extractor, source):
    images = real_faces(64) if source == "real" else generated_faces()
    ours = extractor.extract(images)
    theirs = dlib_own_descriptors(extractor, images)
    assert ours["descriptor"].shape == (6, 128) and ours["descriptor"].dtype == np.float32
    assert cosines(ours["descriptor"], theirs).min() >= MIN_COSINE
    np.testing.assert_allclose(ours["descriptor"], theirs, atol=1e-4)
    if source == "real":  # the generated faces need not all be found; the descriptor is compared either way
        assert ours["detected"].all()


def test_chips_are_the_ones_compute_face_descriptor_uses(extractor):
    """dlib's descriptor of its own ``get_face_chip`` equals its descriptor of the image and shape, bit for bit:
    the chip the extractor takes from dlib is the one dlib's network sees."""
    import dlib

    encoder = dlib.face_recognition_model_v1(str(dlib_model(DESCRIPTOR_FILE)))
    face = next(extractor.faces(real_faces(64)[:1]))
    chip = dlib.get_face_chip(face.pixels, face.shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    assert np.array_equal(np.asarray(encoder.compute_face_descriptor(chip)),
                          np.asarray(encoder.compute_face_descriptor(face.pixels, face.shape)))


def test_descriptors_do_not_depend_on_the_batch(extractor):
    chips = np.random.default_rng(0).integers(0, 256, (3, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    together = extractor.descriptors(chips)
    alone = np.concatenate([extractor.descriptors(chips[k : k + 1]) for k in range(3)])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_reader_reads_dlibs_network():
    weights = read_dlib_resnet(dlib_model(DESCRIPTOR_FILE))
    np.testing.assert_allclose(weights.means, (122.782, 117.001, 104.298), atol=1e-4)  # dlib's input_rgb_image_sized
    kinds = [layer.kind for layer, _ in weights.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds[-1] == "fc"
    network = load_dlib_resnet(dlib_model(DESCRIPTOR_FILE))
    assert network.stem.weight.shape == (32, 3, 7, 7) and len(network.convs) == 28
    assert network.fc.weight.shape == (128, 256)


@pytest.mark.parametrize("damage", ["truncated", "trailing", "other_dlib_file", "text"])
def test_reader_rejects_other_files(tmp_path, damage):
    data = dlib_model(DESCRIPTOR_FILE).read_bytes()
    path = tmp_path / "model.dat"
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "trailing":
        path.write_bytes(data + b"\0")
    elif damage == "other_dlib_file":
        path.write_bytes(dlib_model("mmod_human_face_detector.dat").read_bytes())
    else:
        path.write_text("not a network\n")
    with pytest.raises(DlibFormatError, match="not dlib's face-recognition ResNet"):
        read_dlib_resnet(path)


def test_threads_never_exceed_free_cores(monkeypatch):
    import evalkit.threads as threads

    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    with cpu_threads(4):
        assert compute_threads(0.0) == 4
        assert compute_threads(0.05) == 4  # a blip of another process leaves the core free
        assert compute_threads(0.5) == 3  # a core busy half the time is not free
        assert compute_threads(2.8) == 1 and compute_threads(9.0) == 1
        assert compute_threads(None) == 4  # not Linux: affinity and quota only
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two torchrun processes on this node share the cores
        assert compute_threads(0.0) == 2
    with cpu_threads(1):  # the process's own setting (OMP_NUM_THREADS, a test's set_num_threads) is an upper bound
        assert compute_threads(0.0) == 1
    before = torch.get_num_threads()
    with cpu_threads(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before


def test_pool_limits_reuse_one_controller_and_restore_the_pools():
    """One scan of the loaded libraries serves every limit (a ThreadpoolController per call cost ~4 ms); a module
    imported since makes the next limit rescan, so a library it loaded is limited too."""
    import sys
    import types

    from threadpoolctl import threadpool_info

    blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert pool_controller() is pool_controller()
    with limited_pools(1, "blas"):
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == blas
    before = pool_controller()
    sys.modules["evalkit_test_new_module"] = types.ModuleType("evalkit_test_new_module")
    try:
        assert pool_controller() is not before
    finally:
        del sys.modules["evalkit_test_new_module"]


def test_free_cores_are_sampled_between_pieces(monkeypatch):
    import evalkit.threads as threads

    assert isinstance(threads.other_running_threads(), int)  # this machine's /proc
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    counts = iter([1, 1, 0, 0, 0, 0])
    monkeypatch.setattr(threads, "other_running_threads", lambda: next(counts))
    meter = threads.FreeCores()
    with cpu_threads(2):
        meter.sample(), meter.sample()
        assert meter.threads() == 1  # the other core was busy while we sampled
        for _ in range(4):
            meter.sample()
        assert meter.threads() == 2 and meter.samples == []


def test_detection_in_worker_processes_equals_detection_in_one(extractor):
    """The same chips, landmarks and detections in forked workers as in this process, in order (the faces in a
    varied order, so a block returned out of place would show)."""
    from evalkit.features.dlib_detect import can_fork
    from evalkit.features.dlib_faces import PROCESSES_FROM

    if not can_fork():
        pytest.skip("no fork on this platform: detection stays in one process")
    faces = real_faces(64)
    images = faces[np.random.default_rng(0).integers(0, len(faces), PROCESSES_FROM + 5)]
    alone, spread = list(extractor.chip_blocks(images, 1)), list(extractor.chip_blocks(images, 2))
    assert len(alone) == len(spread) == 3
    for one, many in zip(alone, spread, strict=True):
        assert np.array_equal(one.chips, many.chips) and np.array_equal(one.detected, many.detected)
        assert np.array_equal(one.landmarks, many.landmarks, equal_nan=True)
    features = extractor.extract(images)
    assert features["detected"].sum() == sum(block.detected.sum() for block in alone)


def test_a_background_threads_limits_leave_the_process_blas_pool_to_the_main_thread():
    """A background thread's ``cpu_threads(1)`` (the voice embeddings' one thread) that ends inside a block of the
    main thread's limits its own torch threads and leaves the process's BLAS pool alone: the main thread's limits
    hold while both are open and the pool is back at its count after both (it was left at 1 before: each thread
    restored "its" previous value)."""
    import threading

    from threadpoolctl import threadpool_info

    def blas() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    original = blas()
    assert original, "numpy's BLAS pool should be visible to threadpoolctl"
    entered, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def background() -> None:
        with cpu_threads(1):
            seen.append(torch.get_num_threads())
            with limited_pools(1, "blas"):
                entered.set()
                release.wait(timeout=30)

    worker = threading.Thread(target=background, daemon=True)
    worker.start()
    try:
        assert entered.wait(timeout=30)
        assert seen == [1] and blas() == original and torch.get_num_threads() != 0
        mine = original[0] + 1  # a count the pool does not have by itself
        with limited_pools(mine, "blas"):
            assert blas() == [mine] * len(original)
            release.set()
            worker.join(timeout=30)
            assert blas() == [mine] * len(original)
    finally:
        release.set()
    assert blas() == original
