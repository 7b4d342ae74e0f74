"""The voice-only reference (``--references voice-only``): what a voice alone predicts about the face.

Each clip's speech is embedded by resemblyzer's speaker encoder (a GE2E d-vector: Wan et al., ICASSP 2018; 3-layer
LSTM on 40-band mel frames, 256-d, unit norm), whose weights ship inside its PyPI wheel (``pretrained.pt``), so
nothing is downloaded. A ridge map from these embeddings to the dlib face descriptor of the clip's real face is fitted
on the clips of the training splits (``train``, ``seen``) only, and predicts a descriptor for every evaluated clip.
That prediction is the reference: no image, only a descriptor, scored by the metrics that read nothing of a generated
face but its descriptor (``Metric.descriptor_only``: identity similarity, retrieval, forced matching, voice
dependence); every other metric is "not applicable: descriptor-only reference". A model that does not beat it on
those figures draws no more of the face from the voice than a linear map of a speaker embedding does.

- **Speech**: the evaluated generator's input length (``audio_seconds``, else 1 s), centre-cropped as the generator's
  own input, at full scale; then resemblyzer's ``preprocess_wav`` (volume raised to -30 dBFS, silences longer than
  the VAD's 6 x 30 ms trimmed with WebRTC VAD) and ``VoiceEncoder.embed_utterance`` (1.6 s partials, zero-padded
  when shorter). A clip the VAD finds no speech in is embedded untrimmed (counted in the fit record).
- **Ridge**: scikit-learn's ``Ridge`` (intercept fitted, inputs not rescaled: the embeddings are unit vectors on one
  scale), squared error over the 128 descriptor dimensions. Its ``alpha`` is chosen from ``ALPHAS`` by grouped K-fold
  cross-validation on the training clips (``GroupKFold``, at most ``CV_FOLDS`` folds, mean squared error): folds
  hold out whole speakers when the training splits have at least 3 (what a voice predicts about a new person), else
  whole manifest groups (clips sharing a recording or a face; else the face), so no validation clip shares a
  recording with a fitted one. The map is then refitted on every training clip. With the 2 speakers of the embedded
  set the map can tell the speakers apart and little more: it is the voice-driven counterpart of the mean face.
- **Cache**: embeddings are cached like image features (``FeatureCache``: the encoder's weights hash, package
  version and preprocessing, and the SHA-256 of the speech samples), one entry per block of ``SPEECH_BLOCK`` clips:
  the speech is decoded a block at a time, so memory does not grow with the number of clips.

Install: ``pip install librosa`` then ``pip install --no-deps resemblyzer==0.1.4`` (``make install`` does both).
resemblyzer declares ``webrtcvad`` (a source build; the ``webrtcvad-wheels`` this project installs provides the same
module) and the ``typing`` backport (part of Python 3), hence ``--no-deps``. Without it the reference is reported as
unavailable, with this reason.
"""

from __future__ import annotations

import importlib.metadata
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from evalkit.errors import EvalError, FeatureUnavailable
from evalkit.evalset import cluster_label
from evalkit.features import FeatureCache, FeatureExtractor, Features
from evalkit.generators.base import FaceSource, GenerationJob, GeneratorInfo, json_sha256
from evalkit.generators.speech import prepare_speech
from evalkit.threads import FreeCores, cpu_threads
from generator.data.manifest import Pair
from generator.errors import DataError
from generator.runtime import sha256_file

VOICE_ONLY = "voice-only"
RESEMBLYZER_VERSION = "0.1.4"
INSTALL = (f"pip install librosa && pip install --no-deps resemblyzer=={RESEMBLYZER_VERSION} (make install does it; "
           "see README, 'Voice-only reference')")
