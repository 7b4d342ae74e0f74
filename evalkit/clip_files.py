"""The clips of a run folder (contract 1 of the run folder, read by ``survey-app create-study`` and the report):
each clip's id, a listening copy of the speech the generated face was made from, and ``pairs.csv``.

- clip id: ``<split>/<identity>/<stem>``, the generated face's path without ``generated/`` and ``.png`` (the stem is
  the clip file's stem, with parent folders prefixed only where stems clash within an identity:
  ``evalset.unique_names``). It depends only on the data, so two runs on the same evaluation set share ids.
- listening copy: ``audio/<split>/<identity>/<stem>.ogg``, Ogg/Vorbis, mono, 16 kHz (soundfile/libsndfile): the
  same centre crop of ``audio_seconds`` the generator was given (the whole clip when the generator declares no
  length, e.g. ``--generated`` faces), peak-normalised as the default input normalisation is, scaled to
  ``LISTENING_PEAK`` so that the lossy encoding does not clip. Encodings are cached by clip content under
  ``<cache>/audio/`` and hard-linked into the run folder (Vorbis encoding costs ~5-10 ms a clip; a re-run, or a run
  of another generator on the same clips, links files). Clips are encoded on a few threads (libsndfile runs outside
  the GIL). libsndfile gives each Ogg stream a random serial number, so two encodings of one clip decode to the same
  samples but differ in those bytes (and the page checksums); the cache makes re-runs byte-identical.
- ``pairs.csv``: ``split, identity, real, generated`` and the optional ``clip, audio, group`` (``group``: the
  identity's gender when the evaluation manifest has a ``gender`` column, else empty).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from evalkit.errors import EvalError
from evalkit.evalset import EvalSet
from evalkit.generators.base import json_sha256
from evalkit.record import PAIRS_FILE
from evalkit.threads import compute_threads
from generator.data.audio import SAMPLE_RATE, crop_to_length, num_samples, read_audio
from generator.data.manifest import Pair, file_sha256
from generator.errors import DataError

AUDIO_DIR = "audio"
PAIRS_COLUMNS = ("split", "identity", "real", "generated", "clip", "audio", "group")
LISTENING_PEAK = 0.89  # -1 dBFS: headroom for the Vorbis encoder's overshoot
LISTENING_VERSION = 1  # bump when the listening copy's samples or encoding change


def clip_id(generated_name: str) -> str:
    """``generated/<split>/<identity>/<stem>.png`` -> ``<split>/<identity>/<stem>`` (the run's clip id)."""
    path = Path(generated_name)
    if path.parts[0] != "generated" or path.suffix != ".png":
        raise ValueError(f"not a generated face's run-folder path: {generated_name!r}")
    return Path(*path.parts[1:]).with_suffix("").as_posix()


def audio_path(clip: str) -> str:
    """The listening copy of clip ``clip``, relative to the run folder."""
    return f"{AUDIO_DIR}/{clip}.ogg"


def listening_wave(path: Path, seconds: float | None) -> np.ndarray:
    """The clip as heard in the report and the study: 16 kHz mono float32 (N,), the generator's centre crop of
    ``seconds`` (whole clip when None), peak at ``LISTENING_PEAK``. Raises DataError for an unreadable or silent
    clip."""
    wave = read_audio(path)
    if seconds is not None:
        wave = crop_to_length(wave, num_samples(seconds), source=str(path))
    peak = float(np.max(np.abs(wave)))
    if peak == 0:
        raise DataError(f"{path}: clip is entirely silent (all samples are zero)")
    return (wave * (LISTENING_PEAK / peak)).astype(np.float32)


def encode_ogg(wave: np.ndarray) -> bytes:
    """Ogg/Vorbis bytes of a 16 kHz mono float waveform."""
    buffer = io.BytesIO()
    sf.write(buffer, wave, SAMPLE_RATE, format="OGG", subtype="VORBIS")
    return buffer.getvalue()


def listening_copy(pair: Pair, seconds: float | None, target: Path, cache_dir: Path | None) -> Path:
    """Write the pair's listening copy to ``target``. With a cache, the encoding is kept once per (clip bytes,
    length, ``LISTENING_VERSION``) under ``<cache_dir>/audio/`` and hard-linked into place (copied where the two
    folders are on different file systems), so a re-run or another run on the same clips encodes nothing.

    Raises:
        EvalError: the clip is unreadable or silent, or the cache cannot be written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)  # an earlier run's copy may be a link to a cached file: never write through it
    if cache_dir is None:
        target.write_bytes(_encode(pair.audio, seconds))
        return target
    key = json_sha256({"clip": file_sha256(pair.audio), "seconds": seconds, "version": LISTENING_VERSION})
    cached = cache_dir / "audio" / key[:2] / f"{key}.ogg"
    if not cached.is_file():
        data = _encode(pair.audio, seconds)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f"{cached.name}.{threading.get_ident()}.tmp")  # unique among concurrent writers
            tmp.write_bytes(data)
            tmp.replace(cached)
        except OSError as exc:
            raise EvalError(f"{cache_dir}: cannot write the audio cache ({exc}); pick another --cache-dir") from None
    try:
        os.link(cached, target)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(cached, target)
    return target


def _encode(audio: Path, seconds: float | None) -> bytes:
    try:
        return encode_ogg(listening_wave(audio, seconds))
    except DataError as exc:
        raise EvalError(str(exc)) from None


def write_listening_copies(jobs: list[tuple[Pair, Path]], seconds: float | None, cache_dir: Path | None) -> None:
    """``listening_copy`` of each (pair, target) on a thread per usable CPU (``evalkit.threads.compute_threads``
    without the load term): libsndfile's decoding and Vorbis encoding run outside the GIL. Raises the first job's
    error in job order.

    Why not only the free cores: the jobs are independent (no barrier for a descheduled thread to stall), so a
    second thread still gains on a busy machine (875 clips of the embedded set, 2 cores at load average 3: 6.7 s on
    one thread, 4.1 s on two)."""
    with ThreadPoolExecutor(max_workers=compute_threads(None)) as pool:
        for _ in pool.map(lambda job: listening_copy(job[0], seconds, job[1], cache_dir), jobs):
            pass


def write_clip_files(evalset: EvalSet, pairs: list[Pair], seconds: float | None, genders: dict[str, str],
                     run_dir: Path, cache_dir: Path | None) -> dict[str, list[str]]:
    """Write each clip's listening copy and ``pairs.csv`` (rows split by split in run order, as the per-clip values
    are); returns the clip ids of each split in that order. ``pairs`` are the run's clips in run order (one per
    generated face); ``genders``: {identity: gender} of the evaluation manifest (empty: no ``gender`` column)."""
    clips: dict[str, list[str]] = {}
    jobs: list[tuple[Pair, Path]] = []
    with (run_dir / PAIRS_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(PAIRS_COLUMNS)
        for split in evalset.splits:
            for generated, real in zip(evalset.generated_index[split], evalset.paired_real[split], strict=True):
                name = evalset.generated.names[generated]
                clip = clip_id(name)
                audio = audio_path(clip)
                jobs.append((pairs[generated], run_dir / audio))
                identity = str(evalset.generated.identities[generated])
                writer.writerow([split, identity, evalset.real.names[real], name, clip, audio,
                                 genders.get(identity, "")])
                clips.setdefault(split, []).append(clip)
    write_listening_copies(jobs, seconds, cache_dir)
    return clips
