"""A human study's exported results beside a run (``evalkit report RUN_DIR --study-results DIR``, ``evalkit run
--study-results DIR``): the study's headline figures, and their agreement per item with the run's automatic metrics.

Input: ``DIR/results_summary.json`` written by ``survey-app export`` (contract 2 of ARCHITECTURE.md):
``headline`` rows ``{kind, label, split, arm, estimate, low, high, interval, n, raters, chance, unit}`` and ``items``
rows ``{clip, split, identity, kind, arm, estimate, n}``. An export written before ``headline`` existed is read from its
``mos`` / ``recognition`` / ``lineup`` keys (MOS with its rater x item bootstrap interval, the share of "yes, I
recognise the person" and lineup accuracy with Wilson intervals); it has no per-item rows, so no agreement.

Agreement per item: for each human kind and arm (the ``real`` arm is left out: the automatic values are of generated
faces) and each automatic per-clip figure of the run (``results.json``'s ``per_clip``, joined on the clip id),
Spearman's rank correlation between the human per-item estimate and the automatic value (``scipy.stats.spearmanr``),
with a percentile bootstrap interval over items (``AGREEMENT_REPLICATES`` resamples, seeded by the run's seed; resamples
where either side is constant are skipped and counted). Written to ``RUN_DIR/human_study.json`` for the report.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from evalkit.errors import EvalError
from evalkit.record import STUDY_FILE, STUDY_VERSION, RunRecord, write_record
from evalkit.stats import percentile_interval, seeded_rng

SUMMARY_FILE = "results_summary.json"
UNITS = ("share", "mos", "score")
AGREEMENT_REPLICATES = 2000
MIN_ITEMS = 5
HEADLINE_FIELDS = {"kind": (str,), "label": (str,), "split": (str, type(None)), "arm": (str, type(None)),
                   "estimate": (int, float), "low": (int, float), "high": (int, float), "interval": (str,),
                   "n": (int,), "raters": (int,), "chance": (int, float, type(None)), "unit": (str,)}
ITEM_FIELDS = {"clip": (str, type(None)), "split": (str, type(None)), "identity": (str, type(None)), "kind": (str,),
               "arm": (str, type(None)), "estimate": (int, float), "n": (int,)}


class StudyError(EvalError):
    """A study export that cannot be read (one line naming the file and the fault)."""


def _check_row(row: object, fields: dict[str, tuple[type, ...]], where: str) -> dict:
    if not isinstance(row, dict):
        raise StudyError(f"{where}: expected an object, got {type(row).__name__}")
    for name, types in fields.items():
        if name not in row:
            raise StudyError(f"{where}: missing field {name!r}")
        value = row[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise StudyError(f"{where}: field {name!r} is {value!r}, expected "
                             f"{' or '.join('null' if t is type(None) else t.__name__ for t in types)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise StudyError(f"{where}: field {name!r} is not a finite number")
    return {name: row[name] for name in fields}


def _headline_row(row: object, where: str) -> dict:
    row = _check_row(row, HEADLINE_FIELDS, where)
    if not row["low"] <= row["high"]:  # a percentile bootstrap interval may miss its estimate; never reversed
        raise StudyError(f"{where}: the interval [{row['low']}, {row['high']}] is reversed")
    if row["unit"] not in UNITS:
        raise StudyError(f"{where}: unit {row['unit']!r} is not one of {UNITS}")
    if row["n"] < 0 or row["raters"] < 0:
        raise StudyError(f"{where}: negative n or raters")
    return row


def _legacy_headline(summary: dict, path: Path) -> list[dict]:
    """Headline rows from an export written before ``headline`` existed (its ``mos``, ``recognition`` and
    ``lineup`` keys)."""
    try:
        raters = int(summary.get("raters", {}).get("included", 0))
        rows = []
        for split, mos in (summary["mos"].get("by_split") or {}).items():
            if mos:
                low, high = mos["clustered_bootstrap_ci95"]
                rows.append({"kind": "mos", "label": "MOS (1-5)", "split": split, "arm": "generated",
                             "estimate": float(mos["mean"]), "low": float(low), "high": float(high),
                             "interval": "rater x item cluster bootstrap", "n": int(mos["n_votes"]),
                             "raters": int(mos["n_raters"]), "chance": None, "unit": "mos"})
        for split, shares in (summary["recognition"].get("by_split") or {}).items():
            if shares and shares["yes"]["share"] is not None:
                low, high = shares["yes"]["wilson_ci95"]
                rows.append({"kind": "recognition", "label": "Recognised the person (yes)", "split": split,
                             "arm": "generated", "estimate": float(shares["yes"]["share"]), "low": float(low),
                             "high": float(high), "interval": "Wilson", "n": int(shares["n"]), "raters": raters,
                             "chance": None, "unit": "share"})
        lineup = summary.get("lineup")
        if lineup:
            low, high = lineup["wilson_ci95"]
            rows.append({"kind": "lineup", "label": "Lineup: picked the true person", "split": None,
                         "arm": "generated", "estimate": float(lineup["accuracy"]), "low": float(low),
                         "high": float(high), "interval": "Wilson", "n": int(lineup["n"]), "raters": raters,
                         "chance": float(lineup["chance"]), "unit": "share"})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StudyError(f"{path}: no 'headline' list, and its mos/recognition/lineup keys are malformed "
                         f"({type(exc).__name__}: {exc})") from None
    return [_headline_row(row, f"{path}: {row['kind']} row") for row in rows]


def read_study_export(folder: Path) -> dict:
    """The validated export of ``folder``: ``{"path", "sha256", "format", "study", "raters", "headline",
    "items"}``. Raises StudyError for a missing folder or file, a file that is not JSON, or a wrong shape."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StudyError(f"--study-results {folder}: not a folder (give the folder `survey-app export` wrote)")
    path = folder / SUMMARY_FILE
    if not path.is_file():
        raise StudyError(f"--study-results {folder}: no {SUMMARY_FILE} in it (give the folder `survey-app export` "
                         "wrote)")
    raw = path.read_bytes()
    try:
        summary = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StudyError(f"{path}: not JSON ({exc})") from None
    if not isinstance(summary, dict):
        raise StudyError(f"{path}: not a study summary (a JSON object is expected)")
    if "headline" in summary:
        if not isinstance(summary["headline"], list):
            raise StudyError(f"{path}: 'headline' is not a list")
        headline = [_headline_row(row, f"{path}: headline[{k}]") for k, row in enumerate(summary["headline"])]
        fmt = "headline"
    elif {"mos", "recognition"} <= set(summary):
        headline, fmt = _legacy_headline(summary, path), "legacy (no headline rows)"
    else:
        raise StudyError(f"{path}: not a survey-app results_summary.json (no 'headline' list, nor the older 'mos' "
                         "and 'recognition' keys)")
    items = summary.get("items", [])
    if not isinstance(items, list):
        raise StudyError(f"{path}: 'items' is not a list")
    items = [_check_row(row, ITEM_FIELDS, f"{path}: items[{k}]") for k, row in enumerate(items)]
    stored_study = summary.get("study")
    study = stored_study if isinstance(stored_study, dict) else {}
    return {"path": str(path.resolve()), "sha256": hashlib.sha256(raw).hexdigest(), "format": fmt,
            "study": {k: study[k] for k in ("slug", "title", "created_at") if k in study},
            "raters": summary.get("raters") if isinstance(summary.get("raters"), dict) else {},
            "headline": headline, "items": items}


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair of (B, n) arrays; NaN where a row is constant."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (x * y).sum(axis=1) / denominator, np.nan)


