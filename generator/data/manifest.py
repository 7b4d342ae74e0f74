"""The one manifest format that every part of the toolkit reads.

A manifest is a CSV file with one row per audio-face pair:

=============  ========  ==========================================================================
column         required  meaning
=============  ========  ==========================================================================
identity       yes       the person speaking and shown
face           yes       face image path (relative to the manifest's folder, or absolute)
audio          yes       speech file path (relative to the manifest's folder, or absolute)
split          yes       ``train``, ``seen``, ``unseen_speech``, ``unseen_identity``, or any name an
                         importer gives (the authors' ``train`` / ``test``)
group          no        id of the group of clips that share audio or a face (set by ``data split``)
face_order     no        ``rgb`` (default) or ``bgr`` for crops stored with swapped channels
gender         no        the person's gender as the data documents it (e.g. ``female``, ``male``;
                         compared case-insensitively; empty: unknown); one value per identity.
                         Forced-matching metrics draw impostors of the same gender when it is known
=============  ========  ==========================================================================
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from generator.errors import DataError

REQUIRED_COLUMNS = ("identity", "face", "audio", "split")
OPTIONAL_COLUMNS = ("group", "face_order", "gender")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
FACE_ORDERS = ("rgb", "bgr")


@dataclass(frozen=True)
class Pair:
    """One audio-face pair; paths are absolute once a manifest is loaded."""

    identity: str
    face: Path
    audio: Path
    split: str
    group: str = ""
    face_order: str = "rgb"
    gender: str = ""


@dataclass(frozen=True)
class Manifest:
    pairs: tuple[Pair, ...]
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def identities(self) -> list[str]:
        """Sorted identity names: the class index order of the speaker classifier."""
        return sorted({p.identity for p in self.pairs})

    @property
    def genders(self) -> dict[str, str]:
        """{identity: gender} for the identities whose gender the manifest gives (``read_manifest`` checks that an
        identity has one gender)."""
        return {p.identity: p.gender for p in self.pairs if p.gender}

    @property
    def splits(self) -> list[str]:
        return sorted({p.split for p in self.pairs})

    def select(self, splits: str | Iterable[str]) -> Manifest:
        wanted = {splits} if isinstance(splits, str) else set(splits)
        missing = wanted - set(self.splits)
        if missing:
            where = self.path or "manifest"
            raise DataError(f"{where}: no pairs in split(s) {sorted(missing)}; it has {self.splits}")
        return Manifest(tuple(p for p in self.pairs if p.split in wanted), self.path)

    def counts(self) -> dict[str, dict[str, int]]:
        """Pairs per split and identity."""
        table: dict[str, Counter] = {}
        for p in self.pairs:
            table.setdefault(p.split, Counter())[p.identity] += 1
        return {s: dict(sorted(c.items())) for s, c in sorted(table.items())}

    def content_hash(self) -> str:
        """SHA-256 over the rows (identity, split, group, gender where given and the bytes of every file), for
        provenance; a manifest without genders hashes as before the column existed."""
        digest = hashlib.sha256()
        for p in self.pairs:
            digest.update(f"{p.identity}\0{p.split}\0{p.group}\0{p.face_order}\0".encode())
            if p.gender:
                digest.update(f"gender\0{p.gender}\0".encode())
            digest.update(file_sha256(p.face).encode())
            digest.update(file_sha256(p.audio).encode())
        return digest.hexdigest()


_FILE_HASHES: dict[tuple[Path, float, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, memoised on (path, mtime, size) so repeated provenance hashing stays cheap."""
    stat = path.stat()
    key = (path, stat.st_mtime, stat.st_size)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _FILE_HASHES[key]


