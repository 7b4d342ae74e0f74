"""VGG-Face (VGG16) in PyTorch, loading keras-vggface's ``rcmalli_vggface_tf_vgg16.h5`` / ``_notop_`` with h5py.

keras-vggface preprocessing (``utils.preprocess_input``, version 1): 224 x 224, RGB -> BGR, per-channel means
subtracted (B 93.5940, G 104.7624, R 129.1863), values 0-255. Features: ``fc7`` after its ReLU (4096-d) from the full
model, or ``pool5`` flattened (25088-d) from the no-top model. Keras stores Conv2D kernels as (kh, kw, in, out) and
Dense kernels as (in, out); ``fc6`` follows a channels-last Flatten of 7 x 7 x 512, whose rows are reordered to
PyTorch's channels-first flatten.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from evalkit.errors import EvalError
from evalkit.features import FeatureExtractor, Features, register_extractor
from evalkit.options import RunOptions
from generator.runtime import pick_device, sha256_file

INPUT_SIZE = 224
BGR_MEANS = (93.5940, 104.7624, 129.1863)
CONV_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
POOL5_SHAPE = (512, 7, 7)
BATCH_SIZE = 16
WEIGHTS_FILES = "rcmalli_vggface_tf_vgg16.h5 or rcmalli_vggface_tf_notop_vgg16.h5"


def conv_layers() -> list[tuple[str, int]]:
    """(Keras layer name, output channels) of the 13 convolutions."""
    return [(f"conv{b + 1}_{c + 1}", channels) for b, (channels, count) in enumerate(CONV_BLOCKS) for c in range(count)]


class VGGFace16(nn.Module):
    """keras-vggface's VGG16 up to fc7 (``include_top``) or pool5; layer names match the Keras ones."""

    def __init__(self, include_top: bool) -> None:
        super().__init__()
        self.include_top = include_top
        self.convs = nn.ModuleDict()
        in_channels = 3
        for name, out_channels in conv_layers():
            self.convs[name] = nn.Conv2d(in_channels, out_channels, 3, padding=1)
            in_channels = out_channels
        if include_top:
            self.fc6 = nn.Linear(int(np.prod(POOL5_SHAPE)), 4096)
            self.fc7 = nn.Linear(4096, 4096)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        names = iter(name for name, _ in conv_layers())
        for _, count in CONV_BLOCKS:
            for _ in range(count):
                x = torch.relu(self.convs[next(names)](x))
            x = nn.functional.max_pool2d(x, 2, 2)
        x = x.flatten(1)
        if self.include_top:
            x = torch.relu(self.fc7(torch.relu(self.fc6(x))))
        return x


def _layer_weights(group, layer: str, path: Path) -> list[np.ndarray]:
    if layer not in group:
        raise EvalError(f"{path}: not keras-vggface VGG16 weights (no layer {layer!r}; expected {WEIGHTS_FILES})")
    names = [n.decode() if isinstance(n, bytes) else n for n in group[layer].attrs.get("weight_names", [])]
    if len(names) != 2:
        raise EvalError(f"{path}: layer {layer!r} has {len(names)} weight arrays, expected kernel and bias")
    return [np.asarray(group[layer][n]) for n in names]


