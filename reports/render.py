"""``report.md`` and a self-contained ``report.html`` (images and speech as data URIs, no network) for a run folder,
and ``gallery.html``, the full paired gallery (every clip; it links the run folder's files instead of embedding them).

The folder's run record (``results.json`` from ``evalkit run``, and the reference generators' records under
``references/``) gives the verdict (in words, as a table and as one chart), the headline table, the seed's figures
beside ours, the reference generators' rows, the paired gallery with each clip's speech, the human study
(``human_study.json`` from ``evalkit report --study-results``), per-identity results, confusion matrices, bar charts,
training curves and provenance; each ``experiments/<name>/experiment.json`` adds a section. Nothing is computed here:
every number comes from the records. Figures are drawn into ``report_files/``; the Markdown links them and the speech
files there.
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
    VERDICT_COLUMNS,
    RecordError,
    ReferenceEntry,
    RunRecord,
    read_record,
    read_references,
    read_study,
)
from evalkit.sections import Table
from reports import figures
from reports.gallery import GalleryBlock, gallery_blocks, read_full_gallery
from reports.run_files import read_training_log, training_log_path
from reports.sections import Figure, RenderedSection, read_sections
from reports.seed import audio_length_runs, seed_table
from reports.study import StudyReport, study_report
from reports.tables import (
    baseline_table,
    confusion_tables,
    every_figure_table,
    headline_table,
    per_identity_table,
    verdict_summary,
    verdict_table,
    voice_only_verdict_table,
)

ASSETS_DIR = "report_files"
FULL_GALLERY = "gallery.html"
MIME = {".png": "image/png", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".wav": "audio/wav", ".flac": "audio/flac"}


@dataclass
class RunReport:
    """Everything the templates show of one evaluation run."""

    document: RunRecord
    verdict: list[str]
    verdict_chart: Figure | None
    tables: list[Table]
    baselines: Table | None
    baselines_reason: str
    details: list[Table]
    charts: list[Figure]
    gallery: list[GalleryBlock]
    gallery_note: str
    full_gallery: str | None
    study: StudyReport | None
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


def _verdict_chart(document: RunRecord, references: list[tuple[ReferenceEntry, RunRecord]],
                   assets: Path) -> Figure | None:
    """The one figure to look at: each verdict figure of the model and of every reference generator, per split, with
    each generator's own 95 % interval."""
    generators = [("this model", document), *((entry["label"], record) for entry, record in references)]
    splits = document["splits"]
    panels = []
    for column in VERDICT_COLUMNS:
        if document["results"].get(column.metric, {}).get("status") != "ok":
            continue
        series = {name: [record["results"].get(column.metric, {}).get("rows", {}).get(split, {}).get(column.figure)
                         for split in splits] for name, record in generators}
        if any(series["this model"]):
            panels.append((column.label + (" (lower is better)" if column.figure == "ratio_error" else ""),
                           [split.replace("_", " ") for split in splits], series))
    if not panels or not references:
        return None
    path = figures.small_multiples(assets / "verdict.png", panels)
    return Figure(path, "The model (first bar) against the reference generators on the same clips: each generator's "
                        "value with its own 95 % interval; dashed segments: the model's chance level. The verdict "
                        "uses the paired interval of each difference (table below), narrower than these.")


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
    gallery, gallery_note = gallery_blocks(run_dir, document)
    study = read_study(run_dir)
    return RunReport(
        document=document,
        verdict=verdict_summary(document),
        verdict_chart=_verdict_chart(document, references, assets),
        tables=[t for t in (verdict_table(document), voice_only_verdict_table(document), headline_table(document),
                            seed_table(document, audio_length_runs(run_dir, document["settings"]["image_size"])),
                            _counts_table(document)) if t is not None],
        baselines=baseline_table(document, references) if references else None,
        baselines_reason="" if references else "no reference generator was scored in this run (--references none)",
        details=[t for t in [every_figure_table(document), per_identity] if t is not None]
        + confusion_tables(document),
        charts=_headline_charts(document, references, assets),
        gallery=gallery,
        gallery_note=gallery_note,
        full_gallery=FULL_GALLERY if (run_dir / FULL_GALLERY).is_file() else None,
        study=study_report(study, document, assets) if study is not None else None,
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
    """A file as a ``data:`` URI (PNG images, Ogg/WAV/FLAC speech), so that the HTML needs no other file."""
    path = Path(path)
    return f"data:{MIME[path.suffix.lower()]};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render(run_dir: Path, figure_folder: Path | None = None) -> Path:
    """Write ``report.md``, ``report.html`` and (when the run has a paired gallery) ``gallery.html`` into
    ``run_dir``; returns the HTML report's path. ``figure_folder``: figures shared by key across run folders
    (``reports.figures.figure_store``; None: none). Raises RecordError for a folder without a readable record."""
    with figures.figure_store(figure_folder):
        return _render(Path(run_dir).resolve())


def _render(run_dir: Path) -> Path:
    results = run_dir / RESULTS_FILE
    assets = run_dir / ASSETS_DIR
    sections: list[RenderedSection] = read_sections(run_dir, assets)
    if not results.is_file() and not sections:
        raise RecordError(f"{run_dir}: no {RESULTS_FILE} and no experiment sections; not a run or experiment folder")
    env = _environment()

    def relative(path: Path) -> str:
        return Path(os.path.relpath(path, run_dir)).as_posix()

    document = read_record(results) if results.is_file() else None
    full = read_full_gallery(run_dir, document) if document is not None else None
    if full is not None:
        (run_dir / FULL_GALLERY).write_text(env.get_template("gallery.html.j2").render(
            title=f"Paired gallery: {run_dir.name}", gallery=full), encoding="utf-8")
    run = run_report(run_dir, document, assets) if document is not None else None
    context = {"title": f"wav2pix evalkit report: {run_dir.name}", "run": run, "sections": sections}
    (run_dir / "report.md").write_text(env.get_template("report.md.j2").render(
        **context, image=relative, audio=relative), encoding="utf-8")
    html = run_dir / "report.html"

    def run_file(name: str) -> str:
        return data_uri(run_dir / name)

    html.write_text(env.get_template("report.html.j2").render(**context, image=data_uri, audio=data_uri,
                                                              run_file=run_file), encoding="utf-8")
    return html
