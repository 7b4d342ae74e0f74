"""Face KID: the kernel distance on dlib's 128-d face descriptors."""

from evalkit.metrics import Metric, MetricContext, register
from evalkit.metrics.distribution import kid_figure


def evaluate(ctx: MetricContext, split: str) -> dict:
    return {"face_kid": kid_figure(ctx, "dlib", "descriptor", split, "face_kid")}


METRIC = register(Metric(
    name="face_kid",
    description="KID on dlib 128-d face descriptors, generated vs real (lower is better)",
    requires="dlib face models (face-recognition-models package)",
    columns=("face_kid",),
    extractors=lambda options: ("dlib",),
    evaluate=evaluate,
))
