"""Feature extractors and the feature cache: Inception via pytorch-fid, dlib faces, VGGFace from .h5."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_fid.fid_score import get_activations

from evalkit.errors import EvalError, FeatureUnavailable
from evalkit.features import FeatureCache, FeatureExtractor, make_extractor
from evalkit.features.dlib_faces import DlibFaceExtractor
from evalkit.features.inception import WEIGHTS_FILE, InceptionExtractor, hub_weights_path
from evalkit.features.vggface import (
    BGR_MEANS,
    VGGFaceExtractor,
    conv_layers,
    dense_kernel_from_channels_last,
    load_vggface_h5,
    preprocess,
)
from evalkit.options import RunOptions
from tests.evalkit.support import embedded_face


def images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("dims", [64, 2048])
def test_inception_features_equal_pytorch_fid_activations(inception_weights, tmp_path, dims):
    extractor = InceptionExtractor(inception_weights, dims, torch.device("cpu"))
    batch = images(3)
    ours = extractor.extract(batch)["features"]
    files = []
    for k, image in enumerate(batch):
        files.append(tmp_path / f"{k}.png")
        Image.fromarray(image).save(files[-1])
    theirs = get_activations([str(f) for f in files], extractor.model, batch_size=3, dims=dims, device="cpu",
                             num_workers=0)
    assert ours.shape == (3, dims)
    np.testing.assert_array_equal(ours, theirs.astype(np.float32))  # bit-identical, not merely close


def test_inception_weights_from_the_hub_cache(inception_weights, private_caches):
    with pytest.raises(FeatureUnavailable, match=WEIGHTS_FILE):
        make_extractor("inception", RunOptions(device="cpu"))
    hub_weights_path().parent.mkdir(parents=True)
    hub_weights_path().symlink_to(inception_weights)
    extractor = make_extractor("inception", RunOptions(device="cpu", inception_dims=64))
    assert extractor.provenance()["path"] == str(hub_weights_path())


def test_inception_rejects_missing_and_foreign_weights(tmp_path):
    with pytest.raises(EvalError, match="not found"):
        make_extractor("inception", RunOptions(device="cpu", inception_weights=tmp_path / "none.pth"))
    foreign = tmp_path / "foreign.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), foreign)
    with pytest.raises(EvalError, match="another architecture"):
        InceptionExtractor(foreign, 2048, torch.device("cpu"))
    text = tmp_path / "text.pth"
    text.write_text("not weights")
    with pytest.raises(EvalError, match="not a PyTorch state dict"):
        InceptionExtractor(text, 2048, torch.device("cpu"))
    with pytest.raises(EvalError, match="dimension"):
        make_extractor("inception", RunOptions(device="cpu", inception_weights=foreign, inception_dims=100))


class CountingExtractor(FeatureExtractor):
    name = "counting"
    version = "1"

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.calls = 0

    def settings(self) -> dict:
        return {"scale": self.scale}

    def provenance(self) -> dict:
        return {}

    def extract(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"features": batch.reshape(len(batch), -1)[:, :4] * self.scale}


def test_feature_cache_computes_once_per_content_and_settings(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    extractor = CountingExtractor(2.0)
    first = cache.features(extractor, images(2))
    again = cache.features(CountingExtractor(2.0), images(2))
    np.testing.assert_array_equal(first["features"], again["features"])
    assert extractor.calls == 1
    other_settings = CountingExtractor(3.0)
    cache.features(other_settings, images(2))
    other_pixels = images(2, seed=1)
    cache.features(extractor, other_pixels)
    assert other_settings.calls == 1 and extractor.calls == 2
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 3


def test_dlib_detects_a_real_face_and_not_noise():
    face = np.asarray(Image.open(embedded_face()).convert("RGB").resize((64, 64), Image.BILINEAR))
    batch = np.stack([face, images(1)[0]])
    features = DlibFaceExtractor(detector_size=256, upsample=0).extract(batch)
    assert features["detected"].tolist() == [True, False]
    assert features["descriptor"].shape == (2, 128)
    assert np.all(np.linalg.norm(features["descriptor"], axis=1) > 0)
    points = features["landmarks"]
    assert points.shape == (2, 68, 2) and points.dtype == np.float32
    assert np.isnan(points[1]).all() and np.isfinite(points[0]).all()  # no face: no landmarks
    # iBUG 300-W order, image axes: the chin (8) lies below the nose tip (30), which lies below the nasion (27);
    # the subject's right eye's outer corner (36) is left of the left eye's (45)
    assert points[0, 8, 1] > points[0, 30, 1] > points[0, 27, 1] and points[0, 36, 0] < points[0, 45, 0]
    assert (points[0] >= 0).all() and (points[0] < 256 * 1.2).all()


def test_dlib_descriptors_group_by_person():
    faces = [np.asarray(Image.open(embedded_face(person, k)).convert("RGB").resize((64, 64), Image.BILINEAR))
             for person in ("jaimealtozano", "javiermuniz") for k in (0, 1)]
    d = DlibFaceExtractor(256, 0).extract(np.stack(faces))["descriptor"]
    same = [np.linalg.norm(d[0] - d[1]), np.linalg.norm(d[2] - d[3])]
    other = [np.linalg.norm(d[i] - d[j]) for i in (0, 1) for j in (2, 3)]
    assert max(same) < min(other)


def test_dlib_options_are_checked():
    with pytest.raises(EvalError, match="detector-size"):
        DlibFaceExtractor(32, 0)
    with pytest.raises(EvalError, match="upsample"):
        DlibFaceExtractor(256, -1)


def write_keras_vgg16_notop(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """keras ``save_weights`` layout: root attr layer_names; per layer attr weight_names; kernels (kh, kw, in, out)."""
    rng = np.random.default_rng(seed)
    kernels = {}
    with h5py.File(path, "w") as f:
        names = [name for name, _ in conv_layers()]
        f.attrs["layer_names"] = [n.encode() for n in ["input_1", *names[:2], "pool1", *names[2:]]]
        f.create_group("input_1").attrs["weight_names"] = []
        f.create_group("pool1").attrs["weight_names"] = []
        in_channels = 3
        for name, out_channels in conv_layers():
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            scale = np.sqrt(2.0 / (9 * in_channels))
            kernels[name] = (rng.normal(0, scale, (3, 3, in_channels, out_channels))).astype(np.float32)
            group.create_dataset(f"{name}/kernel:0", data=kernels[name])
            group.create_dataset(f"{name}/bias:0", data=rng.normal(0, 0.1, out_channels).astype(np.float32))
            in_channels = out_channels
    return kernels


def test_vggface_h5_loader_matches_keras_convolution(tmp_path):
    path = tmp_path / "rcmalli_vggface_tf_notop_vgg16.h5"
    kernels = write_keras_vgg16_notop(path)
    model = load_vggface_h5(path)
    assert not model.include_top
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32))
    ours = model.convs["conv1_1"](x)[0, :, 4, 4].detach().numpy()
    patch = x[0, :, 3:6, 3:6].numpy().transpose(1, 2, 0)  # (kh, kw, in), channels last as Keras sees it
    bias = model.convs["conv1_1"].bias.detach().numpy()
    keras = np.einsum("hwi,hwio->o", patch, kernels["conv1_1"]) + bias
    np.testing.assert_allclose(ours, keras, rtol=1e-5, atol=1e-5)
    features = VGGFaceExtractor(path, torch.device("cpu")).extract(images(2, size=64))["features"]
    assert features.shape == (2, 512 * 7 * 7)


def test_vggface_loader_rejects_other_files(tmp_path):
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as f:
        f.attrs["layer_names"] = [b"dense_1"]
        f.create_group("dense_1").attrs["weight_names"] = []
    with pytest.raises(EvalError, match="no layer 'conv1_1'"):
        load_vggface_h5(wrong)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(EvalError, match="not an HDF5"):
        load_vggface_h5(text)
    with pytest.raises(EvalError, match="--vggface-weights"):
        make_extractor("vggface", RunOptions(device="cpu"))


def test_fc6_rows_follow_keras_channels_last_flatten():
    rng = np.random.default_rng(0)
    shape = (4, 2, 3)  # channels, height, width
    activations = rng.normal(size=shape)
    kernel = rng.normal(size=(int(np.prod(shape)), 5))
    keras = activations.transpose(1, 2, 0).reshape(-1) @ kernel
    ours = dense_kernel_from_channels_last(kernel, shape) @ activations.reshape(-1)
    np.testing.assert_allclose(ours, keras)


def test_vggface_preprocessing_is_bgr_minus_means():
    red = np.zeros((1, 10, 10, 3), dtype=np.uint8)
    red[..., 0] = 255
    x = preprocess(red)
    assert x.shape == (1, 3, 224, 224)
    assert x[0, 0].mean().item() == pytest.approx(-BGR_MEANS[0], abs=1e-3)
    assert x[0, 2].mean().item() == pytest.approx(255 - BGR_MEANS[2], abs=1e-3)

