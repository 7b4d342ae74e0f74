"""Generator checkpoints: safetensors weights + JSON sidecar, and the authors' ``gen_<epoch>.pth`` state dicts.

Our format: ``NAME.safetensors`` (tensors only, no pickle) beside ``NAME.json`` (architecture, identities, data
settings, provenance). A folder holding ``generator.safetensors`` is accepted too.

Authors' format (imatge-upc/wav2pix ``gen_<epoch>.pth``, a plain state dict), mapped name by name:

==========================================  ====================================================
theirs                                      ours
==========================================  ====================================================
audio_embedding.disc.{i}.conv.{w,b}         encoder.convs.{4i+1}.{w,b}
audio_embedding.disc.{i}.bn.*               encoder.convs.{4i+2}.*
audio_embedding.fc.{0,2,4}.*                encoder.head.{0,2,4}.*
aux_classifier.net.{0,1,3,4}.*              classifier.layers.{0,1,3,4}.*
netG...module.weight_bar                    decoder.layers.{3k}.parametrizations.weight.original
netG...module.weight_u / weight_v           decoder.layers.{3k}.parametrizations.weight.0._u / _v
==========================================  ====================================================

Their decoder nests Sequentials: 64 px is ``netG.0`` then ``netG.3.{0,3,6,9}``; 128 px is ``netG.0``, ``netG.3``, then
``netG.6.{0,3,6,9}``; the k-th transposed conv is our ``decoder.layers.{3k}``. Their spectral norm reshapes weights by
dim 0, as ours does, so u and v carry over unchanged. Image size, audio length and number of identities are read from
the tensor shapes (their classifier always has 10 outputs).
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, get_args

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from generator.data.audio import AUDIO_SECONDS, Normalisation, num_samples
from generator.errors import CheckpointError
from generator.model import ENCODER_CHANNELS, Generator, ModelConfig, encoder_output_length
from generator.runtime import code_version, sha256_file

FORMAT = "wav2pix-generator"
FORMAT_VERSION = 1
INCLUDED_CHECKPOINT = Path(__file__).parent / "checkpoints" / "wav2pix_64px_1s.safetensors"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    tmp.replace(path)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file, truncated or corrupt ({exc})") from None


def save_generator(
    path: str | Path, model: Generator, identities: list[str], info: dict[str, Any], dtype: torch.dtype = torch.float32
) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar; ``info`` carries data settings and provenance."""
    path = Path(path)
    tensors = {}
    for name, value in model.state_dict().items():
        if value.is_floating_point() and dtype != value.dtype:
            if dtype == torch.float16 and value.abs().max() > torch.finfo(torch.float16).max:
                raise CheckpointError(f"{name} does not fit in float16; save this checkpoint in float32")
            value = value.to(dtype)
        tensors[name] = value
    save_tensors(path, tensors)
    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "identities": list(identities),
        "weights_dtype": str(dtype).removeprefix("torch."),
        "weights_sha256": sha256_file(path),
        "code_version": code_version(),
        **info,
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def relative_path(path: str | Path, folder: Path) -> str:
    """``path`` relative to ``folder``, POSIX separators: how a sidecar records the files it names (relative to its
    own folder, so it stays valid wherever the checkout or run folder is moved, and names no machine's paths)."""
    return Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix()


SIDECAR_PATHS = (("data", "manifest"), ("training", "log"), ("training", "config", "manifest"),
                 ("training", "config", "out"))


