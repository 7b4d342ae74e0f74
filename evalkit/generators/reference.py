"""Reference generators: trivial face sources that every figure is read against (``--generator NAME``; ``evalkit
run`` scores all five beside the evaluated generator, into ``RUN_DIR/references/<name>/``).

Each draws on the **reference faces** of an identity: its real faces of the training splits (``train``, ``seen``);
for an identity with none (an unseen identity), the real faces of its evaluated clips, which makes the generator an
oracle there. Faces are the run's real faces at the evaluated size (uint8 RGB).

=============  =================================================================================================
``mean-face``   every clip gets the pixel mean of its speaker's reference faces: a model that recognises the
                speaker and draws the average face
``random-face`` every clip gets a reference face of a uniformly drawn identity (seeded): realistic faces at chance
                identity
``nearest-face`` every clip gets its speaker's reference face nearest (pixel L2) to the clip's own real face: the
                oracle (on training-split clips it is the clip's own face)
``constant``    every clip gets one face: the reference face nearest (pixel L2) to the mean of all reference faces
``voice-only``  no face: a ridge map from the clip's voice embedding to a face descriptor, fitted on the training
                splits (``evalkit.generators.voice_only``); scored by the descriptor-level metrics only
=============  =================================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evalkit.errors import EvalError
from evalkit.generators.base import FaceSource, GenerationJob, GeneratorInfo, RealReference, json_sha256
from evalkit.options import REFERENCE_NAMES
from evalkit.registry import Registry
from evalkit.stats import seeded_rng
from evalkit.streaming import scratch_array
from generator.data.manifest import Pair

DESCRIPTIONS = {
    "mean-face": "every clip gets the pixel mean of its speaker's reference (training) faces",
    "random-face": "every clip gets a reference face of a uniformly drawn identity (seeded)",
    "nearest-face": "every clip gets its speaker's reference face nearest (pixels) to the clip's real face: the oracle",
    "constant": "every clip gets one face: the reference face nearest to the mean of all reference faces",
    "voice-only": "no image: a ridge map from the clip's voice embedding (resemblyzer) to a face descriptor, fitted on "
                  "the training splits; scored by the descriptor-level metrics (what a voice alone predicts)",
}
LABELS = {"mean-face": "Per-identity mean face", "random-face": "Random face, random identity",
          "nearest-face": "Nearest training face (oracle)", "constant": "Constant face",
          "voice-only": "Voice only (ridge on voice embeddings)"}
if tuple(DESCRIPTIONS) != REFERENCE_NAMES:
    raise ImportError("evalkit.options.REFERENCE_NAMES and the reference generators described here differ")
ORACLES = frozenset({"nearest-face"})  # they see each clip's real face: bounds, not trivial generators to beat
LEARNED = frozenset({"voice-only"})  # fitted to the training data: a baseline with its own verdict, not a trivial one


def reference_faces(real: RealReference, identity: str, clips: np.ndarray) -> np.ndarray:
    """Pool indices of ``identity``'s reference faces: its training faces, else the real faces of its ``clips``."""
    training = real.training.get(identity)
    if training is not None and len(training):
        return training
    return np.unique(real.paired[clips])


def _by_identity(job: GenerationJob) -> dict[str, np.ndarray]:
    identities = np.array([p.identity for p in job.pairs])
    return {identity: np.flatnonzero(identities == identity) for identity in dict.fromkeys(identities.tolist())}


SEARCH_BLOCK = 256  # faces whose float64 pixels are held at once (25 MB at 64 px): memory flat in the faces


def _pixels(pool_images: np.ndarray, index: np.ndarray) -> np.ndarray:
    return pool_images[index].reshape(len(index), -1).astype(np.float64)


