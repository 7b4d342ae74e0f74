"""The evaluated generator read against a reference generator, clip by clip (issue: "does the model beat the mean
face?").

For every figure that is a mean over a split's clips (a metric's ``per_clip``), both generators are scored on the same
clips, so the difference model − reference is a paired statistic: its 95 % interval comes from a cluster bootstrap of
the per-clip differences (whole groups of the manifest, else whole real faces, resampled: ``stats.cluster_mean_
replicates``), which keeps the pairing and the clustering. The verdict is ``better`` / ``worse`` when the interval
excludes 0 in the good / bad direction, ``no difference`` otherwise. Clips where either value is undefined (NaN: no
landmarks found) are left out, and N says how many remain.
"""

from __future__ import annotations

import numpy as np

from evalkit.record import VERDICT_COLUMNS
from evalkit.stats import Clusters, cluster_mean_replicates, figure, percentile_interval, seeded_rng

LOWER_IS_BETTER = frozenset({"ratio_error", "rank", "training_nearer"})
PAIRED_METHOD = "cluster bootstrap of the paired per-clip differences, percentile"

PerClip = dict[str, dict[str, dict[str, np.ndarray]]]  # metric -> split -> figure -> values (one per clip)


def verdict(low: float, high: float, lower_is_better: bool) -> str:
    """``better`` / ``worse`` / ``no difference`` for an interval of the difference model − reference."""
    if low > 0 or high < 0:
        return "better" if (low > 0) != lower_is_better else "worse"
    return "no difference"


def paired_difference(model: np.ndarray, reference: np.ndarray, clusters: Clusters, replicates: int,
                      rng: np.random.Generator, name: str) -> dict:
    """Mean of model − reference over the clips where both are defined, with its cluster bootstrap interval."""
    model, reference = np.asarray(model, np.float64), np.asarray(reference, np.float64)
    kept = np.isfinite(model) & np.isfinite(reference)
    if kept.sum() < 2:
        return {"status": "not applicable", "reason": f"{int(kept.sum())} clip(s) with both values"}
    difference = model[kept] - reference[kept]
    resamplable, note = clusters.subset(kept).resamplable()
    low, high = percentile_interval(cluster_mean_replicates(difference, resamplable, replicates, rng))
    lower = name in LOWER_IS_BETTER
    return {**figure(float(difference.mean()), (low, high), int(kept.sum()), 0.0,
                     f"{PAIRED_METHOD} (B={replicates}){note}", resamplable.describe()),
            "model": float(model[kept].mean()), "reference": float(reference[kept].mean()),
            "lower_is_better": lower, "verdict": verdict(low, high, lower)}


def compare(model: PerClip, reference: PerClip, clusters: dict[str, Clusters], replicates: int, seed: int,
            reference_name: str) -> dict:
    """{metric: {split: {figure: paired difference}}} for every per-clip figure both generators have."""
    comparison: dict = {}
    for metric, splits in model.items():
        for split, figures in splits.items():
            theirs = reference.get(metric, {}).get(split, {})
            for name, values in figures.items():
                if name in theirs and len(theirs[name]) == len(values):
                    rng = seeded_rng(seed, "comparison", reference_name, metric, split, name)
                    comparison.setdefault(metric, {}).setdefault(split, {})[name] = paired_difference(
                        values, theirs[name], clusters[split], replicates, rng, name)
    return comparison


def to_json(per_clip: PerClip) -> dict:
    """Per-clip values as JSON lists (NaN as null)."""
    return {m: {s: {f: [None if not np.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]
                    for f, values in figures.items()} for s, figures in splits.items()}
            for m, splits in per_clip.items()}


def from_json(stored: dict) -> PerClip:
    return {m: {s: {f: np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                    for f, values in figures.items()} for s, figures in splits.items()}
            for m, splits in stored.items()}


def best_reference_verdict(comparisons: dict, splits: list[str], labels: dict[str, str],
                           oracles: frozenset[str]) -> list[dict]:
    """The verdict rows of a run record: per verdict figure (``record.VERDICT_COLUMNS``) and split, the trivial
    reference generator (``oracles``, which see each clip's real face, are left out) with the best mean on the clips
    both have (highest; lowest where lower is better), and the paired difference model - that reference with its
    interval and verdict (``comparisons[name][metric][split][figure]``). ``labels``: each reference generator's
    display name. Figures no trivial reference was compared on are left out."""
    comparisons = {name: by_metric for name, by_metric in comparisons.items() if name not in oracles}
    rows = []
    for column in VERDICT_COLUMNS:
        for split in splits:
            cells = {name: by_metric.get(column.metric, {}).get(split, {}).get(column.figure)
                     for name, by_metric in comparisons.items()}
            cells = {name: cell for name, cell in cells.items() if cell and "value" in cell}
            if not cells:
                continue
            lower = column.figure in LOWER_IS_BETTER
            best = (min if lower else max)(cells, key=lambda name: cells[name]["reference"])
            cell = cells[best]
            rows.append({"metric": column.metric, "figure": column.figure, "label": column.label, "split": split,
                         "reference": best, "reference_label": labels.get(best, best), "model": cell["model"],
                         "reference_value": cell["reference"], "difference": cell["value"], "ci95": cell["ci95"],
                         "n": cell["n"], "ci_method": cell["ci_method"], "lower_is_better": lower,
                         "verdict": cell["verdict"]})
    return rows
