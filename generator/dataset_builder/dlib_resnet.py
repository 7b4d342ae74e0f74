"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch, read from dlib's own file.

The network (dlib's ``dnn_face_recognition_ex.cpp``, ``anet_type``; King, dlib 19.3, 2017: 99.38 % on LFW) maps a
150 x 150 RGB face chip to a 128-d descriptor; two faces of one person lie within Euclidean distance 0.6. It is a
ResNet-29 trained with a metric (pairwise hinge) loss:

* input: ``(pixel - mean) / 256`` per channel, the means (R 122.782, G 117.001, B 104.298) stored in the file;
* stem: 7 x 7 convolution, 32 filters, stride 2, no padding -> affine -> ReLU -> 3 x 3 max pool, stride 2;
* 14 residual blocks (convolution 3 x 3 -> affine -> ReLU -> convolution 3 x 3 -> affine, plus the input, -> ReLU):
  3 of 32 channels, then a downsampling block and 3 of 64, a downsampling block and 2 of 128, a downsampling block
  and 2 of 256, and a last downsampling block of 256. A downsampling block's first convolution has stride 2 and no
  padding, and its shortcut is a 2 x 2 average pool (stride 2). dlib adds tensors of different shapes by padding the
  smaller with zeros at the end of each axis (``tt::add``): the shortcut's missing channels are zeros, and in the
  last block a 1 x 1 residual meets a 2 x 2 shortcut;
* global average pool -> fully connected 256 -> 128 without bias (``fc_no_bias``; the descriptor, not normalised).

dlib's serialisation (``dlib/serialize.h``, ``dlib/dnn/core.h``): integers as a control byte (byte count in the low
nibble, 0x80 = negative) and that many little-endian bytes; strings as such an integer length and the bytes; floating
point numbers as an integer mantissa and exponent; booleans as the characters ``'0'``/``'1'``; tensors (version 2) as
four integer dimensions and little-endian float32 values. A network is written outside-in: each layer writes its
version, then the layers below it, then its own parameters, so all versions come first (top to bottom) and all
parameters after them (bottom to top). The layer sequence is not self-describing (a tag and a skip look alike), so it
is read against the architecture above, and every field is checked.

The affine layers are folded into the preceding convolutions (w * gamma, b * gamma + beta), which changes float32
rounding only; the descriptors match dlib's own to cosine > 0.9999 (tests/evalkit/test_dlib_resnet.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from generator.dataset_builder.faces import CHIP_PADDING, CHIP_SIZE
from generator.errors import DataError

__all__ = ["CHIP_PADDING", "CHIP_SIZE", "DESCRIPTOR_DIMS", "DlibFaceResnet", "load_dlib_resnet"]
DESCRIPTOR_DIMS = 128
STEM_FILTERS = 32
# (channels, downsampling first) of the residual blocks, input to output: dlib's alevel4 ... alevel0.
BLOCKS = ((32, False),) * 3 + ((64, True),) + ((64, False),) * 3 + ((128, True),) + ((128, False),) * 2 \
    + ((256, True),) + ((256, False),) * 2 + ((256, True),)


class DlibFormatError(DataError):
    """The file is not dlib's face-recognition ResNet as ``dlib.face_recognition_model_v1`` reads it."""


class _Reader:
    """dlib's ``serialize.h`` primitives over a bytes buffer."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.path}: not dlib's face-recognition ResNet (byte {self.pos}: {what})")

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise self.fail(f"file ends inside a field of {n} bytes")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte {control:#04x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def expect_int(self, expected: int, what: str) -> None:
        value = self.integer()
        if value != expected:
            raise self.fail(f"{what} is {value}, expected {expected}")

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if exponent >= 32000:  # dlib's float_details codes for inf, -inf, nan
            return {32000: float("inf"), 32001: float("-inf")}.get(exponent, float("nan"))
        return float(np.ldexp(float(mantissa), exponent))

    def boolean(self) -> bool:
        char = bytes(self.take(1))
        if char not in (b"0", b"1"):
            raise self.fail(f"bad boolean {char!r}")
        return char == b"1"

    def string(self) -> str:
        length = self.integer()
        if not 0 <= length <= 256:
            raise self.fail(f"string of {length} bytes")
        return bytes(self.take(length)).decode("latin-1")

    def tag(self, *accepted: str) -> str:
        found = self.string()
        if found not in accepted:
            raise self.fail(f"found {found!r} where {' or '.join(accepted)} was expected")
        return found

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor`` (version 2): (num_samples, k, nr, nc) float32."""
        self.expect_int(2, "tensor version")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias_shape(self) -> tuple[int, ...]:
        """An ``alias_tensor`` (version 1): only its shape; the values live in the layer's params tensor."""
        self.expect_int(1, "alias tensor version")
        return tuple(self.integer() for _ in range(4))


