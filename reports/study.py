"""The human-study section: the study's headline figures (``human_study.json``, imported by ``evalkit report
--study-results``), the same splits' automatic figures beside them, and their agreement per item. Rendering only:
every number comes from the study record and the run record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalkit.record import VERDICT_COLUMNS, RunRecord, format_figure, metric_cell, number, percent
from evalkit.sections import Table
from reports import figures
from reports.sections import Figure

AUTOMATIC_BESIDE = ("identity_accuracy", "identity_similarity", "forced_matching")


@dataclass(frozen=True)
class StudyReport:
    """What the template shows of a human study."""

    title: str
    source: str
    tables: list[Table]
    chart: Figure | None
    note: str


def _estimate(row: dict) -> str:
    if row["unit"] == "share":
        return f"{percent(row['estimate'])} [{100 * row['low']:.1f}, {100 * row['high']:.1f}]"
    return f"{number(row['estimate'])} [{number(row['low'])}, {number(row['high'])}]"


def _name(row: dict) -> str:
    """A headline row's figure without its split (the export may name the split in the label)."""
    label = row["label"].removesuffix(f", split {row['split']}") if row["split"] else row["label"]
    return label + (f" ({row['arm']})" if row["arm"] else "")


def human_table(study: dict) -> Table:
    rows = [[_name(row), (row["split"] or "all").replace("_", " "), _estimate(row),
             "—" if row["chance"] is None else (percent(row["chance"]) if row["unit"] == "share"
                                                 else number(row["chance"])),
             f"{row['n']} ({row['raters']})", row["interval"]] for row in study["headline"]]
    return Table("People's judgements (95 % intervals)",
                 ["Figure", "Split", "Estimate [95 %]", "Chance", "Answers (raters)", "Interval"], rows,
                 note=f"Study {study['study'].get('title', '')!s}; raters: "
                      + ", ".join(f"{k} {v}" for k, v in study["raters"].items()) + ".")


def beside_table(study: dict, document: RunRecord) -> Table:
    """Per split of the run: the study's figures, then the model's automatic figures on the same split."""
    splits = document["splits"]
    rows = []
    for name in dict.fromkeys(_name(row) for row in study["headline"] if row["split"] in splits):
        cells = {row["split"]: _estimate(row) for row in study["headline"] if _name(row) == name}
        rows.append([f"People: {name}", *(cells.get(split, "—") for split in splits)])
    for column in VERDICT_COLUMNS:
        if column.metric in AUTOMATIC_BESIDE:
            rows.append([f"Automatic: {column.label}",
                         *(metric_cell(document["results"], column.metric, column.figure, split) for split in splits)])
    return Table("People beside the automatic metrics, split by split",
                 ["Figure", *(split.replace("_", " ") for split in splits)], rows,
                 note="People's figures from the study export; automatic figures of this run's generated faces on the "
                      "same split (95 % intervals).")


def agreement_table(study: dict) -> Table | None:
    if not study["agreement"]:
        return None
    shown = {f"{c.metric}.{c.figure}" for c in VERDICT_COLUMNS}
    rows = []
    for row in (r for r in study["agreement"] if r["automatic"] in shown):
        rho = row["spearman"]
        cell = format_figure({**rho, "chance": None}) if "value" in rho else f"not applicable ({rho['reason']})"
        rows.append([f"{row['kind']}" + (f" ({row['arm']})" if row["arm"] else ""), row["automatic"],
                     str(rho.get("n", "—")), cell])
    method = next((r["spearman"]["ci_method"] for r in study["agreement"] if "ci_method" in r["spearman"]), "")
    return Table("Agreement per item: people's per-item figure against each automatic per-clip value",
                 ["People", "Automatic (per clip)", "Items", "Spearman ρ [95 %]"], rows,
                 note=f"{study['agreement_note']} Automatic figures: the verdict's; every per-clip figure is in "
                      f"human_study.json. Interval: {method}.")


def _chart(study: dict, document: RunRecord, assets: Path) -> Figure | None:
    """Shares (people's and the automatic ones beside them) per split, with intervals and chance levels."""
    splits = document["splits"]
    series: dict[str, list[dict | None]] = {}
    for row in study["headline"]:
        if row["unit"] == "share" and row["split"] in splits:
            cells = series.setdefault(f"people: {_name(row)}", [None] * len(splits))
            cells[splits.index(row["split"])] = {"value": row["estimate"], "ci95": [row["low"], row["high"]],
                                                 "chance": row["chance"]}
    if not series:
        return None
    for column in VERDICT_COLUMNS:
        entry = document["results"].get(column.metric, {})
        if column.metric in AUTOMATIC_BESIDE and entry.get("status") == "ok" and column.figure != "same_clip_cosine":
            series[f"automatic: {column.label}"] = [entry["rows"].get(split, {}).get(column.figure) for split in splits]
    path = figures.bar_chart(assets / "human_study.png", "People and automatic metrics",
                             [split.replace("_", " ") for split in splits], series, "share")
    return Figure(path, "Shares judged by people (study export) beside the automatic shares of the same split, with "
                        "95 % intervals; dashed lines are chance levels.")


def study_report(study: dict, document: RunRecord, assets: Path) -> StudyReport:
    tables = [human_table(study), beside_table(study, document)]
    agreement = agreement_table(study)
    source = study["source"]
    return StudyReport(study["study"].get("title") or "human study",
                       f"{source['path']} (sha256 {source['sha256'][:12]}…, {source['format']})",
                       tables + ([agreement] if agreement else []), _chart(study, document, assets),
                       "" if agreement else study["agreement_note"])
