"""Export a self-contained subset of a manifest: FLAC audio, faces resized and colour-corrected, a new manifest.

Used to build the evaluation set embedded in the repository (``evalkit/eval_data``), and by anyone who wants a
portable copy of their evaluation splits.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from generator.data.audio import PCM16_SCALE, SAMPLE_RATE, read_audio, to_pcm16
from generator.data.faces import read_face_rgb
from generator.data.manifest import Manifest, Pair, write_manifest
from generator.errors import DataError


@dataclass(frozen=True)
class SplitSelection:
    """A split to export; ``limit`` keeps at most that many clips, one per face, chosen with the seed."""

    split: str
    limit: int | None = None

    @classmethod
    def parse(cls, text: str) -> SplitSelection:
        name, _, limit = text.partition(":")
        if limit and not limit.isdigit():
            raise DataError(f"bad split selection {text!r} (use NAME or NAME:COUNT)")
        return cls(name, int(limit) if limit else None)


def select_pairs(manifest: Manifest, selection: SplitSelection, rng: np.random.Generator) -> list[Pair]:
    pairs = list(manifest.select(selection.split).pairs)
    if selection.limit is None:
        return pairs
    one_per_face: dict[Path, Pair] = {}
    for i in rng.permutation(len(pairs)):
        one_per_face.setdefault(pairs[i].face, pairs[i])
    chosen = list(one_per_face.values())
    by_identity: dict[str, list[Pair]] = {}
    for p in chosen:
        by_identity.setdefault(p.identity, []).append(p)
    per_identity = max(1, selection.limit // len(by_identity))
    return [p for identity in sorted(by_identity) for p in by_identity[identity][:per_identity]]


def _write_flac(target: Path, source: Path) -> None:
    """16-bit FLAC for a 16 kHz 8/16-bit source (its exact samples); any other source as 24-bit FLAC, a float one
    scaled down when it peaks above full scale (a gain, to which the model's peak normalisation is blind)."""
    wave = read_audio(source)
    info = sf.info(str(source))
    if info.samplerate == SAMPLE_RATE and info.subtype in ("PCM_16", "PCM_S8", "PCM_U8"):
        sf.write(target, to_pcm16(wave), SAMPLE_RATE, subtype="PCM_16")
        return
    full_scale = PCM16_SCALE * (1 - 2.0**-23)
    peak = np.max(np.abs(wave))
    sf.write(target, wave / max(PCM16_SCALE, peak * PCM16_SCALE / full_scale), SAMPLE_RATE, subtype="PCM_24")


def export_subset(
    manifest: Manifest,
    selections: list[SplitSelection],
    out: str | Path,
    image_size: int = 128,
    jpeg_quality: int = 95,
    seed: int = 0,
    notice: str | Path | None = None,
) -> Path:
    """Copy the selected pairs to ``out`` (audio/…flac, faces/…jpg, manifest.csv); returns the manifest path."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: output folder is not empty")
    rng = np.random.default_rng(seed)
    exported: list[Pair] = []
    face_names: dict[Path, Path] = {}
    for selection in selections:
        for p in select_pairs(manifest, selection, rng):
            if p.face not in face_names:
                target = out / "faces" / p.identity / f"face_{len(face_names):05d}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                img = read_face_rgb(p.face, swap_bgr=p.face_order == "bgr").resize((image_size, image_size))
                img.save(target, quality=jpeg_quality)
                face_names[p.face] = target
            audio = out / "audio" / p.split / p.identity / f"{p.audio.stem}.flac"
            audio.parent.mkdir(parents=True, exist_ok=True)
            _write_flac(audio, p.audio)
            exported.append(Pair(p.identity, face_names[p.face], audio, p.split, p.group, "rgb", p.gender))
    if notice is not None:
        shutil.copy(notice, out / "SOURCE_README.md")
    return write_manifest(exported, out / "manifest.csv")
