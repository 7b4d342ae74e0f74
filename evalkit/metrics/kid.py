"""KID: unbiased polynomial-kernel MMD^2 of Inception features, over seeded subsets."""

from evalkit.metrics import Metric, MetricContext, register
from evalkit.metrics.distribution import kid_figure


def evaluate(ctx: MetricContext, split: str) -> dict:
    return {"kid": kid_figure(ctx, "inception", "features", split, "kid"), "dims": ctx.options.inception_dims}


METRIC = register(Metric(
    name="kid",
    description="Kernel Inception Distance (unbiased MMD^2, cubic polynomial kernel; lower is better)",
    requires="FID Inception weights (torch hub cache or --inception-weights)",
    columns=("kid",),
    extractors=lambda options: ("inception",),
    evaluate=evaluate,
))