def rebase_sidecar_paths(info: dict, source: Path, target: Path) -> dict:
    """A copy of sidecar entries whose paths (``SIDECAR_PATHS``; relative to the sidecar's folder, or absolute in old
    sidecars) are re-expressed relative to the ``target`` folder, where the new sidecar will live."""
    info = json.loads(json.dumps(info))
    for keys in SIDECAR_PATHS:
        holder: Any = info
        for key in keys[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and isinstance(holder.get(keys[-1]), str):
            holder[keys[-1]] = relative_path(source / holder[keys[-1]], target)  # an absolute path stays itself
    return info


@dataclass(frozen=True)
class Checkpoint:
    """A loaded generator and what its file says about it: the one description of a checkpoint every tool uses.

    ``normalisation`` is how its input speech must be normalised (``peak`` or ``legacy_py2``) and ``output_order``
    the channel order of its faces (``rgb``, or ``bgr`` for the authors' checkpoints); ``info`` is the sidecar as
    stored (training settings and provenance).
    """

    model: Generator
    path: Path
    sha256: str
    format: str
    identities: tuple[str, ...]
    normalisation: Normalisation = "peak"
    output_order: str = "rgb"
    info: dict = field(default_factory=dict)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def training(self) -> dict:
        return dict(self.info.get("training") or {})

    def describe(self) -> dict:
        """JSON-ready provenance: path, SHA-256, format, architecture, identities, training record."""
        return {"path": str(self.path), "sha256": self.sha256, "format": self.format, "model": self.config.to_dict(),
                "identities": list(self.identities), "training": self.training}


def load_generator(path: str | Path | None = None, device: str | torch.device = "cpu") -> Checkpoint:
    """A generator (float32, eval mode, on ``device``) with its description, from our format or the authors' ``.pth``
    (``None``: the included checkpoint; a folder: its ``generator.safetensors``).

    Raises:
        CheckpointError: missing, unknown, truncated, corrupt or mismatched file (one line naming it).
    """
    path = Path(path) if path is not None else INCLUDED_CHECKPOINT
    if path.is_dir():
        path = path / "generator.safetensors"
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.suffix in (".pth", ".pt"):
        model, sidecar = _load_authors_checkpoint(path)
    elif path.suffix == ".safetensors":
        model, sidecar = _load_our_checkpoint(path)
    else:
        raise CheckpointError(f"{path}: unknown checkpoint type (expected .safetensors, or the authors' .pth)")
    data = sidecar.get("data") or {}
    normalisation = data.get("normalisation", "peak")
    if normalisation not in get_args(Normalisation):
        raise CheckpointError(f"{path}: the sidecar's data.normalisation {normalisation!r} is not one of "
                              f"{', '.join(get_args(Normalisation))}")
    return Checkpoint(model=model.to(device).eval(), path=path, sha256=sha256_file(path), format=sidecar["format"],
                      identities=tuple(sidecar.get("identities", [])),
                      normalisation=cast(Normalisation, normalisation), output_order=data.get("output_order", "rgb"),
                      info=sidecar)


def _load_our_checkpoint(path: Path) -> tuple[Generator, dict]:
    sidecar_path = path.with_suffix(".json")
    if not sidecar_path.is_file():
        raise CheckpointError(f"{path}: its sidecar {sidecar_path.name} is missing (it holds the architecture)")
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{sidecar_path}: sidecar is not valid JSON ({exc})") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise CheckpointError(f"{sidecar_path}: not a {FORMAT} sidecar")
    expected = sidecar.get("weights_sha256")
    if expected and sha256_file(path) != expected:
        raise CheckpointError(
            f"{path}: weights do not match the SHA-256 in {sidecar_path.name} (truncated or replaced)")
    try:
        config = ModelConfig(**sidecar["model"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{sidecar_path}: bad 'model' entry ({exc})") from None
    if len(sidecar.get("identities", [])) != config.num_identities:
        raise CheckpointError(f"{sidecar_path}: identity list does not match num_identities={config.num_identities}")
    tensors = load_tensors(path)
    model = Generator(config)
    _load_state(model, {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, path)
    return model, sidecar


def _load_state(model: Generator, state: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: not a Wav2Pix generator of this architecture "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})"
        )
    for name, value in state.items():
        if own[name].shape != value.shape:
            raise CheckpointError(
                f"{path}: {name} has shape {tuple(value.shape)}, the configured model expects {tuple(own[name].shape)}"
            )
    model.load_state_dict(state)


def _read_pth(path: Path) -> dict[str, torch.Tensor]:
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not a PyTorch zip checkpoint (truncated, or a legacy pickle-only file that cannot be loaded "
            "safely; re-save it with torch.save(state_dict) under PyTorch >= 1.6)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: contains pickled Python objects, not only tensors; refusing to load it (weights_only=True): {exc}"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: truncated or corrupt PyTorch checkpoint ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _authors_decoder_paths(image_size: int) -> list[str]:
    if image_size == 64:
        return ["netG.0"] + [f"netG.3.{i}" for i in (0, 3, 6, 9)]
    return ["netG.0", "netG.3"] + [f"netG.6.{i}" for i in (0, 3, 6, 9)]


def authors_to_ours(state: dict[str, torch.Tensor], image_size: int) -> dict[str, torch.Tensor]:
    """Rename an authors' generator state dict to our parameter names (see the module docstring)."""
    renamed: dict[str, torch.Tensor] = {}
    for i in range(len(ENCODER_CHANNELS)):
        for theirs, ours in (("conv", 4 * i + 1), ("bn", 4 * i + 2)):
            prefix = f"audio_embedding.disc.{i}.{theirs}."
            for key, value in state.items():
                if key.startswith(prefix):
                    renamed[f"encoder.convs.{ours}.{key[len(prefix):]}"] = value
    for key, value in state.items():
        if key.startswith("audio_embedding.fc."):
            renamed["encoder.head." + key.removeprefix("audio_embedding.fc.")] = value
        elif key.startswith("aux_classifier.net."):
            renamed["classifier.layers." + key.removeprefix("aux_classifier.net.")] = value
    for k, authors_layer in enumerate(_authors_decoder_paths(image_size)):
        weight = f"decoder.layers.{3 * k}.parametrizations.weight"
        for suffix, target in (("weight_bar", "original"), ("weight_u", "0._u"), ("weight_v", "0._v")):
            key = f"{authors_layer}.module.{suffix}"
            if key in state:
                renamed[f"{weight}.{target}"] = state[key]
    return renamed


def _infer_authors_config(state: dict[str, torch.Tensor], path: Path) -> ModelConfig:
    try:
        first = state["netG.0.module.weight_bar"]
        fc_in = state["audio_embedding.fc.0.weight"].shape[1]
        classes = state["aux_classifier.net.3.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"{path}: not a Wav2Pix generator state dict (no {exc.args[0]})") from None
    sizes = {512: 64, 1024: 128}
    if first.shape[1] not in sizes:
        raise CheckpointError(f"{path}: first decoder layer has {first.shape[1]} channels; expected 512 or 1024")
    by_width = {ENCODER_CHANNELS[-1] * encoder_output_length(num_samples(s)): s for s in AUDIO_SECONDS}
    if fc_in not in by_width:
        raise CheckpointError(f"{path}: encoder FC input {fc_in} matches none of the audio lengths {AUDIO_SECONDS} s")
    return ModelConfig(image_size=sizes[first.shape[1]], audio_seconds=by_width[fc_in], num_identities=classes)


def _load_authors_checkpoint(path: Path) -> tuple[Generator, dict]:
    state = _read_pth(path)
    if any(k.startswith(("encoder.", "decoder.")) for k in state):
        raise CheckpointError(f"{path}: this is in our parameter layout; save it with `wav2pix` as .safetensors")
    config = _infer_authors_config(state, path)
    model = Generator(config)
    _load_state(model, authors_to_ours(state, config.image_size), path)
    sidecar = {
        "format": "authors-pth",
        "model": config.to_dict(),
        "identities": [f"class_{i}" for i in range(config.num_identities)],
        "data": {"normalisation": "legacy_py2", "output_order": "bgr"},
        "note": "authors' checkpoint: trained on BGR faces with Python-2 normalisation (reference notes §5.5)",
    }
    return model, sidecar
