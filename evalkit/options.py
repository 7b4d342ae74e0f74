"""The one options object that carries every setting of an evaluation run (stored verbatim in results.json)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

EMBEDDED_DATA = Path(__file__).parent / "eval_data" / "wav2pix-youtubers" / "manifest.csv"
EMBEDDED_GALLERY = Path(__file__).parent / "eval_data" / "grid-samples" / "manifest.csv"
GALLERY_SCORES = ("mean", "best")
EVAL_SPLITS = ("seen", "unseen_speech", "unseen_identity")
HEAD_TRAIN_SPLITS = ("train", "seen")
HEAD_HELDOUT_SPLIT = "unseen_speech"
IDENTITY_BACKBONES = ("dlib-resnet", "vggface")
INCEPTION_DIMS = (64, 192, 768, 2048)
OFFLINE_ENV = "EVALKIT_OFFLINE"  # set to 1: never download weights (as --offline)
# the reference generators (evalkit.generators.reference checks it), named here so that reading options imports no
# generator (the generators package loads torch)
REFERENCE_NAMES = ("mean-face", "random-face", "nearest-face", "constant", "voice-only")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "evalkit" / "features"


@dataclass(frozen=True)
class RunOptions:
    """Settings of one ``evalkit run``; empty ``splits`` means every evaluation split present in the data, empty
    ``metrics`` every registered metric that the data and installed weights allow. The faces come from ``generator``
    (a kind or ``module:factory``, with ``generator_args`` ``key=value``), ``checkpoint`` (the wav2pix shorthand) or
    ``generated`` (finished faces); ``references`` are the reference generators scored beside it."""

    checkpoint: Path | None = None
    generator: str | None = None
    generator_args: tuple[str, ...] = ()
    generated: Path | None = None
    references: tuple[str, ...] = REFERENCE_NAMES
    data: Path = EMBEDDED_DATA
    splits: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    out: Path | None = None
    device: str = "auto"
    seed: int = 0
    sampling: str = "eval"
    batch_size: int = 64
    inception_weights: Path | None = None
    inception_dims: int = 2048
    identity_backbone: str = "dlib-resnet"
    vggface_weights: Path | None = None
    detector_size: int = 256
    detector_upsample: int = 0
    bootstrap: int = 200
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    pr_k: int = 3
    head_l2: float = 1e-3
    gallery: Path = EMBEDDED_GALLERY
    gallery_score: str = "mean"
    gallery_faces: int = 5
    matching_n: int = 5
    permutations: int = 999
    cache_dir: Path = field(default_factory=default_cache_dir)
    history: Path | None = None
    save_stats: bool = False
    offline: bool = False  # never download weights (also EVALKIT_OFFLINE=1)

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items()}
