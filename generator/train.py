"""Wav2Pix training (reference notes §4-5): one D step then one G step per batch, LSGAN with the paper's terms.

Runs on CPU or CUDA, and on several GPUs under ``torchrun`` (DistributedDataParallel; each rank takes a strided share
of the seeded permutation). The whole training set is decoded into memory once. Each checkpoint folder
``OUT/epoch_NNNN/`` holds ``generator.safetensors`` + ``generator.json`` (loadable by every tool) and
``train_state.safetensors`` + ``train_state.json`` (discriminator, optimisers, RNG) for ``--resume``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from generator.checkpoint import load_generator, load_tensors, relative_path, save_generator, save_tensors
from generator.data.dataset import DataOptions, SpeechFaceDataset
from generator.data.faces import array_to_image
from generator.data.manifest import read_manifest
from generator.errors import CheckpointError, ConfigError
from generator.model import Discriminator, Generator, ModelConfig, init_weights
from generator.runtime import join_torchrun

PATH_KEYS = ("manifest", "out")


@dataclass
class TrainConfig:
    manifest: str = ""
    out: str = "runs/train"
    image_size: int = 64
    audio_seconds: float = 1.0
    normalisation: str = "peak"
    fix_bgr: bool = True
    train_splits: list[str] = field(default_factory=lambda: ["train", "seen"])
    epochs: int = 201
    batch_size: int = 64
    lr_d: float = 4e-4
    lr_g: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    real_label: float = 0.9
    feature_matching_weight: float = 100.0
    l1_weight: float = 50.0
    classifier_weight: float = 20.0
    seed: int = 0
    checkpoint_every: int = 10
    device: str = "auto"
    max_minutes: float | None = None
    sample_count: int = 8

    @classmethod
    def load(cls, path: str | Path | None, overrides: list[str] = ()) -> "TrainConfig":
        """Read a YAML config and apply ``key=value`` overrides (values parsed as YAML)."""
        raw: dict[str, Any] = {}
        base = Path.cwd()
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"{path}: config file not found")
            try:
                raw = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML ({exc})") from None
            if not isinstance(raw, dict):
                raise ConfigError(f"{path}: a config is a mapping of key: value")
            raw = {k: _resolve(v, path.parent) if k in PATH_KEYS and v else v for k, v in raw.items()}
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"override {item!r} is not key=value")
            parsed = yaml.safe_load(value)
            raw[key.strip()] = _resolve(parsed, base) if key.strip() in PATH_KEYS else parsed
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        config = cls(**raw)
        config.validate()
        return config

    def validate(self) -> None:
        self._check_types()
        if not self.manifest:
            raise ConfigError("no manifest given (config key 'manifest' or override manifest=PATH)")
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 2, "batch_size must be >= 2 (BatchNorm needs two samples)"),
            (self.checkpoint_every >= 1, "checkpoint_every must be >= 1"),
            (self.normalisation in ("peak", "legacy_py2"), "normalisation must be peak or legacy_py2"),
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device: auto, cpu or cuda"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        ModelConfig(self.image_size, self.audio_seconds)  # validates size and length

    def _check_types(self) -> None:
        """Each value has its field's type; YAML reads '1e-4' (no dot) as a string, so numbers in strings are parsed."""
        kinds = {"int": (int,), "float": (int, float), "float | None": (int, float, type(None)), "bool": (bool,),
                 "str": (str,), "list[str]": (list,), "list[float]": (list,)}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", "float | None") and isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    pass
                setattr(self, f.name, value)
            allowed = kinds.get(f.type, (object,))
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ConfigError(f"{f.name} must be of type {f.type}, got {value!r}")


def _resolve(value: Any, base: Path) -> str:
    return str((base / str(value)).resolve()) if not Path(str(value)).is_absolute() else str(value)


@dataclass
class Batch:
    speech: torch.Tensor
    face: torch.Tensor
    wrong: torch.Tensor
    label: torch.Tensor


