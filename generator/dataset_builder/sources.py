"""Which videos to build from, and whose they are: identity folders, one video per identity, or a CSV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from generator.data.manifest import read_csv_rows
from generator.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".mpg", ".mpeg", ".webm", ".m4v", ".flv", ".wmv", ".3gp", ".ts")
CSV_COLUMNS = ("identity", "video")

Layout = Literal["identity-folders", "one-per-identity"]


@dataclass(frozen=True)
class VideoSource:
    identity: str
    path: Path
    name: str  # unique within the identity: the file's stem

    @property
    def key(self) -> str:
        return f"{self.identity}/{self.name}"


def find_videos(source: Path, layout: Layout = "identity-folders") -> list[VideoSource]:
    """Videos of INPUT: a CSV (identity, video) or a folder in ``layout``; sorted by identity, then name."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        videos = _from_csv(source)
    elif source.is_dir():
        videos = _from_folder(source, layout)
    else:
        raise DataError(f"{source}: not a folder of videos nor a CSV file (identity, video)")
    if not videos:
        raise DataError(f"{source}: no video files found (suffixes {', '.join(VIDEO_SUFFIXES)})")
    _check_unique(videos)
    return sorted(videos, key=lambda v: (v.identity, v.name))


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def _from_folder(root: Path, layout: Layout) -> list[VideoSource]:
    top_level = sorted(p for p in root.iterdir() if _is_video(p))
    if layout == "one-per-identity":
        return [VideoSource(p.stem, p, p.stem) for p in top_level]
    if top_level:
        raise DataError(
            f"{root}: has videos directly inside ({top_level[0].name}, ...) instead of one sub-folder per identity; "
            "use --layout one-per-identity if each video shows a different person"
        )
    return [
        VideoSource(folder.name, p, p.stem)
        for folder in sorted(root.iterdir())
        if folder.is_dir()
        for p in sorted(folder.iterdir())
        if _is_video(p)
    ]


def _from_csv(path: Path) -> list[VideoSource]:
    header, rows = read_csv_rows(path, "video list")
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; a video list has columns {list(CSV_COLUMNS)}")
    videos = []
    for line, row in enumerate(rows, start=2):
        identity, video = (row["identity"] or "").strip(), (row["video"] or "").strip()
        if not identity or not video:
            raise DataError(f"{path}:{line}: empty identity or video")
        if "/" in identity or "\\" in identity or identity in (".", ".."):
            raise DataError(f"{path}:{line}: identity {identity!r} cannot be a folder name")
        file = (path.parent / video).resolve()
        videos.append(VideoSource(identity, file, file.stem))
    return videos


def _check_unique(videos: list[VideoSource]) -> None:
    seen: dict[str, Path] = {}
    for v in videos:
        if v.key in seen:
            raise DataError(f"identity {v.identity!r} has two videos named {v.name!r} ({seen[v.key]}, {v.path}); "
                            "rename one")
        seen[v.key] = v.path
