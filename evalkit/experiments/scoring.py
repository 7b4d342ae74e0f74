"""Scoring faces that are not a run's generated faces (reference baselines, interpolations, averages of clips, faces
of unseen speakers) with evalkit's own metrics.

The faces stand in for the generated pool of an ``EvalSet`` whose real faces are loaded from the data exactly as
``evalkit run`` loads them, so every figure comes from the registered metric functions, the identity head is trained
the same way, and features go through the same cache. Stand-ins are stored as distinct images plus an index per
scored item, so a baseline that repeats a few images computes their features once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalkit.evalset import EvalSet, ImagePool, RealFaces, load_real_faces
from evalkit.features import FeatureCache, FeatureExtractor, Features
from evalkit.metrics import MetricContext
from evalkit.metrics.identity_accuracy import BACKBONE_FEATURES, head
from evalkit.options import RunOptions
from evalkit.runner import Plan, evaluate_metric, plan_metrics
from generator.data.manifest import Manifest


def load_reference(manifest: Manifest, image_size: int) -> RealFaces:
    """The data's real faces at ``image_size``, with the identity head's training and held-out faces."""
    return load_real_faces(manifest, (), image_size)


@dataclass(frozen=True)
class StandIns:
    """Faces scored in place of generated ones: ``images[index[k]]`` is item k, of identity ``identities[k]``;
    ``split_items`` lists the items of each split and ``paired_real`` the real face paired with each of them."""

    images: np.ndarray
    index: np.ndarray
    identities: np.ndarray
    split_items: dict[str, np.ndarray]
    paired_real: dict[str, np.ndarray]

    @classmethod
    def single_split(cls, split: str, images: np.ndarray, identities: np.ndarray) -> StandIns:
        """Every image is one item of the pseudo-split ``split`` (no paired real faces)."""
        items = np.arange(len(images))
        return cls(images, items, np.asarray(identities), {split: items}, {split: np.zeros(0, dtype=np.int64)})


def _feature_source(cache: FeatureCache, extractors: dict[str, FeatureExtractor], stand_ins: StandIns,
                    real: RealFaces):
    def features(name: str) -> tuple[Features, Features]:
        extractor = extractors[name]
        distinct = cache.features(extractor, stand_ins.images)
        return ({key: value[stand_ins.index] for key, value in distinct.items()},
                cache.features(extractor, real.pool.images))

    return features


@dataclass
class Scorer:
    """A metric context over stand-in faces, and which extractors are unavailable (weights not installed)."""

    ctx: MetricContext
    plan: Plan

    def score(self) -> dict[str, dict]:
        """Every metric's entry, as in results.json (``status``, ``columns``, ``rows``)."""
        return {metric.name: evaluate_metric(metric, self.ctx, self.plan) for metric in self.plan.metrics}

    def identity_probabilities(self) -> tuple[tuple[str, ...], np.ndarray]:
        """The identity head's classes and its softmax probabilities for every stand-in item."""
        classifier = head(self.ctx)
        extractor, key = BACKBONE_FEATURES[self.ctx.options.identity_backbone]
        generated, _ = self.ctx.features(extractor)
        scores = classifier.scores(generated[key])
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        return classifier.classes, exp / exp.sum(axis=1, keepdims=True)

    def detected(self) -> np.ndarray:
        """Whether dlib detected a face (and placed the 68 landmarks) in each stand-in item."""
        generated, _ = self.ctx.features("dlib")
        return generated["detected"]


def scorer(options: RunOptions, real: RealFaces, stand_ins: StandIns, work_dir: Path,
           metric_names: tuple[str, ...] = ()) -> Scorer:
    """A scorer whose metrics write their side files (pytorch-fid statistics) under ``work_dir``; the reference
    faces of a split absent from the data are the identity head's training faces."""
    plan = plan_metrics(dataclasses.replace(options, metrics=metric_names or options.metrics), real, strict=False)
    splits = tuple(stand_ins.split_items)
    evalset = EvalSet(
        splits=splits,
        generated=ImagePool(stand_ins.images[stand_ins.index], stand_ins.identities,
                            tuple(f"stand-in/{k}" for k in range(len(stand_ins.index)))),
        real=real.pool,
        generated_index=stand_ins.split_items,
        real_index={s: real.split_index.get(s, real.head_train) for s in splits},
        paired_real=stand_ins.paired_real,
        head_train=real.head_train,
        head_heldout=real.head_heldout,
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    source = _feature_source(FeatureCache(options.cache_dir), plan.extractors, stand_ins, real)
    return Scorer(MetricContext(options, evalset, work_dir, source), plan)


def options_from_settings(settings: dict) -> RunOptions:
    """The ``RunOptions`` of a run, from the ``settings`` recorded in its results.json."""
    values = {}
    for field in dataclasses.fields(RunOptions):
        if field.name not in settings:
            continue
        value = settings[field.name]
        if value is not None and "Path" in str(field.type):
            value = Path(value)
        elif "tuple" in str(field.type):
            value = tuple(value)
        values[field.name] = value
    return RunOptions(**values)
