"""Turn existing datasets into manifests: the shared folder's ``pairs.csv`` and the original repository layout."""

from __future__ import annotations

import re
from pathlib import Path

from generator.data.manifest import Pair, read_csv_rows
from generator.errors import DataError

PAIRS_CSV_COLUMNS = ("split", "identity", "source_index", "face", "audio")
_ORIGINAL_FACE = re.compile(r"^cropped_face_frame_(\d+)\.(png|jpg|jpeg)$", re.IGNORECASE)
_ORIGINAL_AUDIO = re.compile(r"^preprocessed_frame_(\d+)\.wav$", re.IGNORECASE)


def import_pairs_csv(path: str | Path, face_order: str = "bgr") -> list[Pair]:
    """Pairs from the published Wav2Pix release's ``pairs.csv`` (its crops are BGR-swapped, hence the default)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pairs.csv not found")
    header, rows = read_csv_rows(path, "pairs file")
    missing = [c for c in PAIRS_CSV_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: not a Wav2Pix pairs.csv (missing column(s) {missing})")
    if not rows:
        raise DataError(f"{path}: pairs.csv has no rows")
    base = path.parent.resolve()
    pairs: list[Pair] = []
    for line, row in enumerate(rows, start=2):
        face, audio = base / row["face"], base / row["audio"]
        for kind, file in (("face", face), ("audio", audio)):
            if not file.is_file():
                raise DataError(f"{path}:{line}: {kind} file not found: {file}")
        pairs.append(Pair(row["identity"], face, audio, row["split"], "", face_order))
    return pairs


def import_original_layout(root: str | Path, split: str = "train", face_order: str = "bgr") -> list[Pair]:
    """Pairs from ``<root>/<identity>/cropped_face_frame_N.png`` + ``preprocessed_frame_N.wav`` (the authors' layout).

    A face without its wav (or the reverse) is an error naming the file: the original scripts silently mis-paired
    such folders (upstream issue imatge-upc/wav2pix#2).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    pairs: list[Pair] = []
    for identity_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        faces = {}
        for file in identity_dir.iterdir():
            match = _ORIGINAL_FACE.match(file.name)
            if match:
                faces[int(match.group(1))] = file
        wavs = {int(m.group(1)): f for f in identity_dir.iterdir() if (m := _ORIGINAL_AUDIO.match(f.name))}
        if not faces and not wavs:
            continue
        if not faces:
            raise DataError(f"{identity_dir}: identity has audio but no faces (cropped_face_frame_N.png)")
        for index in sorted(set(faces) ^ set(wavs)):
            orphan = faces.get(index) or wavs.get(index)
            raise DataError(f"{orphan}: has no partner file with index {index} in {identity_dir}")
        pairs.extend(
            Pair(identity_dir.name, faces[i], wavs[i], split, "", face_order) for i in sorted(faces)
        )
    if not pairs:
        raise DataError(f"{root}: no <identity>/cropped_face_frame_N.png + preprocessed_frame_N.wav pairs found")
    return pairs
