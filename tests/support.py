"""Helpers of the data-layer, generator and evalkit tests (not fixtures): synthetic audio, faces, corpora,
tiny generators, the authors' checkpoint layout and the CLI error check; tests/conftest.py wraps them as
fixtures."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from click.testing import Result
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "wav2pix-youtubers"
SHARED_REFERENCE = REPO.parent / "shared" / "reference" / "wav2pix-paper-system.md"
COMMITTED_SPLIT = REPO / "generator" / "splits" / "wav2pix-youtubers" / "manifest.csv"
SR = 16_000


# ---------------------------------------------------------------------------------------------------------------
# audio and faces
# ---------------------------------------------------------------------------------------------------------------


def noise(n: int, seed: int = 0, amplitude: int = 20_000) -> np.ndarray:
    """Loud random int16 'speech': no near-silent block, and no accidental equal runs between positions."""
    return np.random.default_rng(seed).integers(-amplitude, amplitude + 1, size=n).astype(np.int16)


def write_audio(path: Path, samples: np.ndarray, rate: int = SR, subtype: str | None = None) -> Path:
    """Write int16 samples (N,) or (N, C) as WAV/FLAC (by suffix), or floats in [-1, 1] with a FLOAT subtype."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.asarray(samples)
    if subtype is None:
        subtype = "PCM_16"
    sf.write(str(path), samples, rate, subtype=subtype)
    return path


def write_face(path: Path, rgb: Sequence[int] | np.ndarray = (200, 120, 80), size: tuple[int, int] = (32, 32),
               mode: str = "RGB") -> Path:
    """A face image: a solid colour, or an explicit HxWxC uint8 array; format from the suffix (PNG/JPEG)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(rgb) if isinstance(rgb, np.ndarray) else Image.new("RGB", size, tuple(int(c) for c in rgb))
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# manifests and synthetic corpora
# ---------------------------------------------------------------------------------------------------------------


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@dataclass
class Clip:
    identity: str
    face: Path
    audio: Path
    start: int  # first sample in the identity's recording
    length: int
    split: str


@dataclass
class Corpus:
    """Clips cut from one random 'recording' per identity, several clips per face at overlapping offsets."""

    root: Path
    manifest: Path
    clips: list[Clip] = field(default_factory=list)
    recordings: dict[str, np.ndarray] = field(default_factory=dict)

    def shared_samples(self, i: int, j: int) -> int:
        """Ground truth: samples clips i and j share (same recording only), from their offsets."""
        a, b = self.clips[i], self.clips[j]
        if a.identity != b.identity:
            return 0
        return max(0, min(a.start + a.length, b.start + b.length) - max(a.start, b.start))

    def true_overlaps(self, min_run: int = 1600) -> dict[tuple[int, int], int]:
        n = len(self.clips)
        pairs = {(i, j): self.shared_samples(i, j) for i in range(n) for j in range(i + 1, n)}
        return {k: v for k, v in pairs.items() if v >= min_run}


IDENTITY_COLOURS = [(220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 210, 40), (200, 60, 210)]


def build_corpus(root: Path, identities: int = 3, faces_per_identity: int = 4, clips_per_face: int = 3,
                 clip_samples: int = 4800, jitter: int = 1200, seed: int = 0,
                 splits: Callable[[int, int], str] | None = None) -> Corpus:
    """Face k of an identity sits at (k // 2) * 20000 + (k % 2) * 5000 in its recording: faces 2m and 2m+1 are close
    (their clips may share audio), pairs of faces are far apart (so every identity has several audio groups).
    Clips start at the face position + U(-jitter, jitter). ``splits(face_index, clip_index)`` names each clip's split
    (default: the authors' style, faces alternately train / test)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    corpus = Corpus(root, root / "manifest.csv")
    rows = []
    for ident in range(identities):
        name = f"person{ident}"
        length = (faces_per_identity // 2 + 1) * 20_000 + clip_samples + 2 * jitter
        recording = noise(length, seed=seed * 1000 + ident)
        corpus.recordings[name] = recording
        colour = np.array(IDENTITY_COLOURS[ident % len(IDENTITY_COLOURS)])
        for k in range(faces_per_identity):
            face = write_face(root / "faces" / name / f"face_{k}.png",
                              tuple(np.clip(colour + 6 * k, 0, 255)), size=(24 + 4 * k, 24 + 4 * k))
            centre = jitter + (k // 2) * 20_000 + (k % 2) * 5_000
            for c in range(clips_per_face):
                start = int(centre + rng.integers(-jitter, jitter + 1))
                audio = write_audio(root / "audio" / name / f"clip_{k}_{c}.wav",
                                    recording[start : start + clip_samples])
                split = splits(k, c) if splits else ("train" if k % 2 == 0 else "test")
                corpus.clips.append(Clip(name, face, audio, start, clip_samples, split))
                rows.append([name, face.relative_to(root).as_posix(), audio.relative_to(root).as_posix(), split])
    write_csv(corpus.manifest, ["identity", "face", "audio", "split"], rows)
    return corpus


# ---------------------------------------------------------------------------------------------------------------
# generator checkpoints
# ---------------------------------------------------------------------------------------------------------------


def small_generator(image_size: int = 64, audio_seconds: float = 0.3, identities: int = 2, seed: int = 0):
    """A Generator with the paper's initialisation, converged spectral norms and non-trivial BatchNorm statistics."""
    from generator.model import Generator, ModelConfig, init_weights

    torch.manual_seed(seed)
    model = Generator(ModelConfig(image_size, audio_seconds, identities))
    init_weights(model)
    with torch.no_grad():
        # converge the decoder's spectral-norm u/v, as training does (init_weights replaced the weights under them)
        model.decoder.train()
        for _ in range(10):
            model.decoder(torch.randn(2, 128))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(7)
    return model.eval()


def authors_decoder_paths(size: int) -> list[str]:
    if size == 64:
        return ["netG.0", "netG.3.0", "netG.3.3", "netG.3.6", "netG.3.9"]
    return ["netG.0", "netG.3", "netG.6.0", "netG.6.3", "netG.6.6", "netG.6.9"]


def to_authors_layout(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our state dict renamed to imatge-upc/wav2pix's generator names (the table in generator/checkpoint.py)."""
    theirs = {}
    decoder = {3 * k: path for k, path in enumerate(authors_decoder_paths(model.config.image_size))}
    for name, value in model.state_dict().items():
        part = name.split(".")
        if name.startswith("encoder.convs."):
            index, rest = int(part[2]), ".".join(part[3:])
            block, kind = divmod(index - 1, 4)
            theirs[f"audio_embedding.disc.{block}.{['conv', 'bn'][kind]}.{rest}"] = value.clone()
        elif name.startswith("encoder.head."):
            theirs["audio_embedding.fc." + ".".join(part[2:])] = value.clone()
        elif name.startswith("classifier.layers."):
            theirs["aux_classifier.net." + ".".join(part[2:])] = value.clone()
        elif name.startswith("decoder.layers."):
            path = decoder[int(part[2])]
            leaf = {"original": "weight_bar", "_u": "weight_u", "_v": "weight_v"}[part[-1]]
            theirs[f"{path}.module.{leaf}"] = value.clone()
        else:
            raise AssertionError(f"unmapped parameter {name}")
    return theirs


# ---------------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------------


TINY_TRAINING = ["image_size=64", "audio_seconds=0.3", "batch_size=8", "device=cpu", "lr_g=0.001", "sample_count=3"]


def check_cli_error(result: Result, *fragments: str) -> str:
    """A user error: exit status 2, exactly one line on stderr starting with 'error:' and naming each fragment."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
