"""The input of `survey-app create-study`: a folder with a `pairs.csv` manifest of real/generated face pairs.

Contract (the same for an `evalkit run` folder and for any hand-made folder):

* `RUN_DIR/pairs.csv`, UTF-8, comma-separated, with a header row holding at least the columns
  `split,identity,real,generated`:
  - `split`: the data split the pair comes from (e.g. `train`, `val`, `test`);
  - `identity`: the speaker/person id; rows of the same identity are the same person;
  - `real`: path of a real photo of that person, relative to the CSV;
  - `generated`: path of the face generated from that person's speech, relative to the CSV.
* Optional column `group`: a matching key for foils (e.g. `female`, `male-40s`); controls and lineup foils
  are drawn from other identities of the same group when there are enough of them.
* Optional column `clip`: a clip id unique within the run and stable across runs on the same data
  (`<split>/<identity>/<clip file stem>`); `create-study --run A --run B` joins runs on it.
* Optional column `audio`: path, relative to the CSV, of the speech clip the generated face was made from (any
  format soundfile reads; evalkit writes Ogg/Vorbis). The audio study kinds need it.
* Optional `RUN_DIR/results.json`: the run record that `evalkit run` writes; its generator (kind, name, SHA-256),
  data hashes, code version, seed and command line are copied into the study's provenance (the rest of the record,
  the metric figures, is not).
* Every path must be relative, must name a readable image file, and a row may not be blank in a required column.
* Two rows of the same identity with different `real` photos enable the "same person, other photo" control.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePath

import soundfile
from PIL import Image, UnidentifiedImageError

MANIFEST_NAME = "pairs.csv"
RUN_RECORD_NAME = "results.json"
RUN_PROVENANCE_KEYS = ("evalkit_version", "created", "run_dir", "splits")
RECORD_PROVENANCE_KEYS = ("generator_sha256", "data", "code_version", "seed", "command_line", "packages")
REQUIRED_COLUMNS = ("split", "identity", "real", "generated")
OPTIONAL_COLUMNS = ("group", "clip", "audio")
MAX_FIELD_LENGTH = 200


class ManifestError(ValueError):
    """The input folder does not follow the contract; the message says what to fix."""


@dataclass(frozen=True)
class ImagePair:
    split: str
    identity: str
    real: Path
    generated: Path
    group: str
    clip: str = ""  # the run's clip id ("" when the manifest has no clip column)
    audio: Path | None = None  # the speech clip the generated face was made from (None without an audio column)


@dataclass(frozen=True)
class RunInput:
    folder: Path
    pairs: list[ImagePair]
    manifest_sha256: str
    run_metadata: dict

    @property
    def has_audio(self) -> bool:
        """Whether every pair names its speech clip (the manifest has a filled `audio` column)."""
        return all(pair.audio is not None for pair in self.pairs)

    @property
    def has_clips(self) -> bool:
        """Whether every pair names its clip id (the manifest has a filled `clip` column)."""
        return all(pair.clip for pair in self.pairs)


def load_run_input(folder: Path) -> RunInput:
    if not folder.is_dir():
        raise ManifestError(f"run folder {folder} does not exist or is not a folder")
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise ManifestError(f"{folder} has no {MANIFEST_NAME} (columns: {','.join(REQUIRED_COLUMNS)})")
    raw = manifest.read_bytes()
    pairs = _parse_manifest(raw, folder, manifest)
    return RunInput(folder, pairs, hashlib.sha256(raw).hexdigest(), _read_run_metadata(folder))


def _parse_manifest(raw: bytes, folder: Path, manifest: Path) -> list[ImagePair]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ManifestError(f"{manifest} is not UTF-8 text") from error
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise ManifestError(f"{manifest} lacks column(s) {', '.join(missing)}")
    pairs = [_parse_row(row, line, folder, manifest) for line, row in enumerate(reader, start=2)]
    if not pairs:
        raise ManifestError(f"{manifest} lists no pairs")
    repeated = [clip for clip, count in Counter(pair.clip for pair in pairs if pair.clip).items() if count > 1]
    if repeated:
        repeated = repeated[0]
        raise ManifestError(f"{manifest}: clip id {repeated} appears on more than one row (clip ids are unique)")
    return pairs


def _parse_row(row: dict, line: int, folder: Path, manifest: Path) -> ImagePair:
    where = f"{manifest}:{line}"
    values = {column: (row.get(column) or "").strip() for column in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
    for column in REQUIRED_COLUMNS:
        if not values[column]:
            raise ManifestError(f"{where}: column {column} is empty")
    for column, value in values.items():
        if len(value) > MAX_FIELD_LENGTH:
            raise ManifestError(f"{where}: column {column} is longer than {MAX_FIELD_LENGTH} characters")
    return ImagePair(
        split=values["split"],
        identity=values["identity"],
        real=_image_path(values["real"], folder, where),
        generated=_image_path(values["generated"], folder, where),
        group=values["group"],
        clip=values["clip"],
        audio=_audio_path(values["audio"], folder, where) if values["audio"] else None,
    )


def _relative_file(relative: str, folder: Path, where: str, what: str) -> Path:
    if PurePath(relative).is_absolute():
        raise ManifestError(f"{where}: path {relative} must be relative to the CSV")
    path = folder / relative
    if not path.is_file():
        raise ManifestError(f"{where}: {what} {relative} does not exist")
    return path


def _audio_path(relative: str, folder: Path, where: str) -> Path:
    path = _relative_file(relative, folder, where, "audio")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise ManifestError(f"{where}: {relative} is not a readable audio file") from error
    if info.frames == 0:
        raise ManifestError(f"{where}: audio {relative} holds no samples")
    return path


def _image_path(relative: str, folder: Path, where: str) -> Path:
    path = _relative_file(relative, folder, where, "image")
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError) as error:
        raise ManifestError(f"{where}: {relative} is not a readable image") from error
    return path


def _read_run_metadata(folder: Path) -> dict:
    """Provenance of the evalkit run that made the folder (empty for a hand-made folder without a run record)."""
    path = folder / RUN_RECORD_NAME
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path} is not valid JSON") from error
    if not isinstance(record, dict) or not isinstance(record.get("provenance", {}), dict):
        raise ManifestError(f"{path} must hold an evalkit run record (a JSON object)")
    metadata = {key: record[key] for key in RUN_PROVENANCE_KEYS if key in record}
    generator = record.get("generator")
    if isinstance(generator, dict):
        metadata["generator"] = {key: generator.get(key) for key in ("kind", "name", "sha256", "image_size",
                                                                     "audio_seconds", "provenance")}
    provenance = record.get("provenance", {})
    metadata.update({key: provenance[key] for key in RECORD_PROVENANCE_KEYS if key in provenance})
    return metadata
