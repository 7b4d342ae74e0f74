"""Decode a video with PyAV: frames sampled at exact times, and the whole soundtrack as 16 kHz mono float32.

Frames are sampled on the video's own timeline (0 = its first frame): one at the middle of every 1/rate-second
interval, t_k = (k + 0.5) / rate, taking the frame on screen at t_k (the last one whose timestamp is <= t_k). This
uses timestamps only, so it is exact for any frame rate, including variable ones. Frames are handed to a callback as
they are decoded, so a long video never sits in memory; only the callback's results and the audio are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import av
import numpy as np

from generator.data.audio import SAMPLE_RATE
from generator.errors import DataError

T = TypeVar("T")


@dataclass(frozen=True)
class Soundtrack:
    samples: np.ndarray  # float32, 16 kHz mono, full scale 1.0 (decoded in floating point: nothing clipped or
    # rounded to 16 bits, so quiet and over-full-scale tracks keep their detail)
    offset: float  # seconds from the video's first frame to the first sample (may be negative)

    def index(self, time: float) -> int:
        """Sample index of a time on the video timeline."""
        return int(round((time - self.offset) * SAMPLE_RATE))


@dataclass(frozen=True)
class Decoded(Generic[T]):
    results: list[T]  # the callback's result for every sampled frame, in time order
    soundtrack: Soundtrack
    duration: float  # seconds of video, first frame to the end of the last


def sample_times(rate: float) -> Iterator[float]:
    """t_k = (k + 0.5) / rate for k = 0, 1, ..."""
    k = 0
    while True:
        yield (k + 0.5) / rate
        k += 1


def decode_video(path: Path, rate: float, on_frame: Callable[[float, np.ndarray], T]) -> Decoded[T]:
    """Decode ``path``; ``on_frame(time, rgb uint8 HxWx3)`` is called for every sampled frame.

    Raises DataError for a file that is not a readable video, has no video or no audio stream, or no frames.
    """
    if rate <= 0:
        raise DataError(f"frame rate must be positive, got {rate}")
    try:
        with av.open(str(path)) as container:
            return _decode(container, rate, on_frame, path)
    except av.error.FFmpegError as exc:
        raise DataError(f"{path}: not a readable video ({exc})") from None


def _decode(container: Any, rate: float, on_frame: Callable[[float, np.ndarray], T], path: Path) -> Decoded[T]:
    if not container.streams.video:
        raise DataError(f"{path}: no video stream")
    if not container.streams.audio:
        raise DataError(f"{path}: no audio track (a speech-face pair needs the speaker's voice)")
    video, audio = container.streams.video[0], container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    audio_start: float | None = None
    picker = _FramePicker(rate, on_frame)
    for packet in container.demux(video, audio):
        for frame in packet.decode():
            if frame.time is None:
                continue
            if packet.stream.type == "video":
                picker.add(frame)
            else:
                audio_start = frame.time if audio_start is None else audio_start
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    if picker.origin is None:
        raise DataError(f"{path}: the video stream has no frames (zero-length video)")
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if audio_start is None or not len(samples):
        raise DataError(f"{path}: the audio track has no samples")
    if not np.all(np.isfinite(samples)):
        raise DataError(f"{path}: the audio track decodes to NaN or infinite samples")
    results, duration = picker.finish(_frame_seconds(video))
    return Decoded(results, Soundtrack(samples, audio_start - picker.origin), duration)


def _frame_seconds(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(1 / rate) if rate else 0.0


class _FramePicker(Generic[T]):
    """Streams decoded frames; for each sample time, the frame on screen then goes to the callback."""

    def __init__(self, rate: float, on_frame: Callable[[float, np.ndarray], T]) -> None:
        self.on_frame = on_frame
        self.times = sample_times(rate)
        self.next_time = next(self.times)
        self.origin: float | None = None
        self.previous: tuple[float, Any] | None = None  # (time on the timeline, PyAV video frame)
        self.results: list[T] = []

    def add(self, frame: Any) -> None:
        if self.origin is None:
            self.origin = frame.time
        time = frame.time - self.origin
        if self.previous is not None:
            self._emit_until(time)
        self.previous = (time, frame)

    def finish(self, default_frame_seconds: float) -> tuple[list[T], float]:
        """Emit the times the last frame covers; returns the results and the video's duration."""
        time, frame = self._on_screen()
        seconds = float(frame.duration * frame.time_base) if frame.duration else default_frame_seconds
        end = time + seconds
        self._emit_until(end)
        return self.results, end

    def _on_screen(self) -> tuple[float, Any]:
        if self.previous is None:
            raise RuntimeError("no frame added yet")  # _decode checks for frames before it finishes
        return self.previous

    def _emit_until(self, end: float) -> None:
        """The previous frame is on screen until ``end``: it serves every sample time before that."""
        while self.next_time < end:
            rgb = np.ascontiguousarray(self._on_screen()[1].to_ndarray(format="rgb24"))
            self.results.append(self.on_frame(self.next_time, rgb))
            self.next_time = next(self.times)
