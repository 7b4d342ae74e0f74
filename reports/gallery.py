"""The paired gallery as the templates show it: per split and identity, rows of (real face of the clip | generated
face | nearest training face, with distances) and the clip's speech. The sample comes from the run record's
``gallery`` entry, the full set from the run folder's ``gallery.csv`` (both written by ``evalkit.paired_gallery``);
nothing is chosen or computed here."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from evalkit.record import RunRecord, number

GALLERY_CSV = "gallery.csv"


@dataclass(frozen=True)
class GalleryRow:
    """One clip: the three faces (paths relative to the run folder, as the record and gallery.csv give them;
    ``nearest`` empty when not found), the speech file (empty when the run folder has none) and the distances as
    text."""

    clip: str
    real: str
    generated: str
    nearest: str
    audio: str
    real_distance: str
    nearest_text: str


@dataclass(frozen=True)
class GalleryBlock:
    """The rows of one split and identity."""

    split: str
    identity: str
    rows: list[GalleryRow]


@dataclass(frozen=True)
class FullGallery:
    """Every clip's row (``gallery.csv``), for ``gallery.html`` (which links the files instead of embedding them, so
    it does not check that each one is there)."""

    blocks: list[GalleryBlock]
    note: str


def _row(row: dict, threshold: float, audio: bool) -> GalleryRow:
    """A gallery row from a record or CSV row (CSV values are strings; empty: no value); ``audio``: whether the
    speech file is there."""
    nearest = row.get("nearest") or ""
    if nearest:
        distance = float(row["nearest_distance"])
        own = str(row["own_face"]).lower() == "true"
        nearest_text = (f"{row['nearest_identity']}, distance {number(distance)}"
                        + (" (this clip's own real face)" if own else "")
                        + (f" < {threshold:g}: same person by dlib's rule" if distance < threshold else ""))
    else:
        nearest_text = "no nearest face (see the note)"
    real_distance = f"distance to the real face {number(float(row['real_distance']))}" \
        if row.get("real_distance") not in (None, "") else ""
    return GalleryRow(row["clip"], row["real"], row["generated"], nearest, row["audio"] if audio else "",
                      real_distance, nearest_text)


def _blocks(rows: list[GalleryRow], splits: list[str], identities: list[str]) -> list[GalleryBlock]:
    blocks: dict[tuple[str, str], list[GalleryRow]] = {}
    for row, split, identity in zip(rows, splits, identities, strict=True):
        blocks.setdefault((split, identity), []).append(row)
    return [GalleryBlock(split, identity, members) for (split, identity), members in blocks.items()]


def describe(gallery: dict) -> str:
    """How the gallery's nearest training faces were found (or why there are none)."""
    if gallery["status"] != "ok":
        return f"Nearest training faces: {gallery['status']} ({gallery['reason']})."
    return (f"Nearest training face: of the {gallery['training_faces']} real faces of the training splits, the one "
            f"nearest the generated face by {gallery['distance']} ({gallery['descriptor']}); dlib's model puts two "
            f"photos of one person within about {gallery['same_person_distance']:g}. A generated face much nearer a "
            "training face than to its clip's real face suggests a copied training face.")


def gallery_blocks(run_dir: Path, document: RunRecord) -> tuple[list[GalleryBlock], str]:
    """The record's fixed sample as blocks, and the note under them (empty blocks and the reason for a record
    written before the paired gallery existed)."""
    gallery = document.get("gallery")
    if not gallery:
        return [], "This run record predates the paired gallery; run evalkit run again to get one."
    note = (f"A fixed sample: {gallery['per_identity']} clips per split and identity, drawn with seed "
            f"{gallery['seed']}. " + describe(gallery))
    sample = gallery["sample"]
    rows = [_row(row, gallery["same_person_distance"], (Path(run_dir) / row["audio"]).is_file()) for row in sample]
    return _blocks(rows, [row["split"] for row in sample], [row["identity"] for row in sample]), note


def read_full_gallery(run_dir: Path, document: RunRecord) -> FullGallery | None:
    """Every clip's row from the run folder's ``gallery.csv`` (None without it or without a gallery record)."""
    gallery = document.get("gallery")
    path = Path(run_dir) / GALLERY_CSV
    if not gallery or not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    shown = [_row(row, gallery["same_person_distance"], True) for row in rows]
    return FullGallery(_blocks(shown, [row["split"] for row in rows], [row["identity"] for row in rows]),
                       describe(gallery))
