"""Landmark-detection ratio: share of images where dlib's frontal detector finds a face and the 68-point predictor
runs (the Wav2Pix paper's "all 68 landmarks found"); detector size and upsampling are recorded in the settings.
Interval: Wilson when every clip is independent, else a cluster bootstrap over groups (``stats.proportion_figure``)."""

import numpy as np

from evalkit.metrics import Metric, MetricContext, register
from evalkit.stats import proportion_figure


def _detector(ctx: MetricContext) -> dict:
    return {"detector_size": ctx.options.detector_size, "upsample": ctx.options.detector_upsample}


def evaluate(ctx: MetricContext, split: str) -> dict:
    generated, _ = ctx.split_features("dlib", "detected", split)
    clusters, _ = ctx.split_clusters(split)
    return {"ratio": proportion_figure(generated, None, clusters, ctx.options.bootstrap, ctx.rng("landmark", split)),
            **_detector(ctx)}


def reference(ctx: MetricContext) -> dict:
    _, real = ctx.features("dlib")
    used = np.unique(np.concatenate([ctx.evalset.real_index[s] for s in ctx.evalset.splits]))
    return {"ratio": proportion_figure(real["detected"][used], None, ctx.real_clusters(used), ctx.options.bootstrap,
                                       ctx.rng("landmark", "real")), **_detector(ctx)}


METRIC = register(Metric(
    name="landmark_ratio",
    description="share of images in which dlib detects a face and places the 68 landmarks (higher is better)",
    requires="dlib face models (face-recognition-models package)",
    columns=("ratio",),
    extractors=lambda options: ("dlib",),
    evaluate=evaluate,
    reference=reference,
))
