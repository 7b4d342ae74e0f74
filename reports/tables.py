"""The report's tables as plain data (:class:`evalkit.sections.Table`: title, column names, rows of strings), built
from a results.json document (cells formatted by :func:`evalkit.record.metric_cell`).

Cells read ``value [95 % interval]``; proportions are shown in per cent. A figure that could not be computed says
why: a metric whose weights are not installed shows ``unavailable`` with a numbered mark explained once in the table's
note;
the split is not in the data, the metric has no row for real faces, or it does not apply to the split.
"""

from __future__ import annotations

from collections.abc import Mapping

from evalkit.record import (
    HEADLINE_COLUMNS,
    Column,
    ReferenceEntry,
    RunRecord,
    format_figure,
    metric_cell,
    unavailable_marks,
)
from evalkit.sections import Table

HEADLINE_ROWS = (("real", "Real data"), ("seen", "Seen speech"), ("unseen_speech", "Unseen speech"),
                 ("unseen_identity", "Unseen identities"))


def unavailable_note(*results: dict) -> str:
    """Each reason behind a mark, once, with the metrics it concerns (unavailable: weights missing; not
    applicable: the data lacks the metric's inputs, or a descriptor-only reference draws no image), over every
    results dict given (marks numbered as ``unavailable_marks(*results)``)."""
    notes = []
    for (status, reason), mark in unavailable_marks(*results).items():
        metrics = dict.fromkeys(m for each in results for m, entry in each.items()
                                if (entry["status"], entry.get("reason", "")) == (status, reason))
        notes.append(f"{mark} {', '.join(metrics)} {status}: {reason.rstrip('.')}.")
    return " ".join(notes)


def headline_table(document: RunRecord) -> Table:
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


VERDICT_FIGURES = (("landmark_ratio", "ratio", "Landmark ratio"),
                   ("identity_accuracy", "accuracy", "Identity accuracy"),
                   ("identity_similarity", "same_clip_cosine", "Same-clip cosine"),
                   ("retrieval", "recall@1", "Retrieval recall@1"), ("forced_matching", "1:2", "Forced matching 1:2"),
                   ("voice_dependence", "speaker_gap", "Speaker gap (voice dependence)"),
                   ("craniofacial", "ratio_error", "Craniofacial ratio error"))
VERDICT_REFERENCES = {"mean-face": "the mean face", "voice-only": "the voice-only map"}


def verdict_table(document: RunRecord, reference: str = "mean-face") -> Table | None:
    """The verdict first: per headline figure and split, the model, the reference generator (the per-identity mean
    face; the voice-only ridge map for the figures it has), the paired difference with its interval, and whether the
    model beats the reference (from the record's ``comparisons``)."""
    comparison = document.get("comparisons", {}).get(reference)
    if not comparison:
        return None
    name_of = VERDICT_REFERENCES[reference]
    words = {"better": f"beats {name_of}", "worse": f"worse than {name_of}", "no difference": "no difference"}
    rows = []
    for metric, name, label in VERDICT_FIGURES:
        for split in document["splits"]:
            cell = comparison.get(metric, {}).get(split, {}).get(name)
            if not cell or "value" not in cell:
                continue
            low, high = cell["ci95"]
            rows.append([label, split.replace("_", " "), f"{cell['model']:.3g}", f"{cell['reference']:.3g}",
                         f"{cell['value']:+.3g} [{low:+.3g}, {high:+.3g}]", words[cell["verdict"]]])
    if not rows:
        return None
    verdicts = [row[-1] for row in rows]
    summary = (f"The model beats {name_of} on {verdicts.count(words['better'])} of {len(rows)} figures, is worse on "
               f"{verdicts.count(words['worse'])} and not distinguishable on {verdicts.count('no difference')}. ")
    title = {"mean-face": "the per-identity mean face",
             "voice-only": "what a voice alone predicts, a ridge map from voice embeddings to face descriptors"}
    return Table(f"Verdict: the model against {title[reference]} (same clips, paired)",
                 ["Figure", "Split", "Model", name_of[4:].capitalize(), f"Model − {name_of[4:]} [95 %]", "Verdict"],
                 rows, note=summary + "Differences are means over the same clips; intervals from a cluster bootstrap "
                                      "of the paired per-clip differences (whole groups resampled). Lower is better "
                                      "for the craniofacial ratio error, higher for the others.")


BASELINE_COLUMNS = HEADLINE_COLUMNS + (
    Column("retrieval", "recall@1", "Retrieval recall@1"), Column("forced_matching", "1:2", "Forced matching 1:2"),
    Column("voice_dependence", "speaker_gap", "Speaker gap (voice dependence)"),
)


def baseline_table(document: RunRecord, references: list[tuple[ReferenceEntry, RunRecord]]) -> Table:
    """The evaluated generator, then the reference generators' runs, scored by the headline metrics and the
    voice→face figures: one row per generator and split."""
    generators: list[tuple[Mapping[str, object], RunRecord]] = [({"label": "Evaluated generator"}, document),
                                                                *references]
    results = [record["results"] for _, record in generators]
    marks = unavailable_marks(*results)
    rows = []
    for entry, record in generators:
        for split in document["splits"]:
            label = f"{entry['label']}: {split.replace('_', ' ')}"
            rows.append([label] + [metric_cell(record["results"], c.metric, c.figure, split, marks)
                                   for c in BASELINE_COLUMNS])
    note = " ".join(f"{entry['label']}: {entry['description']}." for entry, _ in references)
    note += " " + unavailable_note(*results)
    return Table("Reference generators beside the evaluated one, scored by the same metrics on the same clips",
                 ["Faces"] + [c.label for c in BASELINE_COLUMNS], rows, note=note)


def every_figure_table(document: RunRecord) -> Table:
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


def per_identity_table(document: RunRecord) -> Table | None:
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


def confusion_tables(document: RunRecord) -> list[Table]:
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
                            [[c, *map(str, counts)] for c, counts in zip(classes, matrix, strict=True)]))
    return tables
