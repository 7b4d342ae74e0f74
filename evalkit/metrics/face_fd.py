"""Face Fréchet distance: the Fréchet distance on dlib's 128-d face descriptors (offline, face-specific)."""

from evalkit.metrics import Metric, MetricContext, register
from evalkit.metrics.distribution import frechet_figure


def evaluate(ctx: MetricContext, split: str) -> dict:
    return {"face_fd": frechet_figure(ctx, "dlib", "descriptor", split, "face_fd")}


METRIC = register(Metric(
    name="face_fd",
    description="Fréchet distance of dlib 128-d face descriptors, generated vs real (lower is better)",
    requires="dlib face models (face-recognition-models package)",
    columns=("face_fd",),
    extractors=lambda options: ("dlib",),
    evaluate=evaluate,
))
