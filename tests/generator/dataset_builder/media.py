"""Synthetic talking-face media for the build tests: videos written with PyAV, speech-like audio, a real face."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from tests.support import REPO

FrameFn = Callable[[int], np.ndarray]
TIME_BASE = Fraction(1, 60_000)  # MPEG-4 allows denominators up to 65535; exact for 25 and 30000/1001 fps
GRID_SAMPLES = REPO.parent / "shared" / "data" / "grid-samples"
FACE_SEQUENCE = [(90, 40, 170), (96, 44, 166), (84, 38, 172)]  # the face moves a little between frames


@lru_cache(maxsize=1)
def astronaut_face() -> np.ndarray:
    """The face of skimage's astronaut image (Eileen Collins, public domain), 200 x 200 RGB."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[10:210, 120:320])


def canvas(height: int = 288, width: int = 384, colour: Sequence[int] = (40, 110, 170)) -> np.ndarray:
    return np.tile(np.array(colour, np.uint8), (height, width, 1))


def with_faces(faces: Sequence[tuple[int, int, int]], height: int = 288, width: int = 384) -> np.ndarray:
    """A plain background with the astronaut's face pasted at (left, top) resized to ``side`` for each entry."""
    from PIL import Image

    frame = canvas(height, width)
    for left, top, side in faces:
        face = np.asarray(Image.fromarray(astronaut_face()).resize((side, side), Image.BILINEAR))
        frame[top : top + side, left : left + side] = face
    return frame


def speech_like(seconds: float, rate: int = 44_100, seed: int = 0) -> np.ndarray:
    """A voiced harmonic signal (F0 near 140 Hz, syllable-rate envelope) that WebRTC VAD calls speech; float [-1, 1]."""
    t = np.arange(int(round(seconds * rate))) / rate
    phase_shift = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    f0 = 140 * (1 + 0.05 * np.sin(2 * np.pi * 1.5 * t + phase_shift))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t + phase_shift))
    signal = voiced * envelope
    return 0.4 * signal / np.abs(signal).max()


def write_video(path: Path, frame: FrameFn, count: int, fps: Fraction | int = 25, audio: np.ndarray | None = None,
                audio_rate: int = 44_100, times: Sequence[float] | None = None) -> Path:
    """An MPEG-4 video of ``count`` frames (``frame(i)`` gives frame i) with optional AAC audio (float mono).

    ``times`` (seconds) gives each frame's timestamp, for variable frame rates; by default i / fps.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first = frame(0)
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = first.shape[1], first.shape[0], "yuv420p"
        video.codec_context.time_base = video.time_base = TIME_BASE
        sound = out.add_stream("aac", rate=audio_rate, layout="mono") if audio is not None else None
        for i in range(count):
            picture = av.VideoFrame.from_ndarray(frame(i), format="rgb24")
            seconds = times[i] if times is not None else i / Fraction(fps)
            picture.pts, picture.time_base = int(round(seconds / TIME_BASE)), TIME_BASE
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        if sound is not None:
            _write_audio(out, sound, audio, audio_rate)
    return path


def _write_audio(out, stream, audio: np.ndarray, rate: int) -> None:
    step = stream.codec_context.frame_size or 1024
    for start in range(0, len(audio), step):
        chunk = audio[start : start + step].astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def index_frame(i: int) -> np.ndarray:
    """A frame whose grey level encodes its index (i * 8 % 256): decodable back despite compression."""
    return canvas(64, 64, (8 * i % 256,) * 3)


def talking_face_video(path: Path, seconds: float = 2.0, seed: int = 0, fps: int = 10) -> Path:
    """A face that moves slightly, with speech-like audio, ``seconds`` long."""
    frames = int(seconds * fps)
    return write_video(path, lambda i: with_faces([FACE_SEQUENCE[i % 3]]), frames, fps, speech_like(seconds, seed=seed))
