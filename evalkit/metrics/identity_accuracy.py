"""Identity accuracy: a softmax head trained on descriptors of the real training faces (``train``/``seen``) classifies
generated faces; backbone ``dlib-resnet`` (128-d descriptors, default) or ``vggface`` (keras-vggface VGG16 weights).

The reference row is the head's accuracy on held-out real faces (``unseen_speech`` faces absent from training); the
accuracy on its own training faces is reported beside it. Chance level: 1 / number of identities.
"""

from __future__ import annotations

import numpy as np

from evalkit.classifier import LinearHead, fit_logistic_regression
from evalkit.errors import EvalError
from evalkit.metrics import Metric, MetricContext, register
from evalkit.options import HEAD_HELDOUT_SPLIT, HEAD_TRAIN_SPLITS, RunOptions
from evalkit.stats import Clusters, proportion_figure

BACKBONE_FEATURES = {"dlib-resnet": ("dlib", "descriptor"), "vggface": ("vggface", "features")}


def _backbone(options: RunOptions) -> tuple[str, str]:
    return BACKBONE_FEATURES[options.identity_backbone]


def head(ctx: MetricContext) -> LinearHead:
    """The head, fitted once per run on the real training faces."""
    if "identity_head" not in ctx.memo:
        extractor, key = _backbone(ctx.options)
        _, real = ctx.features(extractor)
        train = ctx.evalset.head_train
        if len(train) == 0:
            raise EvalError(f"identity_accuracy needs real faces of a training split {HEAD_TRAIN_SPLITS} in the data")
        identities = ctx.evalset.real.identities[train]
        classes = tuple(sorted(set(identities.tolist())))
        labels = np.searchsorted(classes, identities)
        ctx.memo["identity_head"] = fit_logistic_regression(real[key][train], labels, classes, ctx.options.head_l2)
    return ctx.memo["identity_head"]


def accuracy_report(classifier: LinearHead, features: np.ndarray, identities: np.ndarray, clusters: Clusters,
                    replicates: int, rng: np.random.Generator) -> dict:
    """Accuracy (chance 1/classes), per-identity accuracy and the confusion matrix; intervals by
    ``stats.proportion_figure`` (Wilson for independent rows, else a cluster bootstrap over ``clusters``)."""
    classes = classifier.classes
    truth = np.searchsorted(classes, identities)
    predicted = classifier.predict(features)
    chance = 1 / len(classes)
    correct = predicted == truth
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    present = [c for c in range(len(classes)) if (truth == c).any()]
    return {
        "accuracy": proportion_figure(correct, chance, clusters, replicates, rng),
        "per_identity": {classes[c]: proportion_figure(correct[truth == c], chance, clusters.subset(truth == c),
                                                       replicates, rng) for c in present},
        "confusion": {"rows_true_columns_predicted": list(classes), "matrix": confusion.tolist()},
    }


def evaluate(ctx: MetricContext, split: str) -> dict:
    classifier = head(ctx)
    extractor, key = _backbone(ctx.options)
    generated, _ = ctx.split_features(extractor, key, split)
    identities = ctx.evalset.generated.identities[ctx.evalset.generated_index[split]]
    outside = sorted(set(identities.tolist()) - set(classifier.classes))
    if outside:
        return {"status": "not applicable", "reason": f"identities {outside} have no real training faces"}
    clusters, _ = ctx.split_clusters(split)
    report = accuracy_report(classifier, generated, identities, clusters, ctx.options.bootstrap,
                             ctx.rng("identity_accuracy", split))
    return {**report, "backbone": ctx.options.identity_backbone}


def reference(ctx: MetricContext) -> dict:
    classifier = head(ctx)
    extractor, key = _backbone(ctx.options)
    _, real = ctx.features(extractor)
    pool, train = ctx.evalset.real, ctx.evalset.head_train
    heldout = ctx.evalset.head_heldout[np.isin(pool.identities[ctx.evalset.head_heldout], classifier.classes)]
    o = ctx.options
    training = accuracy_report(classifier, real[key][train], pool.identities[train], ctx.real_clusters(train),
                               o.bootstrap, ctx.rng("identity_accuracy", "training"))["accuracy"]
    if len(heldout) == 0:
        return {"status": "not applicable", "reason": f"no held-out real faces (split {HEAD_HELDOUT_SPLIT!r})",
                "training_accuracy": training}
    report = accuracy_report(classifier, real[key][heldout], pool.identities[heldout], ctx.real_clusters(heldout),
                             o.bootstrap, ctx.rng("identity_accuracy", "real"))
    return {**report, "training_accuracy": training, "backbone": ctx.options.identity_backbone,
            "heldout_split": HEAD_HELDOUT_SPLIT}


METRIC = register(Metric(
    name="identity_accuracy",
    description="accuracy of an identity classifier (trained on real training faces) on generated faces; real row: "
                "held-out real faces",
    requires="dlib face models (--identity-backbone dlib-resnet) or --vggface-weights (vggface)",
    columns=("accuracy",),
    extractors=lambda options: (_backbone(options)[0],),
    evaluate=evaluate,
    reference=reference,
    applies=lambda real: None if len(real.head_train) else
    f"no real faces of a training split {HEAD_TRAIN_SPLITS} in the data for the identity head",
))
