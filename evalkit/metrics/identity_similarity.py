"""Identity similarity on dlib descriptors: cosine of each generated face to its own clip's real face, mean cosine to
real faces of the same vs other identities, and top-1 retrieval (is the nearest real face of the split, by cosine,
of the speaker's identity?).

Chance levels: for the same-clip cosine, the mean cosine of generated faces to all real faces of the split; for
retrieval, the mean share of the split's real faces that have the query's identity.
"""

from __future__ import annotations

import numpy as np

from evalkit.metrics import Metric, MetricContext, register
from evalkit.stats import Clusters, mean_figure, proportion_figure


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


def evaluate(ctx: MetricContext, split: str) -> dict:
    generated, real = ctx.features("dlib")
    ev = ctx.evalset
    gen = _unit(generated["descriptor"][ev.generated_index[split]])
    real_index = ev.real_index[split]
    gallery = _unit(real["descriptor"][real_index])
    cosines = gen @ gallery.T
    position = {face: k for k, face in enumerate(real_index.tolist())}
    own = np.array([position[face] for face in ev.paired_real[split].tolist()])
    rows = np.arange(len(gen))
    identities = ev.generated.identities[ev.generated_index[split]]
    same = identities[:, None] == ev.real.identities[real_index][None, :]
    same_identity = np.array([cosines[r, same[r]].mean() for r in rows])
    others = same.sum(axis=1) < same.shape[1]
    other_identity = np.array([cosines[r, ~same[r]].mean() for r in rows[others]])
    retrieved = same[rows, cosines.argmax(axis=1)]
    clusters, _ = ctx.split_clusters(split)
    result = {
        "same_clip_cosine": _mean_figure(ctx, cosines[rows, own], float(cosines.mean()), clusters, "same_clip", split),
        "same_identity_cosine": _mean_figure(ctx, same_identity, None, clusters, "same_identity", split),
        "retrieval_top1": proportion_figure(retrieved, float(same.mean(axis=1).mean()), clusters,
                                            ctx.options.bootstrap, ctx.rng("retrieval", split)),
    }
    if len(other_identity):
        result["other_identity_cosine"] = _mean_figure(ctx, other_identity, None, clusters.subset(others),
                                                       "other_identity", split)
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
