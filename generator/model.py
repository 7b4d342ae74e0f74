"""The Wav2Pix networks (reference notes §1-3, §5.2, §5.4).

Generator = speech encoder (SEGAN discriminator body) + speaker classifier + spectrally normalised transposed-conv
decoder with dropout as the only noise source. Discriminator = spectrally normalised conv trunk whose 4x4 output is
concatenated with the tiled speech embedding, then a plain 4x4 conv to one LSGAN score.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import cast

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from generator.data.audio import AUDIO_SECONDS, num_samples
from generator.errors import CheckpointError

ENCODER_CHANNELS = (16, 32, 128, 256, 512, 1024)
ENCODER_KERNEL = 15
ENCODER_STRIDE = 4
EMBEDDING = 128
DECODER_CHANNELS = {64: (512, 256, 128, 64), 128: (1024, 512, 256, 128, 64)}
DISCRIMINATOR_CHANNELS = {64: (64, 128, 256, 512), 128: (64, 128, 256, 512, 1024)}


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the networks' shapes; stored in every checkpoint's sidecar."""

    image_size: int = 64
    audio_seconds: float = 1.0
    num_identities: int = 2

    def __post_init__(self) -> None:
        if self.image_size not in DECODER_CHANNELS:
            raise CheckpointError(f"image size must be one of {sorted(DECODER_CHANNELS)}, got {self.image_size}")
        if self.audio_seconds not in AUDIO_SECONDS:
            raise CheckpointError(f"audio length must be one of {AUDIO_SECONDS} s, got {self.audio_seconds}")
        if self.num_identities < 2:
            raise CheckpointError(f"a speaker classifier needs at least 2 identities, got {self.num_identities}")

    @property
    def num_samples(self) -> int:
        return num_samples(self.audio_seconds)

    def to_dict(self) -> dict:
        return asdict(self)


def encoder_output_length(n: int) -> int:
    """Time steps after the six conv blocks: each pads 13 and maps L to floor((L - 2) / 4) + 1."""
    for _ in ENCODER_CHANNELS:
        n = (n + ENCODER_KERNEL - 2 - ENCODER_KERNEL) // ENCODER_STRIDE + 1
    return n


class SpeechEncoder(nn.Module):
    """Raw 16 kHz waveform (B, 1, N) -> 128-d speech embedding."""

    def __init__(self, num_samples: int) -> None:
        super().__init__()
        blocks = []
        in_ch = 1
        for out_ch in ENCODER_CHANNELS:
            blocks += [
                nn.ConstantPad1d((ENCODER_KERNEL // 2 - 1, ENCODER_KERNEL // 2), 0.0),
                nn.Conv1d(in_ch, out_ch, ENCODER_KERNEL, stride=ENCODER_STRIDE),
                nn.BatchNorm1d(out_ch),
                nn.LeakyReLU(0.3),
            ]
            in_ch = out_ch
        self.convs = nn.Sequential(*blocks)
        flat = ENCODER_CHANNELS[-1] * encoder_output_length(num_samples)
        self.head = nn.Sequential(
            nn.Linear(flat, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, EMBEDDING)
        )

    def forward(self, speech: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(speech).flatten(1))


class SpeakerClassifier(nn.Module):
    """Auxiliary speaker-ID head on the embedding; BatchNorm on the logits as in the original."""

    def __init__(self, num_identities: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(EMBEDDING, 200),
            nn.BatchNorm1d(200),
            nn.LeakyReLU(0.2),
            nn.Linear(200, num_identities),
            nn.BatchNorm1d(num_identities),
        )

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.layers(embedding)


def _sn_deconv(in_ch: int, out_ch: int, first: bool) -> nn.Module:
    layer = nn.ConvTranspose2d(in_ch, out_ch, 4, stride=1 if first else 2, padding=0 if first else 1, bias=False)
    return spectral_norm(layer, dim=0)


class FaceDecoder(nn.Module):
    """Embedding (B, 128) -> face (B, 3, S, S) in [-1, 1]; Dropout(0.5) after every hidden layer is the noise."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = EMBEDDING
        for i, out_ch in enumerate(DECODER_CHANNELS[image_size]):
            layers += [_sn_deconv(in_ch, out_ch, first=i == 0), nn.Dropout(0.5), nn.ReLU()]
            in_ch = out_ch
        layers += [_sn_deconv(in_ch, 3, first=False), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.layers(embedding[:, :, None, None])


class Generator(nn.Module):
    """Speech -> (face, embedding, speaker logits)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SpeechEncoder(config.num_samples)
        self.classifier = SpeakerClassifier(config.num_identities)
        self.decoder = FaceDecoder(config.image_size)

    def forward(self, speech: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        embedding = self.encoder(speech)
        return self.decoder(embedding), embedding, self.classifier(embedding)


class Discriminator(nn.Module):
    """(face, embedding) -> (LSGAN score per image, trunk features (B, C, 4, 4) for feature matching)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for out_ch in DISCRIMINATOR_CHANNELS[config.image_size]:
            layers += [spectral_norm(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), dim=0), nn.LeakyReLU(0.2)]
            in_ch = out_ch
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Conv2d(in_ch + EMBEDDING, 1, 4, 1, 0, bias=False)

    def forward(self, face: torch.Tensor, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(face)
        tiled = embedding[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        score = self.head(torch.cat([features, tiled], dim=1))
        return score.flatten(), features


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: N(0, 0.02) for plain conv/linear weights, N(1, 0.02)/0 for BatchNorm; spectrally
    normalised layers get PyTorch 0.4's default uniform(+-1/sqrt(dim0 * k * k)) that the original code left them
    with."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if hasattr(m, "parametrizations"):
                parametrizations = cast(nn.ModuleDict, m.parametrizations)
                original = cast(torch.Tensor, parametrizations["weight"].original)
                fan = original.shape[0] * math.prod(original.shape[2:])
                bound = 1.0 / math.sqrt(fan)
                with torch.no_grad():
                    original.uniform_(-bound, bound)
            else:
                nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
