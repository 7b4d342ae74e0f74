"""results.json, the JSON-lines history, and the short table printed after a run."""

from __future__ import annotations

import json
import math
from pathlib import Path

RESULTS_FILE = "results.json"


def write_results(run_dir: Path, document: dict) -> Path:
    path = run_dir / RESULTS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def headline(document: dict) -> dict[str, dict[str, float | None]]:
    """{row: {metric.figure: value}} for every figure shown in the table."""
    rows: dict[str, dict[str, float | None]] = {}
    for metric, entry in document["results"].items():
        for row, values in entry.get("rows", {}).items():
            for column in entry["columns"]:
                cell = values.get(column)
                rows.setdefault(row, {})[f"{metric}.{column}"] = cell.get("value") if isinstance(cell, dict) else None
    return rows


def append_history(path: Path, document: dict) -> None:
    line = {
        "created": document["created"],
        "run_dir": document["run_dir"],
        "checkpoint_sha256": document["provenance"]["checkpoint"]["sha256"],
        "data_sha256": document["provenance"]["data"]["content_sha256"],
        "seed": document["settings"]["seed"],
        "figures": headline(document),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, allow_nan=False) + "\n")


def _number(x: float) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def format_cell(cell: object) -> str:
    if not isinstance(cell, dict) or "value" not in cell:
        return "-"
    low, high = cell["ci95"]
    return f"{_number(cell['value'])} [{_number(low)}, {_number(high)}]"


def summary_table(document: dict) -> str:
    """One line per headline figure, one column per row of faces (real, then each split), value [95 % interval]."""
    row_names = ["real", *document["splits"]]
    table = [["figure", *row_names]]
    for metric, entry in document["results"].items():
        for column in entry["columns"]:
            name = metric if column == metric else f"{metric}.{column}"
            if entry["status"] == "unavailable":
                table.append([name, *["unavailable"] * len(row_names)])
            else:
                table.append([name, *(format_cell(entry["rows"].get(row, {}).get(column)) for row in row_names)])
    widths = [max(len(line[c]) for line in table) for c in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table)
