"""Generators that compute faces from speech (a Wav2Pix checkpoint, a user's model behind ``module:factory``): the
clips are read, cropped and normalised as the generator declares, and generated in batches.

Batch k (``batch_size`` clips in run order) is generated with seed ``seed + k`` by the torchrun process that owns it,
so one process and N processes give the same faces.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from evalkit.errors import EvalError
from evalkit.generators.base import (
    SAMPLE_RATE,
    FaceSource,
    GenerationJob,
    GeneratorInfo,
    check_faces,
    check_generator,
    json_sha256,
)
from evalkit.streaming import stored_array
from evalkit.threads import FreeCores, cpu_threads
from generator.data.audio import crop_to_length, normalise, num_samples, read_audio
from generator.data.manifest import Pair, file_sha256
from generator.errors import DataError
from generator.runtime import code_version
from generator.synthesis import batched

FULL_SCALE = 32768.0  # read_audio returns int16 units


def prepare_speech(path, seconds: float, normalisation: str) -> np.ndarray:
    """One clip as a generator's input: 16 kHz mono, centre-cropped to ``seconds``, normalised as declared; float32
    (N,). Raises DataError for unreadable, too short or silent clips."""
    wave = crop_to_length(read_audio(path), num_samples(seconds), source=str(path))
    if normalisation == "peak+preemphasis":
        return normalise(wave, "peak", source=str(path))
    if normalisation == "legacy_py2+preemphasis":
        return normalise(wave, "legacy_py2", source=str(path))
    if normalisation == "none":
        return (wave / FULL_SCALE).astype(np.float32)
    peak = np.max(np.abs(wave))
    if peak == 0:
        raise DataError(f"{path}: clip is entirely silent (all samples are zero)")
    return (wave / peak).astype(np.float32)


class SpeechSource(FaceSource):
    """A speech-to-face generator object (see ``evalkit.generators.base``) behind the harness's FaceSource."""

    def __init__(self, model: Any, kind: str, name: str, provenance: dict | None = None) -> None:
        """``model``: any object with the generator attributes (duck-typed; ``check_generator`` checks them)."""
        who = f"generator {name!r}"
        check_generator(model, who)
        self.model = model
        self.who = who
        declared = dict(model.provenance()) if callable(getattr(model, "provenance", None)) else {}
        record = {**declared, **(provenance or {})}
        identities = getattr(model, "identities", None)
        self.seconds = float(model.audio_seconds)
        self.normalisation: str = getattr(model, "normalisation", "peak")
        self.info = GeneratorInfo(
            kind=kind, name=name, image_size=int(model.image_size), sha256=record.get("sha256") or json_sha256(
                {"kind": kind, "name": name, **record}),
            audio_seconds=self.seconds, sample_rate=SAMPLE_RATE,
            normalisation=self.normalisation,
            identities=tuple(identities) if identities is not None else None, provenance=record)

    def check(self, pairs: list[Pair]) -> None:
        """Every clip must be a readable audio file at least ``audio_seconds`` long (read from the file headers)."""
        seconds = self.seconds
        short = []
        for pair in pairs:
            try:
                info = sf.info(str(pair.audio))
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                raise EvalError(f"{pair.audio}: not a readable WAV/FLAC audio file ({exc})") from None
            if info.frames / info.samplerate < seconds - 0.5 / SAMPLE_RATE:
                short.append(f"{pair.audio} ({info.frames / info.samplerate:.3f} s)")
        if short:
            more = f" and {len(short) - 3} more" if len(short) > 3 else ""
            raise EvalError(f"{len(short)} clip(s) shorter than the generator's {seconds} s input: "
                            f"{', '.join(short[:3])}{more}")

    def cache_key(self, job: GenerationJob) -> str:
        """What the faces depend on: the generator (its hash and provenance: weights, sampling, arguments, source),
        the bytes of every clip in order, the seed, the batch size (batch k is seeded seed + k) and the code
        version."""
        return json_sha256({"generator": self.info.to_dict(), "clips": [file_sha256(p.audio) for p in job.pairs],
                            "seed": job.seed, "batch_size": job.batch_size, "code": code_version()})

    def faces(self, job: GenerationJob) -> np.ndarray:
        """The faces, read back from the cache of generated faces when the same generator already made them for the
        same clips, seed and batch size (``<cache>/faces/<key>.npy``), else generated and stored there.

        With a cache, the faces are a read-only memory map of that file (``evalkit.streaming``): in one process each
        batch is written there as it is generated, so memory does not grow with the number of clips."""
        if job.cache_dir is None:
            return self._generate(job)
        key = self.cache_key(job)
        path = job.cache_dir / "faces" / key[:2] / f"{key}.npy"
        if not job.shard.main_decides(path.is_file()):  # every process reads it (as the feature cache is read)
            try:
                if job.shard.world == 1:
                    with stored_array(path, (len(job.pairs), *self._shape()), np.uint8) as out:
                        self._generate(job, out)
                else:
                    faces = self._generate(job)
                    if job.shard.is_main:
                        with stored_array(path, faces.shape, faces.dtype) as out:
                            out[:] = faces
                    job.shard.barrier()
            except OSError as exc:
                raise EvalError(f"{job.cache_dir}: cannot write the cache of generated faces ({exc}); pick another "
                                "--cache-dir") from None
        return np.load(path, mmap_mode="r")

    def _shape(self) -> tuple[int, int, int]:
        return self.info.image_size, self.info.image_size, 3

    def _generate(self, job: GenerationJob, out: np.ndarray | None = None) -> np.ndarray:
        """Generate every batch this process owns; into ``out`` (one process) or gathered from every process."""
        chunks = list(batched(job.pairs, job.batch_size))
        mine = [k for k in range(len(chunks)) if job.shard.owns(k)]
        local = {}
        start = 0
        free_cores = FreeCores()  # sampled while clips are read, read before each batch (evalkit.threads)
        for k in tqdm(mine, desc="generating faces", unit="batch", disable=None):
            clips = []
            for pair in chunks[k]:
                clips.append(prepare_speech(pair.audio, self.seconds, self.normalisation))
                free_cores.sample()
            speech = np.stack(clips)
            try:
                with cpu_threads(free_cores.threads()):
                    faces = self.model.generate(speech, job.seed + k)
            except Exception as exc:  # the user's model failing: one line naming it, not its traceback
                raise EvalError(f"{self.who}: generate() failed: {type(exc).__name__}: {exc}") from None
            faces = check_faces(faces, len(chunks[k]), self.info.image_size, self.who)
            if out is None:
                local[k] = faces
            else:  # one process owns every batch, in order
                out[start : start + len(faces)] = faces
                start += len(faces)
        if out is not None:
            return out
        gathered = job.shard.gather(local)
        return np.concatenate([gathered[k] for k in range(len(chunks))]) if chunks else \
            np.zeros((0, *self._shape()), np.uint8)
