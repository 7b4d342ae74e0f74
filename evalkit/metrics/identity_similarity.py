"""Identity similarity on dlib descriptors: cosine of each generated face to its own clip's real face, mean cosine to
real faces of the same vs other identities, and top-1 retrieval (is the nearest real face of the split, by cosine,
of the speaker's identity?).

Chance levels: for the same-clip cosine, the mean cosine of generated faces to all real faces of the split; for
retrieval, the mean share of the split's real faces that have the query's identity.

Cost: every generated face against every real face of the split (O(n m d)), in blocks of generated faces of
``BLOCK_BYTES`` of cosines, so memory stays flat however large the split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.metrics import Metric, MetricContext, register
from evalkit.stats import Clusters, mean_figure, proportion_figure

BLOCK_BYTES = 32 * 2**20  # float64 cosines of one block of generated faces against the split's real faces


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float64)
    return rows / np.clip(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12, None)


def _mean_figure(ctx: MetricContext, values: np.ndarray, chance: float | None, clusters: Clusters, *names: str
                 ) -> dict:
    return mean_figure(values, chance, clusters, ctx.options.bootstrap, ctx.rng(*names))


def per_clip(ctx: MetricContext, split: str) -> dict[str, np.ndarray]:
    """Cosine of each clip's generated face to its own real face."""
    generated, real = ctx.features("dlib")
    ev = ctx.evalset
    gen = _unit(generated["descriptor"][ev.generated_index[split]])
    own = _unit(real["descriptor"][ev.paired_real[split]])
    return {"same_clip_cosine": (gen * own).sum(axis=1)}


@dataclass(frozen=True)
class CosineSummary:
    """``cosine_summaries``' per-clip values (n,) and chance levels."""

    own: np.ndarray
    same_identity: np.ndarray
    other_identity: np.ndarray
    retrieved: np.ndarray
    chance_own: float
    chance_retrieval: float


def cosine_summaries(generated: np.ndarray, gallery: np.ndarray, own: np.ndarray, identities: np.ndarray,
                     gallery_identities: np.ndarray) -> CosineSummary:
    """Per generated unit row (n, d) against the gallery's unit rows (m, d): the cosine to its own real face
    (``own`` (n,), a gallery row), the mean cosine to the gallery's faces of its identity and of the other identities
    (NaN where there are none), whether its nearest gallery face (largest cosine) has its identity, all (n,); and the
    chance levels: the mean cosine over all (n, m) pairs and the mean share of same-identity gallery faces. Blocks
    of generated rows of ``BLOCK_BYTES`` of cosines."""
    n, m = len(generated), len(gallery)
    out = {name: np.empty(n) for name in ("own", "same_identity", "other_identity")}
    retrieved = np.empty(n, dtype=bool)
    cosine_total, same_share_total = 0.0, 0.0
    step = max(1, BLOCK_BYTES // (8 * max(1, m)))
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        cosines = generated[rows] @ gallery.T
        same = identities[rows, None] == gallery_identities[None, :]
        count = same.sum(axis=1)
        row_sum, same_sum = cosines.sum(axis=1), np.where(same, cosines, 0.0).sum(axis=1)
        out["own"][rows] = cosines[np.arange(len(cosines)), own[rows]]
        with np.errstate(invalid="ignore", divide="ignore"):
            out["same_identity"][rows] = same_sum / count
            out["other_identity"][rows] = (row_sum - same_sum) / (m - count)
        retrieved[rows] = same[np.arange(len(cosines)), cosines.argmax(axis=1)]
        cosine_total += float(row_sum.sum())
        same_share_total += float((count / m).sum())
    return CosineSummary(out["own"], out["same_identity"], out["other_identity"], retrieved, cosine_total / (n * m),
                         same_share_total / n)


def evaluate(ctx: MetricContext, split: str) -> dict:
    generated, real = ctx.features("dlib")
    ev = ctx.evalset
    real_index = ev.real_index[split]
    position = {face: k for k, face in enumerate(real_index.tolist())}
    own = np.array([position[face] for face in ev.paired_real[split].tolist()], dtype=np.int64)
    summary = cosine_summaries(_unit(generated["descriptor"][ev.generated_index[split]]),
                               _unit(real["descriptor"][real_index]), own,
                               ev.generated.identities[ev.generated_index[split]], ev.real.identities[real_index])
    clusters, _ = ctx.split_clusters(split)
    others = np.isfinite(summary.other_identity)
    result = {
        "same_clip_cosine": _mean_figure(ctx, summary.own, summary.chance_own, clusters, "same_clip", split),
        "same_identity_cosine": _mean_figure(ctx, summary.same_identity, None, clusters, "same_identity", split),
        "retrieval_top1": proportion_figure(summary.retrieved, summary.chance_retrieval, clusters,
                                            ctx.options.bootstrap, ctx.rng("retrieval", split)),
    }
    if others.any():
        result["other_identity_cosine"] = _mean_figure(ctx, summary.other_identity[others], None,
                                                       clusters.subset(others), "other_identity", split)
    return result


METRIC = register(Metric(
    name="identity_similarity",
    description="cosine of generated to real dlib descriptors (same clip, same vs other identity) and top-1 "
                "retrieval of the speaker among the split's real faces (higher is better)",
    requires="dlib face models (face-recognition-models package)",
    columns=("same_clip_cosine", "retrieval_top1"),
    extractors=lambda options: ("dlib",),
    evaluate=evaluate,
    per_clip=per_clip,
    descriptor_only=True,
))