def _blocks(index: np.ndarray) -> list[np.ndarray]:
    return np.array_split(index, max(1, -(-len(index) // SEARCH_BLOCK)))


def _mean_pixels(pool_images: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The pixel mean (float64, flattened) of the pool faces ``index``, summed ``SEARCH_BLOCK`` faces at a time (sums
    of uint8 values in float64 are exact, so it equals the mean of them all at once)."""
    return sum((_pixels(pool_images, block).sum(axis=0) for block in _blocks(index)),
               np.zeros(int(np.prod(pool_images.shape[1:])))) / len(index)


def _nearest_faces(pool_images: np.ndarray, targets: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """For each target pixel row (float64 (t, p)), the candidate (pool rows) at the smallest squared pixel distance,
    the first on ties: scikit-learn's ``pairwise_distances_argmin_min`` (BLAS) over blocks of ``SEARCH_BLOCK``
    candidates, the best kept across blocks. On uint8 pixels held as float64 every distance is an exact integer, so
    it picks what an exhaustive loop picks."""
    from sklearn.metrics import pairwise_distances_argmin_min

    best, best_distance = np.zeros(len(targets), dtype=np.int64), np.full(len(targets), np.inf)
    for block in _blocks(candidates):
        found, distance = pairwise_distances_argmin_min(targets, _pixels(pool_images, block), metric="sqeuclidean")
        nearer = distance < best_distance  # strictly: a tie keeps the earlier candidate
        best[nearer], best_distance[nearer] = block[found[nearer]], distance[nearer]
    return best


@dataclass(frozen=True)
class Drawn:
    """A reference generator's faces as draws from a palette: clip k gets ``palette[index[k]]`` (``palette`` uint8
    RGB (K, S, S, 3), often the real pool itself; ``index`` int64 (N,)), so that N faces cost N indices until they
    are written out (``ReferenceSource.faces``)."""

    palette: np.ndarray
    index: np.ndarray


Builder = Callable[[GenerationJob], Drawn]
BUILDERS: Registry[Builder] = Registry("reference generator")
"""The face-drawing function of each reference generator (job -> ``Drawn``: one face per pair)."""
FACE_BLOCK = 1024  # faces copied from the palette at a time


def builds(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register the function as the builder of reference generator ``name``; raises
    ``DuplicateRegistration`` when the name has one."""

    def register(build: Builder) -> Builder:
        return BUILDERS.add(name, build, origin=f"{build.__module__}.{build.__qualname__}")

    return register


@builds("mean-face")
def mean_face(job: GenerationJob) -> Drawn:
    images = job.real.pool.images
    groups = _by_identity(job)
    palette = np.empty((len(groups), *images.shape[1:]), dtype=np.uint8)
    index = np.empty(len(job.pairs), dtype=np.int64)
    for k, (identity, clips) in enumerate(groups.items()):
        mean = _mean_pixels(images, reference_faces(job.real, identity, clips))
        palette[k] = np.round(mean).reshape(images.shape[1:])
        index[clips] = k
    return Drawn(palette, index)


@builds("random-face")
def random_face(job: GenerationJob) -> Drawn:
    groups = _by_identity(job)
    pools = {identity: reference_faces(job.real, identity, clips) for identity, clips in groups.items()}
    trained = sorted(i for i, faces in job.real.training.items() if len(faces))
    drawable = {i: job.real.training[i] for i in trained} if trained else pools
    names = sorted(drawable)
    rng = seeded_rng(job.seed, "reference", "random-face")
    drawn = rng.integers(len(names), size=len(job.pairs))
    return Drawn(job.real.pool.images, np.array([rng.choice(drawable[names[d]]) for d in drawn], dtype=np.int64))


@builds("nearest-face")
def nearest_face(job: GenerationJob) -> Drawn:
    """Each clip's speaker's training face nearest (squared pixel distance) to the clip's own face; the first such
    face on ties (``_nearest_faces``: blocks of clips and of faces, O(clips x faces x pixels) time in BLAS, memory
    flat)."""
    images = job.real.pool.images
    index = np.empty(len(job.pairs), dtype=np.int64)
    for identity, clips in _by_identity(job).items():
        candidates = reference_faces(job.real, identity, clips)
        for block in _blocks(clips):
            index[block] = _nearest_faces(images, _pixels(images, job.real.paired[block]), candidates)
    return Drawn(images, index)


@builds("constant")
def constant(job: GenerationJob) -> Drawn:
    images = job.real.pool.images
    candidates = np.unique(np.concatenate([reference_faces(job.real, identity, clips)
                                           for identity, clips in _by_identity(job).items()]))
    mean = _mean_pixels(images, candidates)
    # squared distances to the (non-integer) mean summed directly, not by a dot-product expansion: exact ordering
    distances = np.concatenate([((_pixels(images, block) - mean) ** 2).sum(axis=1) for block in _blocks(candidates)])
    return Drawn(images, np.full(len(job.pairs), candidates[np.argmin(distances)], dtype=np.int64))


FACE_REFERENCE_NAMES = tuple(BUILDERS)  # the references that draw faces (voice-only predicts a descriptor only)


def reference_source(name: str, image_size: int, training: list[Pair], training_faces: np.ndarray,
                     audio_seconds: float | None) -> FaceSource:
    """The reference generator ``name`` at the run's image size; the voice-only one also needs the clips of the
    training splits (``training``), their real faces' pool indices and the speech length the model reads.

    Raises:
        EvalError: an unknown name.
    """
    if name == "voice-only":
        from evalkit.generators.voice_only import VoiceOnlySource  # imports the feature layer, which imports this

        return VoiceOnlySource(image_size, training, training_faces, audio_seconds, DESCRIPTIONS[name])
    return ReferenceSource(name, image_size)


class ReferenceSource(FaceSource):
    """One of the reference generators (see the module docstring), at the run's image size."""

    def __init__(self, name: str, image_size: int) -> None:
        if name not in BUILDERS:
            raise EvalError(f"unknown reference generator {name!r} (use one of {', '.join(REFERENCE_NAMES)})")
        self.name = name
        record = {"reference": name, "description": DESCRIPTIONS[name]}
        self.info = GeneratorInfo(kind="reference", name=name, image_size=image_size,
                                  sha256=json_sha256({"kind": "reference", **record}), provenance=record)

    def faces(self, job: GenerationJob) -> np.ndarray:
        if len(job.real.pool) == 0:
            raise EvalError(f"reference generator {self.name}: the data has no real faces to draw from")
        drawn = BUILDERS[self.name](job)
        try:  # with a cache folder, a memory map (evalkit.streaming): memory flat in the number of clips
            faces = scratch_array((len(drawn.index), *drawn.palette.shape[1:]), np.uint8, job.cache_dir)
        except OSError as exc:
            raise EvalError(f"{job.cache_dir}: cannot write the reference faces' scratch file ({exc}); pick another "
                            "--cache-dir") from None
        for start in range(0, len(faces), FACE_BLOCK):
            faces[start : start + FACE_BLOCK] = drawn.palette[drawn.index[start : start + FACE_BLOCK]]
        return faces