ALPHAS = tuple(float(a) for a in 10.0 ** np.arange(-2.0, 4.01, 0.5))
CV_FOLDS = 5
SPEAKER_FOLDS_FROM = 3  # training speakers needed to hold out whole speakers in the cross-validation
DEFAULT_SECONDS = 1.0  # Wav2Pix's input length, for a face source that declares none (--generated)
MIN_VOICED_SAMPLES = 1_600  # 0.1 s at 16 kHz: less left after the VAD's trimming and the clip is embedded untrimmed
PREPROCESSING = ("centre crop at full scale; resemblyzer preprocess_wav (-30 dBFS, WebRTC VAD trimming; untrimmed "
                 "when under 0.1 s is voiced); VoiceEncoder.embed_utterance")
BATCH_CLIPS = 64  # clips embedded together: the cache splits work at multiples of it (FeatureExtractor.batch_size)
SPEECH_BLOCK = 16 * BATCH_CLIPS  # clips decoded at once (64 MB of 1 s speech): memory flat in the number of clips
MAX_PARTIALS = 256  # 1.6 s partials per LSTM forward (input projections 160 x 1024 float32: ~170 MB a block)
PARTIAL_RATE, PARTIAL_COVERAGE = 1.3, 0.75  # embed_utterance's defaults (partials per second, last one's coverage)
SAMPLES_PER_FRAME = 160  # resemblyzer's mel hop: 10 ms at 16 kHz
NOT_APPLICABLE = "descriptor-only reference: it predicts a face descriptor, not an image"


class VoiceEncoderFeatures(FeatureExtractor):
    """resemblyzer's speaker encoder on speech: float32 (N, S) 16 kHz samples in [-1, 1] -> ``embedding`` (N, 256)
    float32 unit rows and ``untrimmed`` (N,) bool (the VAD found no speech; embedded without trimming).

    ``VoiceEncoder.embed_utterance`` batched (``embed_voiced``): the same partial slices, padding, mel frames and
    averaging, but the partials of ``batch_size`` clips go through the LSTM together and their mel spectrograms are
    computed together, so values match it to float32 rounding (tests/evalkit/test_voice_only.py).

    Not a registered (image) extractor: it shares the feature cache only. Raises FeatureUnavailable at construction
    when resemblyzer (or librosa, which it imports) is not installed."""

    name = "resemblyzer"
    version = "1"  # batched: equal to embed_utterance's values to float32 rounding, so the cached values stay valid
    batch_size = BATCH_CLIPS

    def __init__(self) -> None:
        try:
            import resemblyzer
        except ImportError as exc:
            raise FeatureUnavailable(f"resemblyzer is not installed ({exc}); install it with: {INSTALL}") from None
        self.weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
        if not self.weights.is_file():
            raise FeatureUnavailable(f"{self.weights}: resemblyzer's packaged weights are missing; reinstall: "
                                     f"{INSTALL}")
        self.package = importlib.metadata.version("resemblyzer")
        self.weights_sha256 = sha256_file(self.weights)
        self._encoder: Any = None
        self.threads: int | None = None  # torch threads for the LSTM; None: as many as cores are free

    def settings(self) -> dict:
        return {"package": self.package, "weights_sha256": self.weights_sha256, "preprocessing": PREPROCESSING}

    def extract(self, images: np.ndarray) -> Features:
        """``images`` here are speech rows (N, S) float32 (the cache's interface keeps the name). Clips are
        embedded ``batch_size`` at a time (``embed_voiced``), with as many torch threads as cores are free."""
        from resemblyzer import normalize_volume, preprocess_wav
        from resemblyzer.hparams import audio_norm_target_dBFS

        embeddings = np.zeros((len(images), 256), dtype=np.float32)
        untrimmed = np.zeros(len(images), dtype=bool)
        free_cores = FreeCores()
        with tqdm(total=len(images), desc="voice embeddings", unit="clip", disable=None) as progress:
            for start in range(0, len(images), self.batch_size):
                voiced = []
                for i in range(start, min(start + self.batch_size, len(images))):
                    wave = np.asarray(images[i], dtype=np.float32)
                    trimmed = preprocess_wav(wave)
                    if len(trimmed) < MIN_VOICED_SAMPLES:
                        trimmed, untrimmed[i] = normalize_volume(wave, audio_norm_target_dBFS, increase_only=True), True
                    voiced.append(trimmed)
                    free_cores.sample()  # the VAD is single-threaded: count the other processes meanwhile
                with cpu_threads(self.threads or free_cores.threads()):
                    embeddings[start : start + len(voiced)] = embed_voiced(self.encoder(), voiced)
                progress.update(len(voiced))
        return {"embedding": embeddings, "untrimmed": untrimmed}

    def encoder(self) -> Any:
        """resemblyzer's ``VoiceEncoder`` on the CPU, loaded once."""
        if self._encoder is None:
            from resemblyzer import VoiceEncoder

            self._encoder = VoiceEncoder("cpu", verbose=False)
        return self._encoder

    def provenance(self) -> dict:
        return {"package": f"resemblyzer {self.package}", "weights": str(self.weights),
                "sha256": self.weights_sha256, "preprocessing": PREPROCESSING}


