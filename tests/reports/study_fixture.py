"""A survey export's ``results_summary.json`` as ``survey-app export`` writes it (contract 2 of ARCHITECTURE.md: today's
keys plus ``headline`` and ``items``), filled by simulated raters over a run's clips. The survey side changes its
export in parallel, so the report is tested against this fixture of the agreed shape, not against the app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evalkit.stats import wilson_interval

RATERS = 12


def _share_row(kind: str, label: str, split: str | None, arm: str | None, correct: int, n: int,
               chance: float | None) -> dict:
    low, high = wilson_interval(correct, n)
    return {"kind": kind, "label": label, "split": split, "arm": arm, "estimate": correct / n, "low": low,
            "high": high, "interval": "Wilson", "n": n, "raters": RATERS, "chance": chance, "unit": "share"}


def simulated_summary(clips: dict[str, list[str]], seed: int = 0, answers_per_item: int = 5) -> dict:
    """A results_summary.json document over ``clips`` ({split: [clip id]}): MOS, recognition and voice-to-face
    matching (real and generated arms, 1 of 2) per split, with per-item rows; accuracies drawn per item."""
    rng = np.random.default_rng(seed)
    headline, items, legacy_mos, legacy_recognition = [], [], {}, {}
    for split, ids in clips.items():
        scores, recognised, matched_generated, matched_real = [], 0, 0, 0
        for clip in ids:
            identity = clip.split("/")[1]
            votes = rng.integers(1, 6, answers_per_item)
            p_generated = rng.beta(6, 4)
            correct = int(rng.binomial(answers_per_item, p_generated))
            correct_real = int(rng.binomial(answers_per_item, 0.8))
            yes = int(rng.binomial(answers_per_item, 0.4))
            scores += votes.tolist()
            recognised += yes
            matched_generated += correct
            matched_real += correct_real
            base = {"clip": clip, "split": split, "identity": identity}
            items += [{**base, "kind": "mos", "arm": "generated", "estimate": float(votes.mean()),
                       "n": answers_per_item},
                      {**base, "kind": "matching", "arm": "generated", "estimate": correct / answers_per_item,
                       "n": answers_per_item},
                      {**base, "kind": "matching", "arm": "real", "estimate": correct_real / answers_per_item,
                       "n": answers_per_item}]
        n = answers_per_item * len(ids)
        mean = float(np.mean(scores))
        half = 1.96 * float(np.std(scores, ddof=1)) / np.sqrt(RATERS)
        headline += [{"kind": "mos", "label": "MOS (1-5)", "split": split, "arm": "generated", "estimate": mean,
                      "low": mean - half, "high": mean + half, "interval": "rater x item cluster bootstrap", "n": n,
                      "raters": RATERS, "chance": None, "unit": "mos"},
                     _share_row("recognition", "Recognised the person", split, "generated", recognised, n, None),
                     _share_row("matching", "Voice-to-face matching 1 of 2", split, "generated", matched_generated, n,
                                0.5),
                     _share_row("matching", "Voice-to-face matching 1 of 2", split, "real", matched_real, n, 0.5)]
        legacy_mos[split] = {"n_votes": n, "n_raters": RATERS, "n_items": len(ids), "mean": mean,
                             "t_ci95": [mean - half, mean + half],
                             "clustered_bootstrap_ci95": [mean - half, mean + half]}
        legacy_recognition[split] = {"n": n, "yes": {"count": recognised, "share": recognised / n,
                                                     "wilson_ci95": list(wilson_interval(recognised, n))}}
    return {"study": {"slug": "fixture", "title": "Simulated raters (test fixture)",
                      "created_at": "2026-11-30T10:00:00+00:00"},
            "raters": {"started": RATERS + 2, "completed": RATERS + 1, "included": RATERS},
            "mos": {"overall": None, "by_split": legacy_mos, "by_identity": {}},
            "recognition": {"overall": None, "by_split": legacy_recognition, "by_identity": {}},
            "lineup": None, "headline": headline, "items": items}


def write_study_export(folder: Path, clips: dict[str, list[str]], **changes: object) -> Path:
    """``folder/results_summary.json`` of simulated raters over ``clips``; ``changes`` replace top-level keys
    (a value None removes the key)."""
    summary = simulated_summary(clips)
    for key, value in changes.items():
        if value is None:
            summary.pop(key, None)
        else:
            summary[key] = value
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results_summary.json").write_text(json.dumps(summary, indent=2))
    return folder
