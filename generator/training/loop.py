"""The training loop: data on the device, seeded batches, epochs, the log, the checkpoint schedule."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import cast

import torch
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from generator.data.audio import Normalisation
from generator.data.dataset import DataOptions, SpeechFaceDataset
from generator.data.faces import array_to_image
from generator.data.manifest import read_manifest
from generator.errors import ConfigError
from generator.model import Discriminator, Generator, ModelConfig, init_weights
from generator.runtime import join_torchrun
from generator.training.config import TrainConfig
from generator.training.state import checkpoint_dir, mark_latest, restore_state, save_state, sidecar_info
from generator.training.step import Batch, GanStep


class Wav2PixTrainer:
    """The training loop: the data decoded once onto the device, the models and optimisers, seeded batch order,
    one ``GanStep`` per batch, a log line per epoch and a checkpoint every ``checkpoint_every`` epochs."""

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
            normalisation=cast(Normalisation, config.normalisation),  # checked by TrainConfig.validate
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
        betas = (config.betas[0], config.betas[1])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=betas)
        G_run: torch.nn.Module = self.G
        D_run: torch.nn.Module = self.D
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

    @property
    def optimisers(self) -> dict[str, torch.optim.Optimizer]:
        """The two Adam optimisers under the names their moments carry in ``train_state.safetensors``."""
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def batches(self) -> list[torch.Tensor]:
        """This epoch's batches of pair indices: a seeded permutation, this rank's strided share, cut into batches."""
        order = torch.randperm(len(self.labels), generator=self.rng)
        # every rank takes the same number of pairs, hence of batches: DDP ranks must run the same number of steps
        order = order[: len(order) - len(order) % self.world][self.rank :: self.world]
        size = self.config.batch_size
        chunks = list(order.split(size))
        if len(chunks) > 1 and len(chunks[-1]) < 2:
            chunks.pop()  # BatchNorm cannot train on a single sample
        return chunks

    def make_batch(self, index: torch.Tensor) -> Batch:
        """The pairs ``index`` names, each with a wrong face of another identity drawn from the batch-order RNG."""
        wrong = self.dataset.sample_wrong_indices(self.labels.cpu()[index], self.rng)
        dev = self.device
        return Batch(
            self.speech[index.to(dev)], self.faces[index.to(dev)], self.faces[wrong.to(dev)], self.labels[index.to(dev)]
        )

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One GAN update; returns the detached losses and scores (``GanStep``)."""
        return self.step(batch)

    def train(self, resume: bool = False) -> Path | None:
        """Train to ``config.epochs`` (or ``max_minutes``), logging each epoch to ``OUT/train_log.jsonl``; return the
        last checkpoint folder written, or None when there was nothing left to train."""
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
        """``OUT/epoch_NNNN`` for ``epoch``."""
        return checkpoint_dir(self.out, epoch)

    def save(self) -> Path:
        """Write the checkpoint of the current epoch (generator, training state, sample grid) and mark it latest."""
        folder = self.checkpoint_dir(self.epoch)
        folder.mkdir(parents=True, exist_ok=True)
        info = sidecar_info(self.config, folder, self.epoch, self.manifest_hash, self.world,
                            self.out / "train_log.jsonl")
        save_state(folder, self.G, self.D, self.optimisers, self.rng, self.identities, info, self.epoch, self.config)
        self.save_samples(folder / "samples.png")
        mark_latest(self.out, folder)
        return folder

    def resume(self) -> None:
        """Continue from the checkpoint ``OUT/latest`` names (``CheckpointError`` when there is none or it differs)."""
        self.epoch = restore_state(self.out, self.G, self.D, self.optimisers, self.rng, self.device)

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