def dense_kernel_from_channels_last(kernel: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """A Keras Dense kernel (H*W*C, out) after a channels-last Flatten, as a PyTorch weight (out, C*H*W)."""
    channels, height, width = shape
    return kernel.reshape(height, width, channels, -1).transpose(3, 2, 0, 1).reshape(kernel.shape[1], -1)


def _assign(param: torch.Tensor | nn.Module, value: np.ndarray, path: Path, what: str) -> None:
    if not isinstance(param, torch.Tensor):
        raise TypeError(f"{what}: not a tensor")  # a layer attribute, always a Parameter here
    if tuple(param.shape) != value.shape:
        raise EvalError(f"{path}: {what} has shape {value.shape}, VGG16 expects {tuple(param.shape)}")
    param.data.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


def load_vggface_h5(path: str | Path) -> VGGFace16:
    """VGGFace16 from a keras-vggface .h5 (``save_weights`` layout, or a full model's ``model_weights``)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise EvalError(f"{path}: VGGFace weights file not found (--vggface-weights)")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise EvalError(f"{path}: not an HDF5 weights file ({exc})") from None
    with handle:
        group = handle.get("model_weights", handle)
        model = VGGFace16(include_top="fc6" in group)
        for name, _ in conv_layers():
            kernel, bias = _layer_weights(group, name, path)
            _assign(model.convs[name].weight, kernel.transpose(3, 2, 0, 1), path, f"{name} kernel")
            _assign(model.convs[name].bias, bias, path, f"{name} bias")
        if model.include_top:
            kernel, bias = _layer_weights(group, "fc6", path)
            if kernel.shape[0] != int(np.prod(POOL5_SHAPE)):
                raise EvalError(f"{path}: fc6 kernel has shape {kernel.shape}, "
                                f"VGG16 expects ({int(np.prod(POOL5_SHAPE))}, 4096)")
            _assign(model.fc6.weight, dense_kernel_from_channels_last(kernel, POOL5_SHAPE), path, "fc6 kernel")
            _assign(model.fc6.bias, bias, path, "fc6 bias")
            kernel, bias = _layer_weights(group, "fc7", path)
            _assign(model.fc7.weight, kernel.T, path, "fc7 kernel")
            _assign(model.fc7.bias, bias, path, "fc7 bias")
    return model.eval()


def preprocess(images: np.ndarray) -> torch.Tensor:
    """uint8 RGB (N, H, W, 3) -> keras-vggface version-1 input: bilinear 224 x 224, BGR, means subtracted, NCHW."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    x = nn.functional.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return x.flip(1) - torch.tensor(BGR_MEANS).view(1, 3, 1, 1)


class VGGFaceExtractor(FeatureExtractor):
    name = "vggface"
    batch_size = BATCH_SIZE
    version = "1"

    def __init__(self, weights: Path, device: torch.device) -> None:
        self.weights = Path(weights)
        self.model = load_vggface_h5(self.weights).to(device)
        self.device = device
        self.weights_sha256 = sha256_file(self.weights)

    def settings(self) -> dict:
        return {"weights_sha256": self.weights_sha256, "layer": "fc7" if self.model.include_top else "pool5",
                "preprocess": "bilinear 224, BGR, VGGFace v1 means"}

    def provenance(self) -> dict:
        return {"path": str(self.weights), "sha256": self.weights_sha256, "layer": self.settings()["layer"]}

    @torch.inference_mode()
    def extract(self, images: np.ndarray) -> Features:
        rows = [
            self.model(preprocess(images[start : start + BATCH_SIZE]).to(self.device)).cpu().numpy()
            for start in tqdm(range(0, len(images), BATCH_SIZE), desc="vggface features", unit="batch", disable=None)
        ]
        return {"features": np.concatenate(rows).astype(np.float32)}


def default_weights() -> Path | None:
    """keras-vggface's own cached file (``evalkit weights fetch vggface`` puts it there), full model first."""
    from evalkit.weights import WEIGHTS

    return next((p for p in (WEIGHTS["vggface"].path(), WEIGHTS["vggface-notop"].path()) if p.is_file()), None)


@register_extractor("vggface")
def make_vggface(options: RunOptions) -> VGGFaceExtractor:
    weights = options.vggface_weights or default_weights()
    if weights is None:
        raise EvalError(f"the vggface backbone needs keras-vggface's {WEIGHTS_FILES}: run `evalkit weights fetch "
                        "vggface` (about 580 MB; `vggface-notop` about 59 MB) or pass --vggface-weights FILE")
    return VGGFaceExtractor(weights, pick_device(options.device))
