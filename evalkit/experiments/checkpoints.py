"""Comparing checkpoints that differ in one setting (audio length, image size): each is evaluated by ``evalkit run``
on the same data into ``<experiment>/runs/``, and the headline figures are tabulated side by side."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from evalkit.errors import EvalError
from evalkit.options import RunOptions
from evalkit.record import HEADLINE_COLUMNS, GeneratorRecord, RunRecord, metric_cell
from evalkit.runner import run
from evalkit.sections import Bars, FigureSpec, Table
from generator.checkpoint import load_generator

COMPARED_SPLITS = ("seen", "unseen_speech", "unseen_identity")
CHARTED = ("landmark_ratio", "identity_accuracy")


def check_varies(checkpoints: tuple[Path, ...], varied: str, fixed: str) -> dict[Path, dict]:
    """Each checkpoint's model config; the ``varied`` setting must differ between them and ``fixed`` must not."""
    if len(checkpoints) < 2:
        raise EvalError("compare at least two checkpoints (--checkpoint A --checkpoint B ...)")
    configs = {path: load_generator(path).config.to_dict() for path in checkpoints}
    values = [c[varied] for c in configs.values()]
    if len(set(values)) != len(values):
        raise EvalError(f"the checkpoints must differ in {varied}; they have {values}")
    held = {c[fixed] for c in configs.values()}
    if len(held) > 1:
        raise EvalError(f"the checkpoints also differ in {fixed} ({sorted(held)}), which would confound the comparison")
    return configs


def evaluate_all(checkpoints: tuple[Path, ...], options: RunOptions, folder: Path, command: str,
                 label: Callable[[dict], str]) -> list[tuple[str, RunRecord]]:
    """``(label, results document)`` per checkpoint, in the order given."""
    documents = []
    for k, path in enumerate(checkpoints):
        done = run(replace(options, checkpoint=path, out=folder / "runs" / f"{k}", history=folder /
                               "history.jsonl"), command)
        if done is None:  # a process other than 0 of a torchrun launch: experiments run in one process
            raise EvalError("experiments run in one process; start them without torchrun")
        document, _ = done
        documents.append((label(document["settings"]), document))
    return documents


def comparison_table(title: str, documents: list[tuple[str, RunRecord]], extra: dict[str, list[str]]) -> Table:
    """One row per checkpoint: its label, ``extra`` columns, then each headline figure per compared split."""
    splits = [s for s in COMPARED_SPLITS if any(s in d["splits"] for _, d in documents)]
    columns = ["Setting", "Checkpoint", *extra]
    columns += [f"{c.label}: {s}" for c in HEADLINE_COLUMNS for s in splits]
    rows = []
    for k, (label, document) in enumerate(documents):
        row = [label, document["generator"]["name"], *(values[k] for values in extra.values())]
        row += [metric_cell(document["results"], c.metric, c.figure, s) if s in document["splits"]
                else "not evaluated" for c in HEADLINE_COLUMNS for s in splits]
        rows.append(row)
    return Table(title, columns, rows)


def comparison_charts(name: str, documents: list[tuple[str, RunRecord]]) -> list[FigureSpec]:
    """Bars per checkpoint (groups) and split (series) of the landmark ratio and identity accuracy."""
    charts: list[FigureSpec] = []
    for column in (c for c in HEADLINE_COLUMNS if c.metric in CHARTED):
        series = {}
        for split in COMPARED_SPLITS:
            cells = [document["results"].get(column.metric, {}).get("rows", {}).get(split, {}).get(column.figure)
                     for _, document in documents]
            if any(cells):
                series[split] = cells
        if series:
            charts.append(Bars(f"{name}_{column.metric}.png", column.label,
                               f"{column.label} per checkpoint and split, 95 % intervals.",
                               [label for label, _ in documents], series, column.label))
    return charts


def headline_data(documents: list[tuple[str, RunRecord]]) -> dict:
    """Each compared run's folder, results and setting (audio seconds, image size), by label: what the report reads
    to fill the seed table's rows of other settings (``reports.seed``)."""
    return {label: {"run_dir": d["run_dir"], "results": d["results"], "generator": d["generator"]["name"],
                    "audio_seconds": d["settings"]["audio_seconds"], "image_size": d["settings"]["image_size"]}
            for label, d in documents}


def generators(documents: list[tuple[str, RunRecord]]) -> dict[str, GeneratorRecord]:
    """Each compared run's generator record, by label (the experiment's record of which checkpoints it compared)."""
    return {label: d["generator"] for label, d in documents}
