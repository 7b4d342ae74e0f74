"""Pretrained weights the toolkit can download: one table (where each file comes from, where it goes, how it is
checked) and one downloader.

Files go where their own projects put them, so a copy fetched by pytorch-fid or keras-vggface is found and one
fetched here is found by them: FID Inception in the torch hub cache (``$TORCH_HOME/hub/checkpoints``), keras-vggface's
``.h5`` in Keras's cache (``$KERAS_HOME`` or ``~/.keras``, ``models/vggface``). A download streams into
``NAME.partial`` beside the target with a progress bar, is checked, and only then renamed, so an interrupted or bad
download never leaves a file that looks complete. Checks: the Content-Length when the server sends one (truncation);
the SHA-256 prefix that torch hub names carry (``...-6726825d.pth``: the first 8 hex digits of the file's SHA-256,
as ``torch.hub.load_state_dict_from_url(check_hash=True)`` checks it); keras-vggface publishes no hashes, so its files
are checked by loading them (every VGG16 layer present with its shape) and their SHA-256 is recorded in results.json.

``--offline`` or ``EVALKIT_OFFLINE=1`` forbids downloading; without a network a download fails within ``TIMEOUT_S``
and the metrics that need the file are reported unavailable with the reason.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from evalkit.errors import EvalError, FeatureUnavailable
from evalkit.options import OFFLINE_ENV

TIMEOUT_S = 15.0  # seconds without an answer (connecting, or between two reads) before a download gives up
CHUNK = 1 << 20
KERAS_VGGFACE_RELEASE = "https://github.com/rcmalli/keras-vggface/releases/download/v2.0/"
# pytorch_fid.inception.FID_WEIGHTS_URL, written out: importing pytorch-fid pulls in torchvision (seconds) for a string
# (tests/evalkit/test_weights.py checks that the two agree)
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")


def torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def keras_vggface_dir() -> Path:
    """keras-vggface's cache: ``keras.utils.get_file(cache_subdir="models/vggface")`` under ``$KERAS_HOME``."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models" / "vggface"


def _check_vggface(path: Path) -> None:
    from evalkit.features.vggface import load_vggface_h5

    load_vggface_h5(path)


@dataclass(frozen=True)
class WeightsFile:
    """One downloadable file: its URL, its cache folder, and how a download is checked."""

    key: str
    url: str
    description: str
    folder: Callable[[], Path]
    check: Callable[[Path], None] | None = None  # raises EvalError when the file is not what it should be

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str | None:
        """The hash prefix a torch hub file name carries (``NAME-<hex>.ext``), else None."""
        match = re.search(r"-([0-9a-f]{8,64})\.[^.]+$", self.name)
        return match.group(1) if match else None

    def path(self) -> Path:
        return self.folder() / self.name


WEIGHTS: dict[str, WeightsFile] = {w.key: w for w in (
    WeightsFile("inception", FID_WEIGHTS_URL, "FID Inception weights (pytorch-fid's port of TF inception-2015-12-05)",
                torch_hub_checkpoints),
    WeightsFile("vggface", KERAS_VGGFACE_RELEASE + "rcmalli_vggface_tf_vgg16.h5",
                "VGG-Face VGG16 with its fc layers (keras-vggface; identity backbone, fc7 features)", keras_vggface_dir,
                _check_vggface),
    WeightsFile("vggface-notop", KERAS_VGGFACE_RELEASE + "rcmalli_vggface_tf_notop_vgg16.h5",
                "VGG-Face VGG16 without its fc layers (keras-vggface; pool5 features)", keras_vggface_dir,
                _check_vggface),
)}


def offline_requested(flag: bool = False) -> bool:
    """``--offline``, or ``EVALKIT_OFFLINE`` set to 1 / true / yes."""
    return flag or os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def ensure(entry: WeightsFile, offline: bool = False, timeout: float = TIMEOUT_S) -> Path:
    """The file's path, downloading it first when it is missing and downloads are allowed; FeatureUnavailable
    (with the reason and where to put the file by hand) when it is missing and cannot be had."""
    target = entry.path()
    if target.is_file():
        return target
    missing = f"{entry.name} not found in {target.parent}/"
    if offline_requested(offline):
        raise FeatureUnavailable(f"{missing} and downloads are off (--offline or {OFFLINE_ENV}); put the file there")
    try:
        return download(entry, timeout)
    except EvalError as exc:
        raise FeatureUnavailable(f"{missing} and the download failed ({exc}); put the file there") from None


def download(entry: WeightsFile, timeout: float = TIMEOUT_S) -> Path:
    """Download ``entry`` into its cache folder (temporary file, checks, rename); EvalError saying why it failed."""
    target = entry.path()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        digest = _stream(entry.url, partial, timeout)
        prefix = entry.sha256_prefix
        if prefix and not digest.startswith(prefix):
            raise EvalError(f"{entry.url}: downloaded file has SHA-256 {digest[:16]}..., its name says {prefix}...: "
                            "corrupted in transit or replaced; not using it")
        if entry.check is not None:
            entry.check(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _stream(url: str, partial: Path, timeout: float) -> str:
    """Write ``url`` to ``partial`` with a progress bar; the SHA-256 of what was written."""
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
            declared = response.headers.get("Content-Length")
            total = int(declared) if declared and declared.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {url.rsplit('/', 1)[-1]}",
                      disable=None) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise EvalError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except http.client.IncompleteRead as exc:
        raise EvalError(f"cannot download {url}: truncated ({received + len(exc.partial)} bytes, then the connection "
                        "closed)") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise EvalError(f"cannot download {url}: {reason} (no network, or no answer within {timeout:g} s)") from None
    if total is not None and received != total:
        raise EvalError(f"cannot download {url}: truncated ({received} of {total} bytes)")
    return digest.hexdigest()
