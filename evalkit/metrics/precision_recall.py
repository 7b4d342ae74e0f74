"""Precision and recall of k-NN manifolds (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020)
on Inception features; the same computation as ``face_prdc`` on dlib descriptors."""

import numpy as np

from evalkit.metrics import Metric, MetricContext, register
from evalkit.metrics.distribution import manifold_figures, manifold_per_clip


def evaluate(ctx: MetricContext, split: str) -> dict:
    return manifold_figures(ctx, "inception", "features", split)


def per_clip(ctx: MetricContext, split: str) -> dict[str, np.ndarray]:
    return manifold_per_clip(ctx, "inception", "features", split)


METRIC = register(Metric(
    name="precision_recall",
    description="share of generated faces inside the real k-NN manifold (precision) and of real faces inside the "
                "generated one (recall), density and coverage, on Inception features",
    requires="FID Inception weights (torch hub cache or --inception-weights)",
    columns=("precision", "recall", "density", "coverage"),
    extractors=lambda options: ("inception",),
    evaluate=evaluate,
    per_clip=per_clip,
))
