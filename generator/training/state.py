"""What a training checkpoint holds and how ``--resume`` reads it back.

A checkpoint folder ``OUT/epoch_NNNN/`` holds ``generator.safetensors`` + ``generator.json`` (the generator every tool
loads, with its provenance sidecar), ``train_state.safetensors`` (discriminator weights as ``discriminator.<name>``,
optimiser moments as ``opt_g.<param id>.<entry>`` / ``opt_d.…``, torch's CPU RNG as ``rng.cpu`` and the batch-order
RNG as ``rng.batches``) and ``train_state.json`` (``epoch`` and the full config). ``OUT/latest`` names the newest
folder. This layout is what ``wav2pix train --resume`` reads: changing it breaks the resumption of running jobs
(``tests/generator/checkpoint_layout.json`` pins it).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from generator.checkpoint import load_generator, load_tensors, relative_path, save_generator, save_tensors
from generator.errors import CheckpointError
from generator.model import Discriminator, Generator
from generator.training.config import PATH_KEYS, TrainConfig

LATEST = "latest"
OPTIMISERS = ("opt_g", "opt_d")


def checkpoint_dir(out: Path, epoch: int) -> Path:
    """``OUT/epoch_NNNN``: the folder of the checkpoint written after ``epoch`` epochs."""
    return out / f"epoch_{epoch:04d}"


def sidecar_info(config: TrainConfig, folder: Path, epoch: int, manifest_hash: str, world: int,
                 log: Path) -> dict[str, Any]:
    """The ``data`` and ``training`` sections of ``generator.json``: paths relative to the checkpoint's own folder, so
    the sidecar travels with the checkpoint and names none of this machine's folders."""
    relative_config = {k: relative_path(v, folder) if k in PATH_KEYS and v else v for k, v in asdict(config).items()}
    return {
        "data": {
            "normalisation": config.normalisation,
            "fix_bgr": config.fix_bgr,
            "output_order": "rgb" if config.fix_bgr else "as_stored",
            "manifest": relative_path(config.manifest, folder),
            "manifest_sha256": manifest_hash,
            "train_splits": config.train_splits,
        },
        "training": {"epochs": epoch, "seed": config.seed, "config": relative_config,
                     "world_size": world, "log": relative_path(log, folder)},
    }


def save_state(folder: Path, G: Generator, D: Discriminator, optimisers: dict[str, torch.optim.Optimizer],
               rng: torch.Generator, identities: list[str], info: dict[str, Any], epoch: int,
               config: TrainConfig) -> None:
    """Write the generator (+ sidecar ``info``), ``train_state.safetensors`` and ``train_state.json`` into ``folder``.

    ``optimisers`` maps ``opt_g`` / ``opt_d`` to the Adam optimisers; scalar entries (Adam's ``step`` when not a
    tensor) are stored as 0-d tensors."""
    save_generator(folder / "generator.safetensors", G, identities, info)
    state = {f"discriminator.{k}": v for k, v in D.state_dict().items()}
    for name in OPTIMISERS:
        for pid, entries in optimisers[name].state_dict()["state"].items():
            for key, value in entries.items():
                state[f"{name}.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    state["rng.cpu"] = torch.get_rng_state()
    state["rng.batches"] = rng.get_state()
    save_tensors(folder / "train_state.safetensors", state)
    (folder / "train_state.json").write_text(json.dumps({"epoch": epoch, "config": asdict(config)}))


def mark_latest(out: Path, folder: Path) -> None:
    """Point ``OUT/latest`` at ``folder`` (written last, so it never names a half-written checkpoint)."""
    (out / LATEST).write_text(folder.name + "\n")


def restore_state(out: Path, G: Generator, D: Discriminator, optimisers: dict[str, torch.optim.Optimizer],
                  rng: torch.Generator, device: torch.device) -> int:
    """Load the checkpoint ``OUT/latest`` names into the models, optimisers and RNGs; return its epoch.

    Raises ``CheckpointError`` when there is no marker or no ``train_state.json``, or when the checkpoint's model
    (size, audio length, identities) differs from ``G``'s."""
    marker = out / LATEST
    if not marker.is_file():
        raise CheckpointError(f"{out}: nothing to resume (no 'latest' checkpoint marker)")
    folder = out / marker.read_text().strip()
    meta_path = folder / "train_state.json"
    if not meta_path.is_file():
        raise CheckpointError(f"{folder}: no train_state.json to resume from")
    meta = json.loads(meta_path.read_text())
    saved = load_generator(folder / "generator.safetensors").model
    if saved.config != G.config:
        raise CheckpointError(f"{folder}: checkpoint model {saved.config} differs from the config's {G.config}")
    G.load_state_dict(saved.state_dict())
    state = load_tensors(folder / "train_state.safetensors")
    D.load_state_dict({k.removeprefix("discriminator."): v for k, v in state.items() if k.startswith("discriminator.")})
    for name in OPTIMISERS:
        opt = optimisers[name]
        sd = opt.state_dict()
        restored: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in state.items():
            if key.startswith(name + "."):
                _, pid, entry = key.split(".", 2)
                restored.setdefault(int(pid), {})[entry] = value.to(device) if entry != "step" else value
        sd["state"] = restored
        opt.load_state_dict(sd)
    torch.set_rng_state(state["rng.cpu"])
    rng.set_state(state["rng.batches"])
    return int(meta["epoch"])