def partial_mels(waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The partial utterances of preprocessed waveforms as ``VoiceEncoder.embed_utterance`` cuts them: each wave
    zero-padded to its last partial's end (``compute_partial_slices`` at its default rate 1.3 /s and coverage 0.75),
    its mel spectrogram (``audio.wav_to_mel_spectrogram``), and the 160-frame slices. Returns the partials float32
    (P, 160, 40) and the clip of each partial (P,) int64, clips in order.

    Waves of one padded length share one librosa call (a (k, n) array): its STFT pads with zeros (``pad_mode``
    "constant") and frames each row alone, so each row's frames equal those of a call on that row alone."""
    from resemblyzer import VoiceEncoder, wav_to_mel_spectrogram

    slices, padded = [], []
    for wave in waves:
        _, mel_slices = VoiceEncoder.compute_partial_slices(len(wave), PARTIAL_RATE, PARTIAL_COVERAGE)
        end = mel_slices[-1].stop * SAMPLES_PER_FRAME
        slices.append(mel_slices)
        padded.append(np.pad(wave, (0, max(0, end - len(wave)))))
    mels: list[np.ndarray] = [np.empty(0, np.float32)] * len(waves)
    lengths = np.array([len(wave) for wave in padded])
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        batch = wav_to_mel_spectrogram(np.stack([padded[i] for i in rows]).astype(np.float32, copy=False))
        for k, i in enumerate(rows):  # (k, n_mels, frames) transposed whole: (frames, n_mels, k)
            mels[i] = np.ascontiguousarray(batch[..., k])
    partials = np.stack([mels[i][s] for i, clip_slices in enumerate(slices) for s in clip_slices])
    owners = np.repeat(np.arange(len(waves)), [len(clip_slices) for clip_slices in slices])
    return partials, owners


def embed_voiced(encoder: Any, waves: list[np.ndarray]) -> np.ndarray:
    """``encoder.embed_utterance`` of each preprocessed waveform (float32 16 kHz), batched: every partial of every
    wave through the LSTM in blocks of at most ``MAX_PARTIALS`` (memory flat in the number of clips), each wave's
    partial embeddings averaged and L2-normalised as ``embed_utterance`` does. Returns (len(waves), 256) float32."""
    import torch

    partials, owners = partial_mels(waves)
    embedded = np.empty((len(partials), 256), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(partials), MAX_PARTIALS):
            block = torch.from_numpy(partials[start : start + MAX_PARTIALS])
            embedded[start : start + len(block)] = encoder(block).numpy()
    ends = np.cumsum(np.bincount(owners, minlength=len(waves)))[:-1]
    means = np.stack([part.mean(axis=0) for part in np.split(embedded, ends)])
    return means / np.linalg.norm(means, axis=1, keepdims=True)


def speech_rows(pairs: list[Pair], seconds: float) -> np.ndarray:
    """(N, seconds x 16000) float32: each clip centre-cropped at full scale, as a generator's input is cropped.

    Raises:
        EvalError: a clip unreadable, too short or silent (named).
    """
    try:
        return np.stack([prepare_speech(p.audio, seconds, "none") for p in pairs])
    except DataError as exc:
        raise EvalError(f"voice-only reference: {exc}") from None


def fit_ridge(embeddings: np.ndarray, descriptors: np.ndarray, speakers: np.ndarray, groups: np.ndarray
              ) -> tuple[Any, dict]:
    """Ridge map voice embedding (n, e) -> face descriptor (n, d), ``alpha`` chosen by grouped K-fold CV (module
    docstring), refitted on all rows; returns the fitted ``sklearn.linear_model.Ridge`` and a JSON-ready record of
    the fit.

    Raises:
        EvalError: fewer than 2 fold groups (no cross-validation possible).
    """
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, GroupKFold

    by_speaker = len(np.unique(speakers)) >= SPEAKER_FOLDS_FROM
    folds_of = np.asarray(speakers if by_speaker else groups)
    count = len(np.unique(folds_of))
    if count < 2:
        raise EvalError(f"voice-only reference: the training clips form {count} fold group(s); cross-validating the "
                        "ridge needs at least 2 speakers or groups")
    folds = min(CV_FOLDS, count)
    search = GridSearchCV(Ridge(), {"alpha": list(ALPHAS)}, cv=GroupKFold(n_splits=folds),
                          scoring="neg_mean_squared_error", refit=True)
    search.fit(np.asarray(embeddings, np.float64), np.asarray(descriptors, np.float64), groups=folds_of)
    alpha = float(search.best_params_["alpha"])
    return search.best_estimator_, {
        "alpha": alpha, "alphas": list(ALPHAS), "at_grid_edge": alpha in (ALPHAS[0], ALPHAS[-1]),
        "cv_mse": [float(-s) for s in search.cv_results_["mean_test_score"]],
        "cv": f"GroupKFold({folds}) by {'speaker' if by_speaker else 'manifest group (else face)'}, mean squared error",
        "training_clips": len(embeddings), "training_speakers": sorted(set(np.asarray(speakers).tolist())),
    }


class DescriptorSource(FaceSource):
    """A reference that predicts each clip's face descriptor instead of drawing a face: ``faces`` returns no pixels
    (uint8 (N, 0, 0, 3)); ``feature_source`` gives the metrics the predicted dlib descriptors (generated side) and the
    real faces' features; ``unavailable`` says why it cannot predict (None when it can)."""

    unavailable: str | None = None

    def faces(self, job: GenerationJob) -> np.ndarray:
        return np.zeros((len(job.pairs), 0, 0, 3), dtype=np.uint8)

    def feature_source(self, job: GenerationJob, cache: FeatureCache, extractors: dict[str, FeatureExtractor],
                       real_images: np.ndarray) -> Callable[[str], tuple[Features, Features]]:
        def features(name: str) -> tuple[Features, Features]:
            real = cache.features(extractors[name], real_images)
            if name != "dlib":
                raise EvalError(f"{self.info.name}: a descriptor-only reference has no {name!r} features")
            return {"descriptor": self.predict(job, cache, real["descriptor"])}, real

        return features

    @abstractmethod
    def predict(self, job: GenerationJob, cache: FeatureCache, real_descriptors: np.ndarray) -> np.ndarray:
        """(len(job.pairs), d) float32 predicted descriptors, from the real pool's descriptors (n_pool, d)."""


class VoiceOnlySource(DescriptorSource):
    """The voice-only reference (module docstring). ``training``: the clips of the training splits, ``training_faces``
    their real faces' pool indices; ``seconds``: speech length fed to the encoder. ``info.provenance`` carries the
    settings, and after ``predict`` also the fit (``fit``)."""

    def __init__(self, image_size: int, training: list[Pair], training_faces: np.ndarray, seconds: float | None,
                 description: str) -> None:
        self.training = list(training)
        self.training_faces = np.asarray(training_faces, dtype=np.int64)
        self.seconds = float(seconds or DEFAULT_SECONDS)
        self.image_size = image_size
        self.fit: dict | None = None
        self.encoder: VoiceEncoderFeatures | None = None
        try:
            self.encoder = VoiceEncoderFeatures()
        except FeatureUnavailable as exc:
            self.unavailable = str(exc)
        if self.encoder is not None and not self.training:
            self.unavailable = "no clips of a training split (train, seen) to fit the voice-to-face map on"
        encoder = self.encoder.provenance() if self.encoder else {"unavailable": self.unavailable}
        ridge = {"alphas": list(ALPHAS), "cv_folds": CV_FOLDS, "speaker_folds_from": SPEAKER_FOLDS_FROM,
                 "target": "dlib descriptor of the clip's real face", "fit_on": "train, seen"}
        self.settings = {"reference": VOICE_ONLY, "description": description, "audio_seconds": self.seconds,
                         "voice_encoder": encoder, "ridge": ridge}
        self.info = self._describe()

    def _describe(self) -> GeneratorInfo:
        """The generator record: the settings, and the ridge fit once ``predict`` has made it."""
        provenance = {**self.settings, **({"fit": self.fit} if self.fit is not None else {})}
        return GeneratorInfo(kind="reference", name=VOICE_ONLY, image_size=self.image_size,
                             sha256=json_sha256({"kind": "reference", **self.settings}), audio_seconds=self.seconds,
                             sample_rate=16_000, provenance=provenance)

    def embeddings(self, pairs: list[Pair], cache: FeatureCache) -> Features:
        """Each clip's embedding and ``untrimmed`` flag (``VoiceEncoderFeatures``), its speech decoded and cached
        ``SPEECH_BLOCK`` clips at a time (module docstring). Raises EvalError when resemblyzer is unavailable or a
        clip cannot be read."""
        if self.encoder is None:
            raise EvalError(f"voice-only reference unavailable: {self.unavailable}")
        encoder = self.encoder
        blocks = [cache.features(encoder, speech_rows(pairs[start : start + SPEECH_BLOCK], self.seconds))
                  for start in range(0, len(pairs), SPEECH_BLOCK)]
        return {name: np.concatenate([block[name] for block in blocks]) for name in ("embedding", "untrimmed")}

    def prefetch(self, pairs: list[Pair], cache: FeatureCache, threads: int = 1) -> None:
        """Embed the training clips and ``pairs`` (the evaluated clips) into ``cache`` with ``threads`` torch
        threads, so that ``predict`` reads them from it. Meant for a background thread while the run computes other
        generators' metrics (about one core's work): the embedding then takes the other core. Raises EvalError as
        ``embeddings`` does."""
        if self.encoder is None:
            raise EvalError(f"voice-only reference unavailable: {self.unavailable}")
        self.encoder.threads = threads
        try:
            self.embeddings(self.training, cache)
            self.embeddings(pairs, cache)
        finally:
            self.encoder.threads = None

    def predict(self, job: GenerationJob, cache: FeatureCache, real_descriptors: np.ndarray) -> np.ndarray:
        if self.unavailable:
            raise EvalError(f"voice-only reference unavailable: {self.unavailable}")
        fitted = self.embeddings(self.training, cache)
        model, fit = fit_ridge(fitted["embedding"], real_descriptors[self.training_faces],
                               np.array([p.identity for p in self.training]),
                               np.array([cluster_label(p) for p in self.training]))
        evaluated = self.embeddings(job.pairs, cache)
        self.fit = {**fit, "untrimmed_clips": {"training": int(fitted["untrimmed"].sum()),
                                               "evaluated": int(evaluated["untrimmed"].sum())}}
        self.info = self._describe()
        return model.predict(np.asarray(evaluated["embedding"], np.float64)).astype(np.float32)
