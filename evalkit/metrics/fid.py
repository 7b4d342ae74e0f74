"""FID: Fréchet distance of pytorch-fid Inception features (``--inception-dims``, 2048 by default)."""

from evalkit.metrics import Metric, MetricContext, register
from evalkit.metrics.distribution import frechet_figure


def evaluate(ctx: MetricContext, split: str) -> dict:
    return {"fid": frechet_figure(ctx, "inception", "features", split, "fid"), "dims": ctx.options.inception_dims}


METRIC = register(Metric(
    name="fid",
    description="Fréchet Inception Distance, generated vs real faces of the split (lower is better)",
    requires="FID Inception weights (torch hub cache or --inception-weights)",
    columns=("fid",),
    extractors=lambda options: ("inception",),
    evaluate=evaluate,
))
