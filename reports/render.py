"""``report.md`` and a self-contained ``report.html`` (images as data URIs, no network) for a run folder.

The folder's run record (``results.json`` from ``evalkit run``, and the reference generators' records under
``references/``) gives the headline table, the seed's figures beside ours, the reference generators' rows,
per-identity results, confusion matrices, image grids, bar charts, training curves and provenance; each
``experiments/<name>/experiment.json`` adds a section. Nothing is computed here: every number comes from the records.
Figures are drawn into ``report_files/``; the Markdown links them there.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from evalkit.record import (
    HEADLINE_COLUMNS,
    RESULTS_FILE,
    RecordError,
    ReferenceEntry,
    RunRecord,
    read_record,
    read_references,
)
from evalkit.sections import Table
from reports import figures
from reports.run_files import (
    face_rows,
    identities_on_disk,
    read_training_log,
    training_log_path,
)
from reports.sections import Figure, RenderedSection, read_sections
from reports.seed import seed_table
from reports.tables import (
    baseline_table,
    confusion_tables,
    every_figure_table,
    headline_table,
    per_identity_table,
    verdict_table,
)

ASSETS_DIR = "report_files"
GRID_COLUMNS = 8


@dataclass
class RunReport:
    """Everything the templates show of one evaluation run."""

    document: RunRecord
    tables: list[Table]
    baselines: Table | None
    baselines_reason: str
    details: list[Table]
    charts: list[Figure]
    grids: list[Figure]
    confusions: list[Figure]
    training: Figure | None
    training_reason: str
    provenance: list[tuple[str, str]]
    warnings: list[str] = field(default_factory=list)


def _headline_charts(document: RunRecord, references: list[tuple[ReferenceEntry, RunRecord]],
                     assets: Path) -> list[Figure]:
    groups = ["real", *document["splits"]]
    charts = []
    for column in HEADLINE_COLUMNS:
        entry = document["results"].get(column.metric)
        if entry is None or entry["status"] != "ok":
            continue
        series = {"this run": [entry["rows"].get(row, {}).get(column.figure) for row in groups]}
        for entry_ref, record in references:
            rows = record["results"].get(column.metric, {}).get("rows", {})
            series[entry_ref["label"]] = [rows.get(row, {}).get(column.figure) if row != "real" else None
                                          for row in groups]
        if not any(series["this run"]):
            continue
        path = figures.bar_chart(assets / f"bars_{column.metric}.png", column.label, groups, series, column.label)
        charts.append(Figure(path, f"{column.label} with 95 % intervals; real row = real faces, splits = generated."))
    return charts


def _grids(run_dir: Path, document: RunRecord, assets: Path) -> list[Figure]:
    grids = []
    for identity in identities_on_disk(run_dir):
        rows = face_rows(run_dir, document["splits"], identity, GRID_COLUMNS)
        path = figures.image_grid(assets / f"grid_{identity}.png", identity, rows)
        grids.append(Figure(path, f"{identity}: real faces, then faces generated from speech of each split "
                                  f"(first {GRID_COLUMNS} by file name; real and generated are not paired)."))
    return grids


def _confusions(document: RunRecord, assets: Path) -> list[Figure]:
    entry = document["results"].get("identity_accuracy")
    if entry is None or entry["status"] != "ok":
        return []
    heatmaps = []
    for row, values in entry["rows"].items():
        if "confusion" in values:
            confusion = values["confusion"]
            path = figures.confusion_heatmap(assets / f"confusion_{row}.png", row,
                                             confusion["rows_true_columns_predicted"], confusion["matrix"])
            heatmaps.append(Figure(path, f"Identity confusion, {row}: rows true identity, columns predicted."))
    return heatmaps


def _training(document: RunRecord, assets: Path) -> tuple[Figure | None, str]:
    generator = document["generator"]
    if generator["kind"] != "wav2pix":
        return None, f"the evaluated generator ({generator['kind']}) carries no training log"
    checkpoint = generator["provenance"]
    log = training_log_path(checkpoint)
    if log is None:
        recorded = (checkpoint.get("training") or {}).get("log")
        return None, (f"training log {recorded} not found (nor train_log.jsonl beside the checkpoint)" if recorded
                      else "the checkpoint's sidecar names no training log")
    records = read_training_log(log)
    if not records:
        return None, f"{log} holds no per-epoch records"
    path = figures.training_curves(assets / "training.png", records)
    return Figure(path, f"Training curves from {log} ({len(records)} epochs)."), ""


def provenance_rows(document: RunRecord) -> list[tuple[str, str]]:
    p = document["provenance"]
    generator, data = document["generator"], p["data"]
    details = {k: v for k, v in generator["provenance"].items() if k not in ("training", "identities", "sha256")}
    rows = [
        ("command line", p["command_line"]),
        ("created", document["created"]),
        ("evalkit / code version", f"{document['evalkit_version']} / {p['code_version']}"),
        ("generator", f"{generator['kind']}: {generator['name']} (sha256 {generator['sha256']}, "
                      f"{generator['image_size']} px, {generator['audio_seconds']} s speech, "
                      f"normalisation {generator['normalisation']})"),
        ("generator details", json.dumps(details)),
        ("identities", ", ".join(generator.get("identities") or [])),
        ("training", json.dumps({k: v for k, v in (generator["provenance"].get("training") or {}).items()
                                 if k != "config"})),
        ("data", (f"{data['manifest']} (manifest sha256 {data['manifest_sha256']}, content sha256 "
                  f"{data['content_sha256']}, {data['pairs']} pairs)")),
        ("seed", str(p["seed"])),
        ("python / platform", f"{p['python']} / {p['platform']}"),
        ("packages", ", ".join(f"{name} {version}" for name, version in p["packages"].items())),
    ]
    for name, weights in p["weights"].items():
        rows.append((f"weights: {name}", json.dumps(weights)))
    settings = {k: v for k, v in document["settings"].items() if k != "features"}
    rows.append(("settings", json.dumps(settings)))
    return rows


def _counts_table(document: RunRecord) -> Table:
    return Table("Evaluated data", ["Split", "Clips", "Real faces", "Identities"],
                 [[split, str(c["clips"]), str(c["real_faces"]), str(c["identities"])]
                  for split, c in document["data"].items()])


def run_report(run_dir: Path, document: RunRecord, assets: Path) -> RunReport:
    references = read_references(run_dir, document)
    training, training_reason = _training(document, assets)
    per_identity = per_identity_table(document)
    return RunReport(
        document=document,
        tables=[t for t in (verdict_table(document), verdict_table(document, "voice-only"), headline_table(document),
                            seed_table(document), _counts_table(document)) if t is not None],
        baselines=baseline_table(document, references) if references else None,
        baselines_reason="" if references else "no reference generator was scored in this run (--references none)",
        details=[t for t in [every_figure_table(document), per_identity] if t is not None]
        + confusion_tables(document),
        charts=_headline_charts(document, references, assets),
        grids=_grids(run_dir, document, assets),
        confusions=_confusions(document, assets),
        training=training,
        training_reason=training_reason,
        provenance=provenance_rows(document),
        warnings=list(document.get("warnings", [])),
    )


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("reports", "templates"), undefined=StrictUndefined,
                      autoescape=lambda name: name is not None and ".html" in name,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["md_cell"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    return env


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render(run_dir: Path) -> Path:
    """Write ``report.md`` and ``report.html`` into ``run_dir``; returns the HTML report's path."""
    run_dir = Path(run_dir).resolve()
    results = run_dir / RESULTS_FILE
    assets = run_dir / ASSETS_DIR
    sections: list[RenderedSection] = read_sections(run_dir, assets)
    if not results.is_file() and not sections:
        raise RecordError(f"{run_dir}: no {RESULTS_FILE} and no experiment sections; not a run or experiment folder")
    run = run_report(run_dir, read_record(results), assets) if results.is_file() else None
    context = {"title": f"wav2pix evalkit report: {run_dir.name}", "run": run, "sections": sections}
    env = _environment()
    (run_dir / "report.md").write_text(env.get_template("report.md.j2").render(
        **context, image=lambda path: Path(os.path.relpath(path, run_dir)).as_posix()), encoding="utf-8")
    html = run_dir / "report.html"
    html.write_text(env.get_template("report.html.j2").render(**context, image=data_uri), encoding="utf-8")
    return html
