"""``evalkit compare RUN_A RUN_B``: every figure both runs report, and the difference B - A with a 95 % interval.

The interval of a difference of two independent estimates comes from their own intervals by the MOVER method (Zou
and Donner 2008; for two Wilson intervals it is Newcombe's hybrid score interval):
``low = d - sqrt((a - la)^2 + (ub - b)^2)``, ``high = d + sqrt((ua - a)^2 + (b - lb)^2)``. The runs are assumed
independent; when both score the same real faces, the interval is conservative for figures computed against them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from evalkit.errors import EvalError
from evalkit.experiments.common import command_line, finish, start
from evalkit.record import RESULTS_FILE, format_figure
from evalkit.sections import Section, Table
from generator.cli_support import FriendlyCommand

NAME = "compare"


def difference(a: dict, b: dict) -> dict:
    """B - A with its MOVER 95 % interval."""
    (la, ua), (lb, ub) = a["ci95"], b["ci95"]
    d = b["value"] - a["value"]
    low = d - math.sqrt((b["value"] - lb) ** 2 + (ua - a["value"]) ** 2)
    high = d + math.sqrt((ub - b["value"]) ** 2 + (a["value"] - la) ** 2)
    return {"value": d, "ci95": [low, high], "ci_method": "mover", "excludes_zero": low > 0 or high < 0,
            "proportion": bool(a.get("proportion")) and bool(b.get("proportion"))}


def figures_of(document: dict) -> dict[tuple[str, str, str], dict]:
    """{(metric, row, figure): cell} for every figure with an interval."""
    found = {}
    for metric, entry in document["results"].items():
        for row, values in entry.get("rows", {}).items():
            for figure, cell in values.items():
                if isinstance(cell, dict) and "ci95" in cell:
                    found[metric, row, figure] = cell
    return found


def read_results(run_dir: Path) -> dict:
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        raise EvalError(f"{run_dir}: no {RESULTS_FILE}; not an `evalkit run` folder")
    return json.loads(path.read_text())


def compare_documents(a: dict, b: dict) -> list[dict]:
    cells_a, cells_b = figures_of(a), figures_of(b)
    shared = [key for key in cells_a if key in cells_b]
    if not shared:
        raise EvalError("the two runs have no figure in common")
    return [{"metric": m, "row": r, "figure": f, "a": cells_a[m, r, f], "b": cells_b[m, r, f],
             "difference": difference(cells_a[m, r, f], cells_b[m, r, f])} for m, r, f in shared]


def comparison_table(rows: list[dict], a: Path, b: Path) -> Table:
    def diff(d: dict) -> str:
        return (f"{d['value']:+.3g} [{d['ci95'][0]:+.3g}, {d['ci95'][1]:+.3g}]"
                + (" *" if d["excludes_zero"] else ""))

    return Table(f"B - A (A = {a}, B = {b})", ["Figure", "Row", "A", "B", "B - A [95 %]"],
                 [[f"{r['metric']}.{r['figure']}", r["row"], format_figure(r["a"]), format_figure(r["b"]),
                   diff(r["difference"])] for r in rows],
                 note="* the interval of the difference excludes 0. Proportions are differences of shares (0-1).")


@click.command(NAME, cls=FriendlyCommand)
@click.argument("run_a", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("run_b", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="also add the comparison as a section to this report folder")
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
def command(run_a: Path, run_b: Path, out: Path | None, as_json: bool) -> Path | None:
    """Differences (B - A) of every figure two runs share, with 95 % intervals."""
    # Returns the report folder the comparison was added to (rendered by the command layer), or None.
    rows = compare_documents(read_results(run_a), read_results(run_b))
    table = comparison_table(rows, run_a, run_b)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        widths = [max(len(line[c]) for line in [table.columns, *table.rows]) for c in range(len(table.columns))]
        for line in [table.columns, *table.rows]:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        click.echo(table.note)
    if out is None:
        return None
    report_dir, folder = start(out, NAME)
    section = Section(NAME, "comparison of two runs", f"Run A: {run_a}; run B: {run_b}.", command_line(),
                      {"run_a": str(run_a), "run_b": str(run_b)}, [table], [], {"rows": rows})
    return finish(report_dir, folder, section)