def read_csv_rows(path: Path, what: str) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file: the one CSV reading rule of the toolkit (manifests, pairs files, video lists).

    UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8" writes one); comma, semicolon or tab separated
    (the separator of the header line, found by ``csv.Sniffer``; Excel writes semicolons in locales with a decimal
    comma). A file in another encoding (UTF-16 "Unicode text", a Windows code page) or that is not CSV text is a
    DataError naming `what` it should be and how to save it.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path}: not a CSV {what} in UTF-8: it is UTF-16 text; save it as CSV UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a CSV {what} in UTF-8 (undecodable byte at offset {exc.start}); save it "
                        "as CSV UTF-8") from None
    first_line = text.split("\n", 1)[0]
    try:
        dialect = csv.Sniffer().sniff(first_line, delimiters=",;\t") if first_line.strip() else csv.excel
    except csv.Error:
        dialect = csv.excel  # one column: no separator to find
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=dialect.delimiter)
        return list(reader.fieldnames or []), list(reader)
    except csv.Error as exc:
        raise DataError(f"{path}: not a CSV {what} ({exc})") from None


def read_manifest(path: str | Path, check_files: bool = True) -> Manifest:
    """Load and validate a manifest CSV; every problem is reported with the file, line and column."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    header, rows = read_csv_rows(path, "manifest")
    if not header:
        raise DataError(f"{path}: manifest is empty (no header, no rows)")
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise DataError(f"{path}: unknown column(s) {unknown}; a manifest has columns {list(COLUMNS)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: missing required column(s) {missing}")
    if not rows:
        raise DataError(f"{path}: manifest has a header but no rows")
    base = path.parent.resolve()
    pairs = [_row_to_pair(row, base, f"{path}:{line}", check_files) for line, row in enumerate(rows, start=2)]
    _check_genders(pairs, path)
    return Manifest(tuple(pairs), path)


def _check_genders(pairs: list[Pair], path: Path) -> None:
    """An identity has one gender: the same value on every row that gives one (rows may leave it empty)."""
    seen: dict[str, tuple[str, int]] = {}
    for line, p in enumerate(pairs, start=2):
        if not p.gender:
            continue
        first = seen.setdefault(p.identity, (p.gender, line))
        if first[0] != p.gender:
            raise DataError(f"{path}:{line}: identity {p.identity!r} has gender {p.gender!r} here but "
                            f"{first[0]!r} on line {first[1]}; a person has one gender in a manifest")


def _row_to_pair(row: dict[str, str], base: Path, where: str, check_files: bool) -> Pair:
    values = {k: (row.get(k) or "").strip() for k in COLUMNS}
    for column in REQUIRED_COLUMNS:
        if not values[column]:
            raise DataError(f"{where}: empty value in column '{column}'")
    face_order = values["face_order"].lower() or "rgb"
    if face_order not in FACE_ORDERS:
        raise DataError(f"{where}: face_order must be one of {FACE_ORDERS}, got {values['face_order']!r}")
    # normalised, so that one file reached by two spellings ("a/../b.png", "b.png") is one face when grouping
    face = Path(os.path.normpath(base / values["face"]))
    audio = Path(os.path.normpath(base / values["audio"]))
    if check_files:
        for kind, file in (("face", face), ("audio", audio)):
            if not file.is_file():
                raise DataError(f"{where}: {kind} file not found: {file}")
    return Pair(values["identity"], face, audio, values["split"], values["group"], face_order,
                values["gender"].lower())


def write_manifest(pairs: Sequence[Pair], path: str | Path) -> Path:
    """Write pairs as a manifest CSV with paths relative to its folder where possible."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for p in pairs:
            writer.writerow(
                [p.identity, _relative(p.face, base), _relative(p.audio, base), p.split, p.group, p.face_order,
                 p.gender]
            )
    return path


def _relative(file: Path, base: Path) -> str:
    return Path(os.path.relpath(Path(file).resolve(), base)).as_posix()


def with_splits(manifest: Manifest, splits: Sequence[str], groups: Sequence[str]) -> list[Pair]:
    """A copy of the manifest's pairs with new split and group labels."""
    return [replace(p, split=s, group=g) for p, s, g in zip(manifest.pairs, splits, groups, strict=True)]