def spearman_with_interval(human: np.ndarray, automatic: np.ndarray, rng: np.random.Generator,
                           replicates: int = AGREEMENT_REPLICATES) -> dict:
    """Spearman's rho of paired values (n,) (``scipy.stats.spearmanr``) with a percentile bootstrap interval over
    pairs (each resample's rho: Pearson's r of its average ranks, vectorised over resamples); ``{"status":
    "not applicable", "reason"}`` when rho is undefined (a constant side) or n < MIN_ITEMS."""
    from scipy.stats import rankdata, spearmanr

    n = len(human)
    if n < MIN_ITEMS:
        return {"status": "not applicable", "reason": f"{n} item(s) joined; at least {MIN_ITEMS} needed"}
    if np.ptp(human) == 0 or np.ptp(automatic) == 0:
        return {"status": "not applicable", "reason": "one side is constant over the items"}
    rho = float(spearmanr(human, automatic).statistic)
    draws = rng.integers(0, n, size=(replicates, n))
    values = _row_pearson(rankdata(human[draws], axis=1), rankdata(automatic[draws], axis=1))
    kept = values[np.isfinite(values)]
    low, high = percentile_interval(kept)
    return {"value": rho, "ci95": [low, high], "n": n, "chance": 0.0,
            "ci_method": f"percentile bootstrap over items (B={replicates}, {replicates - len(kept)} resamples "
                         "with a constant side skipped)"}


def agreement(items: list[dict], document: RunRecord) -> tuple[list[dict], str]:
    """Agreement rows (per human kind and arm, per automatic per-clip figure) and a note on the join."""
    clips = document.get("clips")
    per_clip = document.get("per_clip")
    if not clips or not per_clip:
        return [], "The run record has no per-clip values (written before they were kept): re-run evalkit run."
    if not items:
        return [], "The export has no per-item rows, so agreement with the automatic metrics cannot be computed."
    position = {clip: (split, k) for split, ids in clips.items() for k, clip in enumerate(ids)}
    joined = [item for item in items if item["clip"] in position and item["arm"] != "real"]
    note = (f"{len(joined)} of {len(items)} study items joined on a clip of this run (items of the real-face arm and "
            "items without a clip of this run are left out).")
    rows = []
    for kind, arm in dict.fromkeys((item["kind"], item["arm"]) for item in joined):
        group = [item for item in joined if (item["kind"], item["arm"]) == (kind, arm)]
        for metric, splits in per_clip.items():
            for figure in dict.fromkeys(f for values in splits.values() for f in values):
                pairs = []
                for item in group:
                    split, k = position[item["clip"]]
                    value = splits.get(split, {}).get(figure, [None] * (k + 1))[k]
                    if value is not None:
                        pairs.append((item["estimate"], value))
                rng = seeded_rng(document["settings"]["seed"], "study-agreement", kind, str(arm), metric, figure)
                rows.append({"kind": kind, "arm": arm, "automatic": f"{metric}.{figure}",
                             "spearman": spearman_with_interval(np.array([h for h, _ in pairs], np.float64),
                                                                np.array([a for _, a in pairs], np.float64), rng)})
    return rows, note


def import_study(run_dir: Path, document: RunRecord, export: dict) -> Path:
    """Write ``run_dir/human_study.json``: the export's headline rows and the agreement per item with the run."""
    rows, note = agreement(export["items"], document)
    record = {"study_version": STUDY_VERSION, "source": {k: export[k] for k in ("path", "sha256", "format")},
              "study": export["study"], "raters": export["raters"], "headline": export["headline"],
              "items": len(export["items"]), "agreement": rows, "agreement_note": note}
    return write_record(Path(run_dir) / STUDY_FILE, record)  # type: ignore[arg-type]
