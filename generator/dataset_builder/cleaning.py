"""Identity-level cleaning of what the videos yielded, and balancing.

Rules (each removal is counted per identity under its reason):

- ``no_face``: no face found in the sampled frame;
- ``several_faces``: another face at least ``--similar-faces`` times the largest face's area (who is speaking is
  unclear); smaller background faces are ignored and the largest face is kept;
- ``outlier``: the face's dlib descriptor lies more than ``--max-distance`` from its identity's robust centroid
  (someone else on screen, a false detection). The centroid is the element-wise median of all the identity's face
  descriptors, refined once as the mean of those within ``--max-distance`` of that median; this assumes most of an
  identity's faces are the speaker. The default 0.6 is dlib's own same-person threshold for these descriptors;
- ``no_audio``: less than one window of audio lies within ``--audio-context`` of the frame;
- ``no_speech``: no window of the face passes the speech checks; windows are dropped one by one even when the face
  stays: ``windows_no_speech`` when less than ``--min-speech`` of its 30 ms frames are voiced according to WebRTC
  VAD, ``windows_no_pauses`` (optional heuristic for music or a third voice, off by default) when less than
  ``--min-pauses`` of its 30 ms frames are quieter than half the window's mean, i.e. the sound never pauses as one
  person speaking does (``generator.dataset_builder.speech.pause_share``). Measured on the GRID samples' 1 s windows
  (clean single-speaker speech): median 0.33, 10th percentile 0.15, lowest 0.03; a steady chord or noise gives 0.0. A
  threshold near 0.1 keeps most clean speech; overlapping voices of similar loudness are only partly caught.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from generator.data.manifest import Pair
from generator.dataset_builder.extract import FACE, NO_FACE, SEVERAL_FACES, FrameRecord, VideoRecord
from generator.errors import DataError

OUTLIER = "outlier"
NO_AUDIO = "no_audio"
NO_SPEECH = "no_speech"
FACE_REASONS = (NO_FACE, SEVERAL_FACES, OUTLIER, NO_AUDIO, NO_SPEECH)
UNSPLIT = "unsplit"


@dataclass(frozen=True)
class CleaningOptions:
    max_distance: float = 0.6
    min_speech: float = 0.5
    min_pauses: float = 0.0  # 0 turns the music / third-voice heuristic off

    def check(self) -> None:
        if self.max_distance <= 0:
            raise DataError(f"--max-distance must be positive, got {self.max_distance}")
        for name, value in (("--min-speech", self.min_speech), ("--min-pauses", self.min_pauses)):
            if not 0 <= value <= 1:
                raise DataError(f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class Rejection:
    identity: str
    reason: str
    image: Path  # the face crop, or for frame-level reasons a thumbnail of the frame


@dataclass
class IdentityResult:
    identity: str
    videos: int = 0
    failed_videos: int = 0
    video_seconds: float = 0.0
    frames: int = 0
    removed: Counter = field(default_factory=Counter)  # faces removed, by reason
    faces_kept: int = 0
    windows: int = 0
    windows_no_speech: int = 0
    windows_no_pauses: int = 0
    pairs: list[Pair] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def robust_centroid(descriptors: np.ndarray, max_distance: float) -> np.ndarray:
    """Element-wise median, refined as the mean of the descriptors within ``max_distance`` of it."""
    median = np.median(descriptors, axis=0)
    near = descriptors[np.linalg.norm(descriptors - median, axis=1) <= max_distance]
    return near.mean(axis=0) if len(near) else median


def clean_identity(identity: str, records: Sequence[VideoRecord], out: Path,
                   options: CleaningOptions) -> IdentityResult:
    """Apply the cleaning rules to one identity's extracted videos; kept pairs have split ``unsplit``."""
    result = IdentityResult(identity, videos=len(records))
    ok = [r for r in records if r.error is None]
    result.failed_videos = len(records) - len(ok)
    result.video_seconds = sum(r.duration for r in ok)
    frames = [f for r in ok for f in r.frames]
    result.frames = len(frames)
    for f in frames:
        if f.status in (NO_FACE, SEVERAL_FACES):
            _reject(result, f.status, _file(out, f.thumbnail))
    with_face = [f for f in frames if f.status == FACE]
    if not with_face:
        return result
    descriptors = np.array([f.descriptor for f in with_face])
    distances = np.linalg.norm(descriptors - robust_centroid(descriptors, options.max_distance), axis=1)
    for f, distance in zip(with_face, distances, strict=True):
        if distance > options.max_distance:
            _reject(result, OUTLIER, _file(out, f.face))
        else:
            _keep_windows(result, f, out, options)
    return result


def _file(out: Path, relative: str | None) -> Path:
    """The image file a frame record names, in the output folder; a record that names none is refused."""
    if relative is None:
        raise DataError(f"{out}: an extraction record names no image for a frame; delete its work/ folder and rebuild")
    return out / relative


def _reject(result: IdentityResult, reason: str, image: Path) -> None:
    result.removed[reason] += 1
    result.rejections.append(Rejection(result.identity, reason, image))


def _keep_windows(result: IdentityResult, frame: FrameRecord, out: Path, options: CleaningOptions) -> None:
    if not frame.windows:
        _reject(result, NO_AUDIO, _file(out, frame.face))
        return
    result.windows += len(frame.windows)
    voiced = [w for w in frame.windows if w.speech >= options.min_speech]
    result.windows_no_speech += len(frame.windows) - len(voiced)
    clean = [w for w in voiced if w.pauses >= options.min_pauses]
    result.windows_no_pauses += len(voiced) - len(clean)
    if not clean:
        _reject(result, NO_SPEECH, _file(out, frame.face))
        return
    result.faces_kept += 1
    face = _file(out, frame.face)
    result.pairs.extend(Pair(result.identity, face, out / w.audio, UNSPLIT) for w in clean)


def balance(results: Sequence[IdentityResult], cap: int | None, equalise: bool, seed: int) -> dict[str, int]:
    """Keep at most ``cap`` pairs per identity, and with ``equalise`` no more than the smallest identity has
    (identities left with no pairs do not count); a seeded random choice, in place. Returns pairs dropped."""
    sizes = [len(r.pairs) for r in results if r.pairs]
    limits = [n for n in (cap, min(sizes) if equalise and sizes else None) if n is not None]
    if cap is not None and cap < 1:
        raise DataError(f"--max-pairs must be at least 1, got {cap}")
    dropped = {}
    rng = np.random.default_rng(seed)
    for r in results:
        limit = min(limits, default=len(r.pairs))
        dropped[r.identity] = max(0, len(r.pairs) - limit)
        if dropped[r.identity]:
            keep = np.sort(rng.choice(len(r.pairs), size=limit, replace=False))
            r.pairs = [r.pairs[i] for i in keep]
    return dropped
