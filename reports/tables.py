"""The report's tables as plain data (title, column names, rows of strings), built from a results.json document.

Cells read ``value [95 % interval]``; proportions (Wilson intervals) are shown in per cent. A figure that could not
be computed says why: the metric's weights are not installed, the split is not in the data, the metric has no row
for real faces, or the metric does not apply to the split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from evalkit.record import RunRecord, format_cell

HEADLINE_ROWS = (("real", "Real data"), ("seen", "Seen speech"), ("unseen_speech", "Unseen speech"),
                 ("unseen_identity", "Unseen identities"))


@dataclass(frozen=True)
class Column:
    metric: str
    figure: str
    label: str


HEADLINE_COLUMNS = (
    Column("landmark_ratio", "ratio", "Landmark ratio"),
    Column("identity_accuracy", "accuracy", "Identity accuracy"),
    Column("fid", "fid", "FID"),
    Column("face_fd", "face_fd", "Face Fréchet distance"),
    Column("kid", "kid", "KID"),
    Column("identity_similarity", "same_clip_cosine", "Identity similarity (same-clip cosine)"),
)


@dataclass(frozen=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""
    row_classes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Table:
        return cls(**data)


def percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def format_figure(cell: dict) -> str:
    """``value [low, high]``, in per cent for proportions; the chance level is appended where there is one."""
    if cell.get("ci_method") == "wilson":
        low, high = cell["ci95"]
        text = f"{percent(cell['value'])} [{100 * low:.1f}, {100 * high:.1f}]"
    else:
        text = format_cell(cell)
    if cell.get("chance") is not None:
        chance = cell["chance"]
        text += f" (chance {percent(chance) if cell.get('ci_method') == 'wilson' else f'{chance:.3g}'})"
    return text


def metric_cell(results: dict, metric: str, figure: str, row: str) -> str:
    """One cell of a results dict (a run record's ``results``, or a reference generator's)."""
    entry = results.get(metric)
    if entry is None:
        return "not computed (metric not selected for this run)"
    if entry["status"] != "ok":
        return f"{entry['status']} (see note)"
    values = entry["rows"].get(row)
    if values is None:
        return "— (no real-data row: the metric compares generated with real faces)" if row == "real" \
            else "not evaluated (split not in this run)"
    if values.get("status") == "not applicable":
        return f"not applicable ({values['reason']})"
    cell = values.get(figure)
    return format_figure(cell) if isinstance(cell, dict) else "not reported"


def unavailable_note(results: dict) -> str:
    """The full reason of every metric that was not computed (unavailable or not applicable)."""
    return " ".join(f"{metric} {entry['status']}: {entry['reason']}." for metric, entry in results.items()
                    if entry["status"] != "ok")


def headline_table(document: dict) -> Table:
    """Rows real data / seen speech / unseen speech / unseen identities; one column per headline figure."""
    rows = []
    for row, label in HEADLINE_ROWS:
        if row != "real" and row not in document["splits"]:
            rows.append([label] + ["not evaluated (split not in the data)"] * len(HEADLINE_COLUMNS))
            continue
        rows.append([label] + [metric_cell(document["results"], c.metric, c.figure, row) for c in HEADLINE_COLUMNS])
    return Table("Headline results (95 % intervals)", ["Faces"] + [c.label for c in HEADLINE_COLUMNS], rows,
                 note="Identity accuracy of real data: the identity classifier on held-out real faces. Landmark ratio: "
                      "share of images where dlib finds a face and its 68 landmarks. "
                      + unavailable_note(document["results"]))


def baseline_table(references: list[tuple[dict, RunRecord]], splits: list[str]) -> Table:
    """The reference generators' runs, scored by the headline metrics: one row per generator and split."""
    rows = []
    for entry, record in references:
        for split in splits:
            label = f"{entry['label']}: {split.replace('_', ' ')}"
            rows.append([label] + [metric_cell(record["results"], c.metric, c.figure, split)
                                   for c in HEADLINE_COLUMNS])
    note = " ".join(f"{entry['label']}: {entry['description']}." for entry, _ in references)
    note += " " + unavailable_note(references[0][1]["results"])
    return Table("Reference generators, scored by the same metrics on the same clips",
                 ["Faces"] + [c.label for c in HEADLINE_COLUMNS], rows, note=note)


def every_figure_table(document: dict) -> Table:
    """Every figure of every computed metric, real row and splits as columns."""
    row_names = ["real", *document["splits"]]
    rows = []
    for metric, entry in document["results"].items():
        if entry["status"] != "ok":
            rows.append([metric, *[metric_cell(document["results"], metric, "", row) for row in row_names]])
            continue
        figures = dict.fromkeys(name for values in entry["rows"].values() for name, cell in values.items()
                                if isinstance(cell, dict) and "value" in cell)
        for figure in figures:
            rows.append([f"{metric}.{figure}", *(metric_cell(document["results"], metric, figure, row)
                                                  for row in row_names)])
    return Table("Every figure (95 % intervals, N in results.json)", ["Figure", *row_names], rows,
                 note=unavailable_note(document["results"]))


def per_identity_table(document: dict) -> Table | None:
    """Identity accuracy of each identity, per split (None when identity accuracy was not computed)."""
    entry = document["results"].get("identity_accuracy")
    if entry is None or entry["status"] != "ok":
        return None
    row_names = [r for r in ["real", *document["splits"]] if "per_identity" in entry["rows"].get(r, {})]
    identities = dict.fromkeys(i for r in row_names for i in entry["rows"][r]["per_identity"])
    rows = []
    for identity in identities:
        cells = []
        for r in row_names:
            cell = entry["rows"][r]["per_identity"].get(identity)
            cells.append(f"{format_figure(cell)}, N = {cell['n']}" if cell else "—")
        rows.append([identity, *cells])
    return Table("Identity accuracy per identity", ["Identity", *row_names], rows,
                 note="real: held-out real faces of each identity.")


def confusion_tables(document: dict) -> list[Table]:
    """One confusion matrix (rows: true identity, columns: predicted) per row of faces."""
    entry = document["results"].get("identity_accuracy")
    if entry is None or entry["status"] != "ok":
        return []
    tables = []
    for row, values in entry["rows"].items():
        if "confusion" not in values:
            continue
        classes = values["confusion"]["rows_true_columns_predicted"]
        matrix = values["confusion"]["matrix"]
        tables.append(Table(f"Confusion matrix: {row} (rows true, columns predicted)", ["true \\ predicted", *classes],
                            [[c, *map(str, counts)] for c, counts in zip(classes, matrix)]))
    return tables