@dataclass(frozen=True)
class _Layer:
    """One node of dlib's layer stack, top (loss) to bottom (input)."""

    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc, tag, skip
    filters: int = 0
    size: int = 0
    stride: int = 0


def _stack() -> list[_Layer]:
    """dlib's ``anet_type`` below its loss layer, top to bottom."""
    layers = [_Layer("fc", DESCRIPTOR_DIMS), _Layer("avg_pool", 0, 0, 1)]  # avg_pool_everything: window 0 = all
    for channels, down in reversed(BLOCKS):
        block = [_Layer("affine"), _Layer("con", channels, 3, 1), _Layer("relu"), _Layer("affine"),
                 _Layer("con", channels, 3, 2 if down else 1), _Layer("tag")]
        if down:  # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<tag1<...>>>>>>>
            layers += [_Layer("relu"), _Layer("add_prev"), _Layer("avg_pool", 0, 2, 2), _Layer("skip"), _Layer("tag")]
        else:  # relu<add_prev1<block<tag1<...>>>>
            layers += [_Layer("relu"), _Layer("add_prev")]
        layers += block
    return layers + [_Layer("max_pool", 0, 3, 2), _Layer("relu"), _Layer("affine"), _Layer("con", STEM_FILTERS, 7, 2)]


def _read_details(reader: _Reader, layer: _Layer) -> dict[str, np.ndarray]:
    """One layer's parameters (its ``serialize(details)``), checked against ``layer``."""
    if layer.kind == "con":
        version = reader.tag("con_4", "con_5", "con_6")
        params = reader.tensor().ravel()
        reader.expect_int(layer.filters, "filters")
        for what in ("rows", "columns"):
            reader.expect_int(layer.size, f"filter {what}")
        for what in ("vertical", "horizontal"):
            reader.expect_int(layer.stride, f"{what} stride")
        for what in ("vertical", "horizontal"):  # dlib's default padding: size // 2 at stride 1, none otherwise
            reader.expect_int(layer.size // 2 if layer.stride == 1 else 0, f"{what} padding")
        weight_shape, bias_shape = reader.alias_shape(), reader.alias_shape()
        for _ in range(4):
            reader.real()  # learning-rate and weight-decay multipliers
        has_bias = reader.boolean() if version in ("con_5", "con_6") else True
        if version == "con_6" and reader.boolean():
            raise reader.fail("convolution with a fused ReLU")
        n_weight = int(np.prod(weight_shape))
        n_bias = int(np.prod(bias_shape)) if has_bias else 0
        if weight_shape[0] != layer.filters or params.size != n_weight + n_bias:
            raise reader.fail(f"convolution parameters {params.size} for filters {weight_shape}")
        bias = params[n_weight:] if has_bias else np.zeros(layer.filters, np.float32)
        return {"weight": params[:n_weight].reshape(weight_shape), "bias": bias}
    if layer.kind == "affine":
        version = reader.tag("affine_", "affine_2")
        params = reader.tensor().ravel()
        gamma, beta = reader.alias_shape(), reader.alias_shape()
        reader.expect_int(0, "affine mode (0 = per channel)")
        if version == "affine_2" and reader.boolean():
            raise reader.fail("disabled affine layer")
        channels = int(np.prod(gamma))
        if gamma != beta or params.size != 2 * channels:
            raise reader.fail(f"affine parameters {params.size} for {gamma}")
        return {"gamma": params[:channels], "beta": params[channels:]}
    if layer.kind == "relu":
        if reader.tag("relu_", "relu_2") == "relu_2" and reader.boolean():
            raise reader.fail("disabled ReLU")
        return {}
    if layer.kind in ("max_pool", "avg_pool"):
        reader.tag(f"{layer.kind}_2")
        for what in ("rows", "columns"):
            reader.expect_int(layer.size, f"pool {what}")
        for what in ("vertical", "horizontal"):
            reader.expect_int(layer.stride, f"pool {what} stride")
        for what in ("vertical", "horizontal"):
            reader.expect_int(0, f"pool {what} padding")
        return {}
    if layer.kind == "add_prev":
        reader.tag("add_prev_")
        return {}
    if layer.kind == "fc":
        version = reader.tag("fc_2", "fc_3")
        outputs, inputs = reader.integer(), reader.integer()
        params = reader.tensor().ravel()
        weight_shape, _ = reader.alias_shape(), reader.alias_shape()
        reader.expect_int(1, "fc bias mode (1 = no bias)")
        for _ in range(4):
            reader.real()
        if version == "fc_3":
            reader.boolean()
        if outputs != layer.filters or weight_shape[:2] != (inputs, outputs) or params.size != inputs * outputs:
            raise reader.fail(f"fc of {inputs} -> {outputs} with {params.size} parameters")
        return {"weight": params.reshape(inputs, outputs)}
    raise AssertionError(layer.kind)


def _read_layer_tail(reader: _Reader, version: int) -> None:
    """What an ``add_layer`` writes after its details: three flags and its (empty) work tensors."""
    for _ in range(3):
        reader.boolean()
    for _ in range(3):
        reader.tensor()
    if version >= 3:
        reader.integer()  # sample expansion factor


@dataclass
class DlibResnetWeights:
    """The parsed file: input means (R, G, B), and per layer of ``_stack()`` (bottom to top) its parameters."""

    means: tuple[float, float, float]
    layers: list[tuple[_Layer, dict[str, np.ndarray]]]


def read_dlib_resnet(path: str | Path) -> DlibResnetWeights:
    """Parse ``dlib_face_recognition_resnet_model_v1.dat``; raises DlibFormatError for any other file."""
    path = Path(path)
    try:
        reader = _Reader(path.read_bytes(), path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the dlib face-recognition model ({exc})") from None
    reader.expect_int(1, "loss layer version")
    if reader.tag("loss_metric_", "loss_metric_2") == "loss_metric_2":
        reader.real(), reader.real()  # margin, distance threshold: training only
    stack = _stack()
    versions = []
    for depth, layer in enumerate(stack):
        version = reader.integer()
        bottom = depth == len(stack) - 1
        allowed = (1,) if layer.kind in ("tag", "skip") else (2, 3) if bottom else (1, 2)
        if version not in allowed:
            raise reader.fail(f"layer {depth} ({layer.kind}) has version {version}")
        versions.append(version)
    reader.tag("input_rgb_image_sized")
    means = (reader.real(), reader.real(), reader.real())
    reader.expect_int(CHIP_SIZE, "input rows")
    reader.expect_int(CHIP_SIZE, "input columns")
    layers = []
    for layer, version in zip(reversed(stack), reversed(versions), strict=True):
        if layer.kind in ("tag", "skip"):
            continue
        layers.append((layer, _read_details(reader, layer)))
        _read_layer_tail(reader, version)
    if reader.pos != len(reader.data):
        raise reader.fail(f"{len(reader.data) - reader.pos} bytes left after the network")
    return DlibResnetWeights(means, layers)


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum over the larger shape, the smaller operand padded with zeros at the ends."""
    if a.shape == b.shape:
        return a + b
    shape = [max(x, y) for x, y in zip(a.shape, b.shape, strict=True)]

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, shape[3] - t.shape[3], 0, shape[2] - t.shape[2], 0, shape[1] - t.shape[1]))

    return pad(a) + pad(b)


class DlibFaceResnet(nn.Module):
    """dlib's ``anet_type`` with each affine folded into its convolution; input uint8 chips (N, 150, 150, 3) RGB."""

    def __init__(self, weights: DlibResnetWeights) -> None:
        super().__init__()
        self.register_buffer("means", torch.tensor(weights.means, dtype=torch.float32).view(1, 3, 1, 1))
        convs = []
        layers = iter(weights.layers)
        for layer, params in layers:
            if layer.kind == "con":
                affine_layer, affine = next(layers)
                if affine_layer.kind != "affine":
                    raise AssertionError("every convolution is followed by an affine layer")
                conv = nn.Conv2d(params["weight"].shape[1], layer.filters, layer.size, layer.stride,
                                 padding=layer.size // 2 if layer.stride == 1 else 0)
                gamma = torch.from_numpy(affine["gamma"])
                conv.weight.data = torch.from_numpy(params["weight"]) * gamma.view(-1, 1, 1, 1)
                conv.bias = nn.Parameter(torch.from_numpy(params["bias"]) * gamma
                                         + torch.from_numpy(affine["beta"]))
                convs.append(conv)
            elif layer.kind == "fc":
                self.fc = nn.Linear(params["weight"].shape[0], layer.filters, bias=False)
                self.fc.weight.data = torch.from_numpy(np.ascontiguousarray(params["weight"].T))
        self.stem = convs[0]
        self.convs = nn.ModuleList(convs[1:])
        if len(self.convs) != 2 * len(BLOCKS):
            raise AssertionError("two convolutions per residual block")
        self.requires_grad_(False)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """(N, 150, 150, 3) uint8 -> (N, 128) float32 descriptors."""
        x = (chips.permute(0, 3, 1, 2).float() - cast(torch.Tensor, self.means)) / 256.0
        x = x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x
        x = F.max_pool2d(torch.relu(self.stem(x)), 3, 2)
        for i, (_, down) in enumerate(BLOCKS):
            residual = self.convs[2 * i + 1](torch.relu(self.convs[2 * i](x)))
            shortcut = F.avg_pool2d(x, 2, 2) if down else x
            x = torch.relu(_add_zero_padded(shortcut, residual))
        return self.fc(x.mean(dim=(2, 3)))


def load_dlib_resnet(path: str | Path) -> DlibFaceResnet:
    """The network of ``path`` in eval mode, on the CPU."""
    return DlibFaceResnet(read_dlib_resnet(path)).eval()