class GanStep:
    """One D update then one G update (reference notes §4).

    Differences from the original loop, none of which changes the losses: the generator runs once per batch and its
    output is detached for the D step (the original ran G twice and discarded the D-step gradients in G); real, fake
    and wrong pairs go through D as one concatenated batch; the feature-matching target is the real faces' trunk
    activation from that same D pass (the original recomputed it after the D update). ``G_run`` / ``D_run`` are the
    DistributedDataParallel wrappers when training on several processes.
    """

    def __init__(self, G: Generator, D: Discriminator, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 config: "TrainConfig", G_run: torch.nn.Module | None = None,
                 D_run: torch.nn.Module | None = None) -> None:
        self.G, self.D, self.opt_g, self.opt_d, self.config = G, D, opt_g, opt_d, config
        self.G_run = G_run or G
        self.D_run = D_run or D

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        fake, embedding, logits = self.G_run(batch.speech)
        n = batch.face.shape[0]

        self.D.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        e = embedding.detach()
        scores, features = self.D_run(torch.cat([batch.face, fake.detach(), batch.wrong]), torch.cat([e, e, e]))
        d_real, d_fake, d_wrong = scores.split(n)
        real_features = features[:n].detach()
        loss_real = F.mse_loss(d_real, torch.full_like(d_real, c.real_label))
        loss_fake = F.mse_loss(d_fake, torch.zeros_like(d_fake))
        loss_wrong = F.mse_loss(d_wrong, torch.zeros_like(d_wrong))
        d_loss = loss_real + loss_fake + loss_wrong
        d_loss.backward()
        self.opt_d.step()

        self.D.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        g_score, fake_features = self.D(fake, embedding)
        adversarial = F.mse_loss(g_score, torch.ones_like(g_score))
        feature_matching = F.mse_loss(fake_features.mean(0), real_features.mean(0))
        l1 = F.l1_loss(fake, batch.face)
        classification = F.cross_entropy(logits, batch.label)
        g_loss = (
            adversarial
            + c.feature_matching_weight * feature_matching
            + c.l1_weight * l1
            + c.classifier_weight * classification
        )
        g_loss.backward()
        self.opt_g.step()
        values = {
            "d_loss": d_loss,
            "d_loss_real": loss_real,
            "d_loss_fake": loss_fake,
            "d_loss_wrong": loss_wrong,
            "g_loss": g_loss,
            "g_loss_adversarial": adversarial,
            "g_loss_feature_matching": feature_matching,
            "g_loss_l1": l1,
            "g_loss_classifier": classification,
            "d_score_real": d_real.mean(),
            "d_score_fake": d_fake.mean(),
            "d_score_wrong": d_wrong.mean(),
            "classifier_accuracy": (logits.argmax(1) == batch.label).float().mean(),
        }
        return {k: v.detach() for k, v in values.items()}


