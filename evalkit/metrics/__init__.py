"""Metrics, one small module each, behind one registry.

A metric names the feature extractors it needs (given the run's options) and computes, for one evaluated split, a
dict of figures (``stats.figure``: value, 95 % interval, N, chance level) plus any details; ``reference`` computes
the row of real faces where the metric has one; ``applies`` says why the data does not allow it (no training
faces...), before anything is generated. ``columns`` are the figures shown in the printed table.

``per_clip`` (where a figure is a mean over the split's clips) returns, for one split, {figure: float array with one
value per clip, in the order of ``evalset.generated_index[split]``}, so two generators scored on the same clips can be
compared clip by clip (paired bootstrap).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.errors import EvalError
from evalkit.evalset import EvalSet, RealFaces
from evalkit.features import Features
from evalkit.options import RunOptions
from evalkit.registry import Registry
from evalkit.stats import Clusters, seeded_rng


class MetricContext:
    """What a metric sees: the options, the images and their features (computed on first request)."""

    def __init__(self, options: RunOptions, evalset: EvalSet, run_dir: Path | None,
                 feature_source: Callable[[str], tuple[Features, Features]]) -> None:
        self.options = options
        self.run_dir = run_dir
        self.evalset = evalset
        self._feature_source = feature_source
        self._features: dict[str, tuple[Features, Features]] = {}
        self.memo: dict[Hashable, Any] = {}  # values computed once per run, keyed by (metric, split, ...)
        self.warnings: list[str] = []

    def features(self, extractor: str) -> tuple[Features, Features]:
        """(generated pool features, real pool features) of one extractor."""
        if extractor not in self._features:
            self._features[extractor] = self._feature_source(extractor)
        return self._features[extractor]

    def split_features(self, extractor: str, key: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Generated features of the split's clips and features of its distinct real faces."""
        generated, real = self.features(extractor)
        return generated[key][self.evalset.generated_index[split]], real[key][self.evalset.real_index[split]]

    def split_clusters(self, split: str) -> tuple[Clusters, Clusters]:
        """Clusters of the split's generated clips and of its real faces, in one code space: a resample draws a
        group (or face) with its clips and its real faces. Without cluster labels, every row is its own."""
        ev = self.evalset
        gen, real = ev.generated_index[split], ev.real_index[split]
        if ev.generated.clusters is None or ev.real.clusters is None:
            return Clusters.singletons(len(gen)), Clusters.singletons(len(real))
        joint = Clusters.joint(ev.generated.clusters[gen].tolist(), ev.real.clusters[real].tolist(),
                               by=ev.generated.cluster_by)
        if joint[0].count < 2:  # one group: nothing to resample between; each side row by row (said in ci_method)
            return Clusters.singletons(len(gen)), Clusters.singletons(len(real))
        return joint[0], joint[1]

    def real_clusters(self, rows: np.ndarray) -> Clusters:
        """Clusters of the given real faces (pool rows)."""
        pool = self.evalset.real
        if pool.clusters is None:
            return Clusters.singletons(len(rows))
        return Clusters.joint(pool.clusters[rows].tolist(), by=pool.cluster_by)[0]

    def rng(self, *names: str) -> np.random.Generator:
        return seeded_rng(self.options.seed, *names)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    requires: str
    columns: tuple[str, ...]
    extractors: Callable[[RunOptions], tuple[str, ...]]
    evaluate: Callable[[MetricContext, str], dict]
    reference: Callable[[MetricContext], dict] | None = None
    applies: Callable[[RealFaces], str | None] = lambda real: None
    """Why the metric cannot be computed on this data (None when it can); checked before any face is generated."""
    per_clip: Callable[[MetricContext, str], dict[str, np.ndarray]] | None = None
    """Per-clip values of the figures that are means over clips (see the module docstring)."""
    descriptor_only: bool = False
    """It reads nothing of a generated face but its dlib descriptor, and means something for a predicted descriptor
    (a point estimate, not a sample of faces): a descriptor-only reference (the voice-only ridge) is scored by it."""


METRICS: Registry[Metric] = Registry("metric")
METRIC_MODULES = ("fid", "kid", "precision_recall", "face_fd", "face_kid", "identity_accuracy", "landmark_ratio",
                  "identity_similarity", "retrieval", "forced_matching", "voice_dependence", "face_prdc", "vendi",
                  "memorization", "craniofacial")


def register(metric: Metric) -> Metric:
    """Add ``metric`` to the registry; raises ``DuplicateRegistration`` when its name is taken."""
    return METRICS.add(metric.name, metric, origin=f"module {metric.evaluate.__module__}")


def all_metrics() -> dict[str, Metric]:
    """Every metric, in the order of the printed table (each module registers itself on import)."""
    for module in METRIC_MODULES:
        importlib.import_module(f"evalkit.metrics.{module}")
    return METRICS


def resolve_metrics(names: tuple[str, ...]) -> list[Metric]:
    """The named metrics in the given order (all registered metrics when ``names`` is empty)."""
    known = all_metrics()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise EvalError(f"unknown metric(s) {unknown}; known metrics: {', '.join(known)}")
    return [known[n] for n in (names or tuple(known))]
