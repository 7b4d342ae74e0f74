"""One GAN update of Wav2Pix: the discriminator step, then the generator step, on one batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from generator.model import Discriminator, Generator
from generator.training.config import TrainConfig


@dataclass
class Batch:
    """One training batch on the training device: ``speech`` (B, samples) float32, ``face`` and ``wrong`` (B, 3, H, W)
    float32 in [-1, 1] (``wrong``: a face of another identity for each clip), ``label`` (B,) int64 identity index."""

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
                 config: TrainConfig, G_run: torch.nn.Module | None = None,
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