class Wav2PixTrainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        launch = join_torchrun(config.device)
        self.distributed = launch.world > 1
        self.rank, self.world, self.device = launch.rank, launch.world, launch.device
        torch.manual_seed(config.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        manifest = read_manifest(config.manifest)
        present = [split for split in config.train_splits if split in manifest.splits]
        if not present:
            raise ConfigError(
                f"{config.manifest}: none of the training splits {config.train_splits} is in it "
                f"(it has {manifest.splits}); set train_splits=[...]"
            )
        manifest = manifest.select(present)
        self.manifest_hash = manifest.content_hash()
        self.data_options = DataOptions(
            image_size=config.image_size,
            audio_seconds=config.audio_seconds,
            normalisation=config.normalisation,
            fix_bgr=config.fix_bgr,
        )
        self.dataset = SpeechFaceDataset(manifest, self.data_options, seed=config.seed)
        speech, faces, labels = self.dataset.tensors()
        self.speech, self.faces, self.labels = speech.to(self.device), faces.to(self.device), labels.to(self.device)
        self.identities = self.dataset.identities
        model_config = ModelConfig(config.image_size, config.audio_seconds, len(self.identities))
        self.G = Generator(model_config).to(self.device)
        self.D = Discriminator(model_config).to(self.device)
        init_weights(self.G)
        init_weights(self.D)
        betas = tuple(config.betas)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=betas)
        G_run, D_run = self.G, self.D
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            G_run = DistributedDataParallel(self.G, device_ids=ids)
            D_run = DistributedDataParallel(self.D, device_ids=ids)
        self.step = GanStep(self.G, self.D, self.opt_g, self.opt_d, config, G_run, D_run)
        self.epoch = 0
        self.rng = torch.Generator().manual_seed(config.seed)
        self.out = Path(config.out)
        self.sample_indices = self._sample_indices()

    def _sample_indices(self) -> torch.Tensor:
        """A fixed set of clips (equal per identity) drawn in every checkpoint's sample grid."""
        per_identity = max(1, self.config.sample_count // len(self.identities))
        picks = [torch.nonzero(self.labels.cpu() == i).flatten()[:per_identity] for i in range(len(self.identities))]
        return torch.cat(picks)

    def batches(self) -> list[torch.Tensor]:
        order = torch.randperm(len(self.labels), generator=self.rng)
        # every rank takes the same number of pairs, hence of batches: DDP ranks must run the same number of steps
        order = order[: len(order) - len(order) % self.world][self.rank :: self.world]
        size = self.config.batch_size
        chunks = list(order.split(size))
        if len(chunks) > 1 and len(chunks[-1]) < 2:
            chunks.pop()  # BatchNorm cannot train on a single sample
        return chunks

    def make_batch(self, index: torch.Tensor) -> Batch:
        wrong = self.dataset.sample_wrong_indices(self.labels.cpu()[index], self.rng)
        dev = self.device
        return Batch(
            self.speech[index.to(dev)], self.faces[index.to(dev)], self.faces[wrong.to(dev)], self.labels[index.to(dev)]
        )

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.step(batch)

    def train(self, resume: bool = False) -> Path | None:
        if resume:
            self.resume()
        start = time.monotonic()
        deadline = start + 60 * self.config.max_minutes if self.config.max_minutes else math.inf
        last_saved = None
        log_path = self.out / "train_log.jsonl"
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        while self.epoch < self.config.epochs:
            epoch_start = time.monotonic()
            self.G.train()
            self.D.train()
            totals: dict[str, torch.Tensor] = {}
            chunks = self.batches()
            bar = tqdm(chunks, desc=f"epoch {self.epoch + 1}/{self.config.epochs}", unit="batch",
                       disable=None if self.rank == 0 else True, leave=False)
            for index in bar:
                stats = self.train_step(self.make_batch(index))
                for k, v in stats.items():
                    totals[k] = totals.get(k, 0) + v * len(index)
            seen = sum(len(i) for i in chunks)
            record = {k: float(v) / seen for k, v in totals.items()}
            self.epoch += 1
            seconds = time.monotonic() - epoch_start
            record.update(epoch=self.epoch, pairs=seen * self.world, seconds=seconds,
                          pairs_per_second=seen * self.world / seconds)
            out_of_time = time.monotonic() > deadline
            if self.rank == 0:
                with log_path.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                tqdm.write(
                    f"epoch {self.epoch}: d_loss {record['d_loss']:.3f} g_loss {record['g_loss']:.3f} "
                    f"l1 {record['g_loss_l1']:.3f} acc {record['classifier_accuracy']:.2f} ({seconds:.0f} s)"
                )
                if self.epoch % self.config.checkpoint_every == 0 or self.epoch == self.config.epochs or out_of_time:
                    last_saved = self.save()
            if out_of_time:
                break
        return last_saved

    def checkpoint_dir(self, epoch: int) -> Path:
        return self.out / f"epoch_{epoch:04d}"

    def save(self) -> Path:
        folder = self.checkpoint_dir(self.epoch)
        folder.mkdir(parents=True, exist_ok=True)
        # the sidecar travels with the checkpoint: its paths are relative to its own folder, never this machine's
        config = {k: relative_path(v, folder) if k in PATH_KEYS and v else v for k, v in asdict(self.config).items()}
        info = {
            "data": {
                "normalisation": self.config.normalisation,
                "fix_bgr": self.config.fix_bgr,
                "output_order": "rgb" if self.config.fix_bgr else "as_stored",
                "manifest": relative_path(self.config.manifest, folder),
                "manifest_sha256": self.manifest_hash,
                "train_splits": self.config.train_splits,
            },
            "training": {"epochs": self.epoch, "seed": self.config.seed, "config": config,
                         "world_size": self.world, "log": relative_path(self.out / "train_log.jsonl", folder)},
        }
        save_generator(folder / "generator.safetensors", self.G, self.identities, info)
        state = {f"discriminator.{k}": v for k, v in self.D.state_dict().items()}
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            for pid, entries in opt.state_dict()["state"].items():
                for key, value in entries.items():
                    state[f"{name}.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
        state["rng.cpu"] = torch.get_rng_state()
        state["rng.batches"] = self.rng.get_state()
        save_tensors(folder / "train_state.safetensors", state)
        (folder / "train_state.json").write_text(json.dumps({"epoch": self.epoch, "config": asdict(self.config)}))
        self.save_samples(folder / "samples.png")
        (self.out / "latest").write_text(folder.name + "\n")
        return folder

    def resume(self) -> None:
        marker = self.out / "latest"
        if not marker.is_file():
            raise CheckpointError(f"{self.out}: nothing to resume (no 'latest' checkpoint marker)")
        folder = self.out / marker.read_text().strip()
        meta_path = folder / "train_state.json"
        if not meta_path.is_file():
            raise CheckpointError(f"{folder}: no train_state.json to resume from")
        meta = json.loads(meta_path.read_text())
        G = load_generator(folder / "generator.safetensors").model
        if G.config != self.G.config:
            raise CheckpointError(f"{folder}: checkpoint model {G.config} differs from the config's {self.G.config}")
        self.G.load_state_dict(G.state_dict())
        state = load_tensors(folder / "train_state.safetensors")
        self.D.load_state_dict({k.removeprefix("discriminator."): v for k, v in state.items()
                                if k.startswith("discriminator.")})
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            sd = opt.state_dict()
            restored: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in state.items():
                if key.startswith(name + "."):
                    _, pid, entry = key.split(".", 2)
                    restored.setdefault(int(pid), {})[entry] = value.to(self.device) if entry != "step" else value
            sd["state"] = restored
            opt.load_state_dict(sd)
        torch.set_rng_state(state["rng.cpu"])
        self.rng.set_state(state["rng.batches"])
        self.epoch = int(meta["epoch"])

    @torch.no_grad()
    def save_samples(self, path: Path) -> None:
        """Grid of fixed clips: top row real faces, bottom row generated (eval mode, dropout off)."""
        was_training = self.G.training
        self.G.eval()
        idx = self.sample_indices.to(self.device)
        fake = self.G(self.speech[idx])[0].cpu()
        self.G.train(was_training)
        real = self.faces[idx].cpu()
        size = self.config.image_size
        grid = Image.new("RGB", (size * len(idx), size * 2))
        for i in range(len(idx)):
            grid.paste(array_to_image(real[i].numpy()), (i * size, 0))
            grid.paste(array_to_image(fake[i].numpy()), (i * size, size))
        grid.save(path)



