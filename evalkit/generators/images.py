"""The ``images`` generator kind (``--generated PATH``): faces a model already produced, keyed by clip.

PATH is either

- a CSV with columns ``audio,generated`` (paths relative to the CSV's folder, or absolute; ``evalkit run`` writes
  one, ``generated.csv``, into every run folder), or a folder holding such a ``generated.csv``; or
- a folder mirroring the manifest's audio paths: the face of clip ``audio/spk/clip_1.flac`` (relative to the
  manifest's folder) is ``PATH/audio/spk/clip_1.<png|jpg|jpeg|webp|bmp>``.

Every evaluated clip needs exactly one face, all faces one square size; a missing face is one error that lists the
first missing clips.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from evalkit.errors import EvalError
from evalkit.generators.base import FaceSource, GenerationJob, GeneratorInfo
from generator.data.faces import read_face_rgb
from generator.data.manifest import Pair, read_csv_rows
from generator.errors import DataError

GENERATED_CSV = "generated.csv"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SHOWN_MISSING = 5


def _key(path: Path) -> str:
    return os.path.normcase(os.path.abspath(path))


def read_generated_csv(path: Path) -> dict[str, Path]:
    """{absolute audio path: absolute face path} from an ``audio,generated`` CSV."""
    columns, rows = read_csv_rows(path, "generated-faces CSV")
    missing = [c for c in ("audio", "generated") if c not in columns]
    if missing:
        raise EvalError(f"{path}: needs columns audio,generated (missing {missing}; it has {columns})")
    base = path.parent
    faces: dict[str, Path] = {}
    for line, row in enumerate(rows, start=2):
        if not row.get("audio") or not row.get("generated"):
            raise EvalError(f"{path}, line {line}: empty audio or generated path")
        audio = _key(base / row["audio"])
        if audio in faces:
            raise EvalError(f"{path}, line {line}: clip {row['audio']} is listed twice")
        faces[audio] = base / row["generated"]
    return faces


def write_generated_csv(folder: Path, pairs: list[Pair], names: list[str]) -> Path:
    """``folder/generated.csv``: each clip's audio and its face ``names[k]`` (relative to ``folder``)."""
    import csv

    path = folder / GENERATED_CSV
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio", "generated"])
        for pair, name in zip(pairs, names, strict=True):
            writer.writerow([Path(os.path.relpath(pair.audio, folder)).as_posix(), name])
    return path


class ImagesSource(FaceSource):
    """Finished faces read from files (see the module docstring); nothing is computed."""

    def __init__(self, path: Path, manifest_folder: Path) -> None:
        self.path = Path(path)
        self.manifest_folder = manifest_folder
        if self.path.is_dir() and (self.path / GENERATED_CSV).is_file():
            self.path = self.path / GENERATED_CSV
        if self.path.is_file():
            self.table: dict[str, Path] | None = read_generated_csv(self.path)
        elif self.path.is_dir():
            self.table = None
        else:
            raise EvalError(f"{path}: --generated must be an audio,generated CSV or a folder of faces; not found")
        self.files: list[Path] = []
        self.info = GeneratorInfo(kind="images", name=str(self.path), image_size=0, sha256="")

    def _face_file(self, pair: Pair) -> Path | None:
        if self.table is not None:
            return self.table.get(_key(pair.audio))
        try:
            relative = Path(os.path.relpath(pair.audio, self.manifest_folder)).with_suffix("")
        except ValueError:  # another drive (Windows)
            return None
        for suffix in IMAGE_SUFFIXES:
            candidate = self.path / relative.with_suffix(suffix)
            if candidate.is_file():
                return candidate
        return None

    def check(self, pairs: list[Pair]) -> None:
        files = [self._face_file(p) for p in pairs]
        missing = [str(p.audio) for p, f in zip(pairs, files, strict=True) if f is None or not f.is_file()]
        if missing:
            shown = ", ".join(missing[:SHOWN_MISSING])
            more = f" (and {len(missing) - SHOWN_MISSING} more)" if len(missing) > SHOWN_MISSING else ""
            raise EvalError(f"{self.path}: no generated face for {len(missing)} of {len(pairs)} clip(s): {shown}{more}")
        self.files = [f for f in files if f is not None]
        size = self._image_size(self.files[0]) if self.files else 0
        digest = hashlib.sha256()
        for f in self.files:
            digest.update(f.read_bytes())
        self.info = GeneratorInfo(kind="images", name=str(self.path), image_size=size, sha256=digest.hexdigest(),
                                  provenance={"path": str(self.path), "files": len(self.files),
                                              "files_sha256": digest.hexdigest()})

    @staticmethod
    def _image_size(path: Path) -> int:
        image = read_face_rgb(path)
        if image.width != image.height:
            raise EvalError(f"{path}: generated face is {image.width}x{image.height} px; faces must be square")
        return image.width

    def faces(self, job: GenerationJob) -> np.ndarray:
        size = self.info.image_size
        faces = np.empty((len(self.files), size, size, 3), dtype=np.uint8)
        for k, path in enumerate(tqdm(self.files, desc="reading generated faces", unit="face", disable=None)):
            try:
                image = np.asarray(read_face_rgb(path))
            except DataError as exc:
                raise EvalError(str(exc)) from None
            if image.shape != faces.shape[1:]:
                raise EvalError(f"{path}: generated face is {image.shape[1]}x{image.shape[0]} px; the first face "
                                f"({self.files[0]}) is {size}x{size}: all faces must have one size")
            faces[k] = image
        return faces
