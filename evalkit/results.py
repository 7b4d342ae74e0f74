"""The JSON-lines history of runs and the short table printed after a run (the record itself: ``evalkit.record``)."""

from __future__ import annotations

import json
from pathlib import Path

from evalkit.record import RunRecord, format_cell


def headline(document: RunRecord) -> dict[str, dict[str, float | None]]:
    """{row: {metric.figure: value}} for every figure shown in the table."""
    rows: dict[str, dict[str, float | None]] = {}
    for metric, entry in document["results"].items():
        for row, values in entry.get("rows", {}).items():
            for column in entry["columns"]:
                cell = values.get(column)
                rows.setdefault(row, {})[f"{metric}.{column}"] = cell.get("value") if isinstance(cell, dict) else None
    return rows


def append_history(path: Path, document: RunRecord) -> None:
    line = {
        "created": document["created"],
        "run_dir": document["run_dir"],
        "generator": {"kind": document["generator"]["kind"], "name": document["generator"]["name"],
                      "sha256": document["generator"]["sha256"]},
        "data_sha256": document["provenance"]["data"]["content_sha256"],
        "seed": document["settings"]["seed"],
        "figures": headline(document),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, allow_nan=False) + "\n")


def summary_table(document: RunRecord) -> str:
    """One line per headline figure, one column per row of faces (real, then each split), value [95 % interval]."""
    row_names = ["real", *document["splits"]]
    table = [["figure", *row_names]]
    for metric, entry in document["results"].items():
        for column in entry["columns"]:
            name = metric if column == metric else f"{metric}.{column}"
            if entry["status"] != "ok":
                table.append([name, *[entry["status"]] * len(row_names)])
            else:
                table.append([name, *(format_cell(entry["rows"].get(row, {}).get(column)) for row in row_names)])
    widths = [max(len(line[c]) for line in table) for c in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table)
