"""Precision and recall of k-NN manifolds (Kynkäänniemi et al. 2019) on Inception features."""

from evalkit.metrics import Metric, MetricContext, register
from evalkit.metrics.distribution import precision_recall_figures


def evaluate(ctx: MetricContext, split: str) -> dict:
    return precision_recall_figures(ctx, "inception", "features", split)


METRIC = register(Metric(
    name="precision_recall",
    description="share of generated faces inside the real k-NN manifold (precision) and of real faces inside the "
                "generated one (recall)",
    requires="FID Inception weights (torch hub cache or --inception-weights)",
    columns=("precision", "recall"),
    extractors=lambda options: ("inception",),
    evaluate=evaluate,
))
