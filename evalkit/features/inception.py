"""FID Inception features through pytorch-fid's ``InceptionV3`` (64 / 192 / 768 / 2048 dimensions).

Weights: ``--inception-weights FILE``, or pytorch-fid's own torch-hub cache file, downloaded there when absent with
its hash checked (``evalkit.weights``; not with ``--offline``). The state dict is read from disk (``weights_only``) and
handed to pytorch-fid's constructor; without the file the FID-family metrics are reported as unavailable, with why.
pytorch-fid is imported only to build the network (its import pulls in torchvision, seconds on a busy machine), so a
run without the weights does not pay for it.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

import numpy as np
import torch
from tqdm import tqdm

from evalkit.errors import EvalError, FeatureUnavailable
from evalkit.features import FeatureExtractor, Features, register_extractor
from evalkit.options import INCEPTION_DIMS, RunOptions
from evalkit.threads import FreeCores, cpu_threads
from evalkit.weights import WEIGHTS, ensure
from generator.runtime import pick_device, sha256_file

if TYPE_CHECKING:
    from pytorch_fid.inception import InceptionV3

WEIGHTS_FILE = WEIGHTS["inception"].url.rsplit("/", 1)[-1]
BATCH_SIZE = 50


def hub_weights_path() -> Path:
    """Where pytorch-fid's weights live in the torch hub cache (``$TORCH_HOME/hub/checkpoints``)."""
    return WEIGHTS["inception"].path()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise EvalError(f"{path}: Inception weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise EvalError(f"{path}: not a PyTorch state dict of FID Inception weights ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EvalError(f"{path}: not a state dict of tensors")
    return state


@contextmanager
def _weights_from_memory(state: dict[str, torch.Tensor]) -> Iterator[None]:
    """pytorch-fid fetches its weights with ``load_state_dict_from_url``; serve them from memory instead."""
    from pytorch_fid import inception as fid_inception

    with mock.patch.object(fid_inception, "load_state_dict_from_url", lambda *args, **kwargs: state):
        yield


def build_inception(state: dict[str, torch.Tensor], dims: int, source: Path) -> InceptionV3:
    """pytorch-fid's InceptionV3 up to the block of ``dims``, with ``state`` loaded strictly."""
    from pytorch_fid import inception as fid_inception

    try:
        with _weights_from_memory(state):
            model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise EvalError(
            f"{source}: weights of another architecture, not pytorch-fid's FID Inception ({first})") from None
    return model.eval()


class InceptionExtractor(FeatureExtractor):
    name = "inception"
    batch_size = BATCH_SIZE
    version = "2"  # 2: channels-first input made contiguous, bit-identical to pytorch-fid (1 ran channels-last)

    def __init__(self, weights: Path, dims: int, device: torch.device) -> None:
        if dims not in INCEPTION_DIMS:
            raise EvalError(f"Inception feature dimension must be one of {INCEPTION_DIMS}, got {dims}")
        self.weights = weights
        self.weights_sha256 = sha256_file(weights)
        self.dims = dims
        self.device = device
        self.model = build_inception(read_state_dict(weights), dims, weights).to(device)

    def settings(self) -> dict:
        return {"dims": self.dims, "weights_sha256": self.weights_sha256, "resize": "pytorch-fid bilinear 299"}

    def provenance(self) -> dict:
        return {"path": str(self.weights), "sha256": self.weights_sha256, "dims": self.dims}

    @torch.inference_mode()
    def extract(self, images: np.ndarray) -> Features:
        rows = []
        for start in tqdm(range(0, len(images), BATCH_SIZE), desc=f"inception-{self.dims} features", unit="batch",
                          disable=None):
            batch = torch.from_numpy(np.array(images[start : start + BATCH_SIZE])).to(self.device)
            # contiguous as pytorch-fid's ToTensor makes it: a permuted view runs the convolutions channels-last,
            # which rounds differently (features off by ~1e-7, statistics by ~5e-7)
            with cpu_threads(FreeCores().threads() if self.device.type == "cpu" else 1):
                pooled = self.model(batch.permute(0, 3, 1, 2).contiguous().float() / 255.0)[0]
            if pooled.shape[2:] != (1, 1):
                pooled = torch.nn.functional.adaptive_avg_pool2d(pooled, (1, 1))
            rows.append(pooled.flatten(1).cpu().numpy())
        return {"features": np.concatenate(rows).astype(np.float32)}


def resolve_weights(option: Path | None, offline: bool = False) -> Path:
    """``--inception-weights``, else the torch hub cache file, downloaded there when missing (``evalkit.weights``)
    unless offline; FeatureUnavailable with the reason when it cannot be had."""
    if option is not None:
        if not Path(option).is_file():
            raise EvalError(f"{option}: Inception weights file not found (--inception-weights)")
        return Path(option)
    try:
        return ensure(WEIGHTS["inception"], offline)
    except FeatureUnavailable as exc:
        raise FeatureUnavailable(f"FID Inception weights {exc}, or pass --inception-weights FILE") from None


@register_extractor("inception")
def make_inception(options: RunOptions) -> InceptionExtractor:
    return InceptionExtractor(resolve_weights(options.inception_weights, options.offline), options.inception_dims,
                              pick_device(options.device))
