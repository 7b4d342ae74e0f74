"""Precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020) on dlib's 128-d face
descriptors: face-space fidelity (precision, density) and diversity (recall, coverage), offline."""

import numpy as np

from evalkit.metrics import Metric, MetricContext, register
from evalkit.metrics.distribution import manifold_figures, manifold_per_clip


def evaluate(ctx: MetricContext, split: str) -> dict:
    return manifold_figures(ctx, "dlib", "descriptor", split)


def per_clip(ctx: MetricContext, split: str) -> dict[str, np.ndarray]:
    return manifold_per_clip(ctx, "dlib", "descriptor", split)


METRIC = register(Metric(
    name="face_prdc",
    description="precision, recall, density and coverage of k-NN manifolds on dlib face descriptors, generated vs "
                "real faces of the split (higher is better)",
    requires="dlib face models (face-recognition-models package)",
    columns=("precision", "recall", "density", "coverage"),
    extractors=lambda options: ("dlib",),
    evaluate=evaluate,
    per_clip=per_clip,
))
