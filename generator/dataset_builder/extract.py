"""Per-video extraction: sampled frames → speaker's face crop and descriptor → audio windows with their speech share.

Everything a video yields is written under the output folder (``faces/``, ``audio/``, ``rejected/``) and summed up in
``work/<identity>/<video>.json``, the video's done marker. A later build skips a video whose marker matches the file
(size, modification time) and the extraction options; a video that fails is recorded with its error the same way, so
one bad file never stops the others.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from generator.data.audio import SAMPLE_RATE, num_samples
from generator.dataset_builder import faces
from generator.dataset_builder.sources import VideoSource
from generator.dataset_builder.speech import VAD_MODES, pause_share, speech_fraction, vad_gain, window_starts
from generator.dataset_builder.video import Soundtrack, decode_video
from generator.errors import DataError

FACE = "face"
NO_FACE = "no_face"
SEVERAL_FACES = "several_faces"
THUMBNAIL_SIDE = 160


@dataclass(frozen=True)
class ExtractOptions:
    rate: float = 1.0  # frames sampled per second of video
    detector: faces.Detector = "hog"
    upsample: int = 1  # dlib detector upsampling: 1 finds faces down to about 40 px
    similar_faces: float = 0.5  # a second face with at least this share of the largest's area: frame rejected
    margin: float = 0.25  # share of the face box's side added on each side of the crop
    align: bool = False  # 5-point alignment (dlib face chip) instead of a plain box crop
    size: int = 128  # side of the saved face crops, in pixels
    context: float = 2.0  # seconds of audio on each side of the frame that windows are cut from
    windows: int = 5  # random windows cut per face
    window_seconds: float = 1.0
    vad_mode: int = 3
    seed: int = 0

    def check(self) -> None:
        """DataError for options that cannot work."""
        if self.rate <= 0:
            raise DataError(f"--fps must be positive, got {self.rate}")
        if self.upsample < 0 or self.size < 8 or self.margin < 0 or self.windows < 1:
            raise DataError("--upsample and --margin must be >= 0, --size >= 8 and --windows >= 1")
        if not 0 < self.similar_faces <= 1:
            raise DataError(f"--similar-faces must be in (0, 1], got {self.similar_faces}")
        if self.window_seconds <= 0 or 2 * self.context < self.window_seconds:
            raise DataError(f"--audio-context {self.context} s on each side cannot hold a "
                            f"{self.window_seconds} s window")
        if self.vad_mode not in VAD_MODES:
            raise DataError(f"--vad-mode must be one of {VAD_MODES}, got {self.vad_mode}")


@dataclass
class Window:
    audio: str  # WAV path relative to the output folder
    start: float  # seconds on the video timeline
    speech: float  # share of 30 ms frames with speech
    pauses: float  # share of 30 ms frames quieter than half the window's mean


@dataclass
class FrameRecord:
    time: float
    status: str  # FACE, NO_FACE or SEVERAL_FACES
    face: str | None = None  # crop path relative to the output folder
    thumbnail: str | None = None  # frame thumbnail (rejected frames), relative to the output folder
    descriptor: list[float] | None = None
    windows: list[Window] = field(default_factory=list)


@dataclass
class VideoRecord:
    identity: str
    name: str
    source: str
    stamp: list[int]  # size and modification time (ns) of the source when it was extracted
    options: dict
    duration: float = 0.0
    error: str | None = None
    frames: list[FrameRecord] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict) -> VideoRecord:
        frames = [FrameRecord(**{**f, "windows": [Window(**w) for w in f["windows"]]}) for f in data["frames"]]
        return cls(**{**data, "frames": frames})


def marker_path(out: Path, video: VideoSource) -> Path:
    return out / "work" / video.identity / f"{video.name}.json"


def extract_video(video: VideoSource, options: ExtractOptions, out: Path) -> VideoRecord:
    """Extract one video into ``out``, or return its record from an earlier build when nothing changed."""
    stamp = _stamp(video.path)
    marker = marker_path(out, video)
    done = _read_marker(marker)
    if done and (done.source, done.stamp, done.options) == (str(video.path), stamp, asdict(options)):
        return done
    for kind in ("faces", "audio", "rejected"):
        shutil.rmtree(out / kind / video.identity / video.name, ignore_errors=True)
    record = VideoRecord(video.identity, video.name, str(video.path), stamp, asdict(options))
    try:
        _extract(video, options, out, record)
    except DataError as exc:
        record.error, record.frames = str(exc), []
    _write_atomically(marker, json.dumps(asdict(record)))
    return record


def _read_marker(marker: Path) -> VideoRecord | None:
    """The record of an earlier extraction; None when there is none or it is unreadable (then it is redone)."""
    try:
        return VideoRecord.from_json(json.loads(marker.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _stamp(path: Path) -> list[int]:
    try:
        stat = path.stat()
    except OSError:
        return [-1, -1]  # the missing file is reported by the decoder, as any unreadable video
    return [stat.st_size, stat.st_mtime_ns]


def _extract(video: VideoSource, options: ExtractOptions, out: Path, record: VideoRecord) -> None:
    folder = Path(video.identity) / video.name

    chips: list[np.ndarray] = []  # of the frames with a face, in order: embedded together after decoding

    def on_frame(time: float, rgb: np.ndarray) -> FrameRecord:
        return _frame_record(time, rgb, options, out, folder, chips)

    decoded = decode_video(video.path, options.rate, on_frame)
    record.duration = decoded.duration
    record.frames = decoded.results
    with_face = [frame for frame in record.frames if frame.status == FACE]
    for frame, descriptor in zip(with_face, faces.descriptors(chips), strict=True):
        frame.descriptor = descriptor.tolist()
    for index, frame in enumerate(record.frames):
        if frame.status == FACE:
            rng = np.random.default_rng([options.seed, zlib.crc32(video.key.encode()), index])
            frame.windows = _cut_windows(decoded.soundtrack, frame.time, options, rng, out, folder)


def _stem(time: float) -> str:
    return f"{int(round(time * 1000)):09d}ms"


def _frame_record(time: float, rgb: np.ndarray, options: ExtractOptions, out: Path, folder: Path,
                  chips: list[np.ndarray]) -> FrameRecord:
    """The frame's record; for a frame with the speaker's face, its face chip is appended to ``chips`` (the
    descriptor is filled in later, a batch of chips at a time)."""
    boxes = faces.detect_faces(rgb, options.detector, options.upsample)
    speaker = faces.speaker_face(boxes, options.similar_faces)
    if speaker is None:
        status = NO_FACE if not boxes else SEVERAL_FACES
        thumb = Path("rejected") / folder / f"{_stem(time)}_{status}.png"
        _save_image(faces.thumbnail(rgb, boxes, THUMBNAIL_SIDE), out / thumb)
        return FrameRecord(time, status, thumbnail=thumb.as_posix())
    shape = faces.landmarks(rgb, speaker)
    if options.align:
        crop = faces.aligned_face(rgb, shape, options.margin, options.size)
    else:
        crop = faces.crop_face(rgb, speaker, options.margin, options.size)
    face = Path("faces") / folder / f"{_stem(time)}.png"
    _save_image(crop, out / face)
    chips.append(faces.face_chip(rgb, shape))
    return FrameRecord(time, FACE, face=face.as_posix())


def _cut_windows(track: Soundtrack, time: float, options: ExtractOptions, rng: np.random.Generator, out: Path,
                 folder: Path) -> list[Window]:
    length = num_samples(options.window_seconds)
    gain = vad_gain(track)
    windows = []
    for k, start in enumerate(window_starts(track, time, options.context, options.window_seconds, options.windows,
                                            rng)):
        samples = track.samples[start : start + length]
        audio = Path("audio") / folder / f"{_stem(time)}_{k}.wav"
        (out / audio).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out / audio), samples, SAMPLE_RATE, subtype="FLOAT")  # the decoded samples, not re-quantised
        seconds = track.offset + start / SAMPLE_RATE
        speech = speech_fraction(samples * gain, options.vad_mode)
        windows.append(Window(audio.as_posix(), seconds, speech, pause_share(samples)))
    return windows


def _save_image(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(text)
    os.replace(partial, path)
