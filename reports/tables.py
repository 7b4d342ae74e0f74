"""The report's tables as plain data (:class:`evalkit.sections.Table`: title, column names, rows of strings), built
from a results.json document (cells formatted by :func:`evalkit.record.metric_cell`).

Cells read ``value [95 % interval]``; proportions are shown in per cent. A cell without a figure says why in one word
with a numbered mark (``unavailable¹``, ``not evaluated²``), and the table's note gives each reason once
(:class:`evalkit.record.Footnotes`).
"""

from __future__ import annotations

from evalkit.record import (
    HEADLINE_COLUMNS,
    VERDICT_COLUMNS,
    Column,
    Footnotes,
    ReferenceEntry,
    RunRecord,
    format_figure,
    metric_cell,
    number,
)
from evalkit.sections import Table

HEADLINE_ROWS = (("real", "Real data"), ("seen", "Seen speech"), ("unseen_speech", "Unseen speech"),
                 ("unseen_identity", "Unseen identities"))
VERDICT_WORDS = {"better": "beats it", "worse": "worse", "no difference": "no difference"}


def headline_table(document: RunRecord) -> Table:
    """Rows real data / seen speech / unseen speech / unseen identities; one column per headline figure."""
    notes = Footnotes(document["results"])
    rows = []
    for row, label in HEADLINE_ROWS:
        if row != "real" and row not in document["splits"]:
            rows.append([label] + [f"not evaluated{notes.mark('not evaluated: split not in the data.')}"]
                        * len(HEADLINE_COLUMNS))
            continue
        rows.append([label] + [metric_cell(document["results"], c.metric, c.figure, row, notes)
                               for c in HEADLINE_COLUMNS])
    return Table("Headline results (95 % intervals)", ["Faces"] + [c.label for c in HEADLINE_COLUMNS], rows,
                 note="Identity accuracy of real data: the identity classifier on held-out real faces. Landmark ratio: "
                      "share of images where dlib finds a face and its 68 landmarks. " + notes.note())


def verdict_table(document: RunRecord) -> Table | None:
    """The verdict first: per verdict figure and split, the model, the best reference generator on the same clips,
    the paired difference with its interval, and whether the model beats it (the record's ``verdict``)."""
    verdict = document.get("verdict")
    if not verdict:
        return None
    rows = [[row["label"], row["split"].replace("_", " "), number(row["model"]),
             f"{row['reference_label']}: {number(row['reference_value'])}",
             f"{row['difference']:+.3g} [{row['ci95'][0]:+.3g}, {row['ci95'][1]:+.3g}]",
             VERDICT_WORDS[row["verdict"]]] for row in verdict]
    return Table("Verdict: the model against the best trivial generator, figure by figure (same clips, paired)",
                 ["Figure", "Split", "Model", "Best trivial generator", "Model − best [95 %]", "Verdict"], rows,
                 note="Best trivial generator: of the reference generators scored on the same clips (the oracle, "
                      "which sees each clip's real face, left out), the one with the best mean on this figure. "
                      "Differences are means over the same clips; intervals from a cluster "
                      "bootstrap of the paired per-clip differences (whole groups resampled). Lower is better for "
                      "the craniofacial ratio error, higher for the others.")


def verdict_summary(document: RunRecord) -> list[str]:
    """The verdict in words, one sentence per split (empty when the record has no verdict)."""
    verdict = document.get("verdict") or []
    sentences = []
    for split in dict.fromkeys(row["split"] for row in verdict):
        rows = [row for row in verdict if row["split"] == split]
        by = {word: [row["label"] for row in rows if row["verdict"] == word] for word in VERDICT_WORDS}
        parts = [f"beats the best trivial generator on {len(by['better'])} of {len(rows)} figures"
                 + (f" ({', '.join(by['better'])})" if by["better"] else "")]
        if by["worse"]:
            parts.append(f"is worse on {len(by['worse'])} ({', '.join(by['worse'])})")
        if by["no difference"]:
            parts.append(f"cannot be told apart on {len(by['no difference'])}")
        sentences.append(f"{split.replace('_', ' ').capitalize()}: the model " + ", ".join(parts[:-1])
                         + (" and " if len(parts) > 1 else "") + parts[-1] + ".")
    return sentences


SPEAKER_GAP = Column("voice_dependence", "speaker_gap", "Speaker gap (voice dependence)")
# The voice-only map is compared on the verdict's figures it has (descriptor-level ones) and on the speaker gap.
VOICE_ONLY_COLUMNS = (*VERDICT_COLUMNS, SPEAKER_GAP)


def voice_only_verdict_table(document: RunRecord) -> Table | None:
    """The model against the voice-only reference (a ridge map from voice embeddings to face descriptors, fitted on
    the training splits; ``evalkit.generators.voice_only``): per figure it has and split, both means, the paired
    difference with its interval and the verdict (from the record's ``comparisons``). None without that reference."""
    comparison = document.get("comparisons", {}).get("voice-only")
    if not comparison:
        return None
    words = {"better": "beats the voice-only map", "worse": "worse than the voice-only map",
             "no difference": "no difference"}
    rows = []
    for column in VOICE_ONLY_COLUMNS:
        for split in document["splits"]:
            cell = comparison.get(column.metric, {}).get(split, {}).get(column.figure)
            if not cell or "value" not in cell:
                continue
            low, high = cell["ci95"]
            rows.append([column.label, split.replace("_", " "), f"{cell['model']:.3g}", f"{cell['reference']:.3g}",
                         f"{cell['value']:+.3g} [{low:+.3g}, {high:+.3g}]", words[cell["verdict"]]])
    if not rows:
        return None
    verdicts = [row[-1] for row in rows]
    summary = (f"The model beats the voice-only map on {verdicts.count(words['better'])} of {len(rows)} figures, is "
               f"worse on {verdicts.count(words['worse'])} and not distinguishable on "
               f"{verdicts.count('no difference')}. ")
    return Table("Verdict: the model against what a voice alone predicts, a ridge map from voice embeddings to face "
                 "descriptors (same clips, paired)",
                 ["Figure", "Split", "Model", "Voice-only map", "Model − voice-only map [95 %]", "Verdict"],
                 rows, note=summary + "Differences are means over the same clips; intervals from a cluster bootstrap "
                                      "of the paired per-clip differences (whole groups resampled). The voice-only "
                                      "map draws no image, so only descriptor-level figures are compared.")


BASELINE_COLUMNS = (*HEADLINE_COLUMNS, *(c for c in VERDICT_COLUMNS if c.metric in ("retrieval", "forced_matching")),
                    SPEAKER_GAP)


def baseline_table(document: RunRecord, references: list[tuple[ReferenceEntry, RunRecord]]) -> Table:
    """The evaluated generator, then the reference generators' runs, scored by the headline metrics and the
    voice→face figures: one row per generator and split."""
    generators = [({"label": "Evaluated generator"}, document), *references]
    notes = Footnotes()
    rows = []
    for entry, record in generators:
        for split in document["splits"]:
            label = f"{entry['label']}: {split.replace('_', ' ')}"
            rows.append([label] + [metric_cell(record["results"], c.metric, c.figure, split, notes)
                                   for c in BASELINE_COLUMNS])
    note = " ".join(f"{entry['label']}: {entry['description']}." for entry, _ in references)
    return Table("Reference generators beside the evaluated one, scored by the same metrics on the same clips",
                 ["Faces"] + [c.label for c in BASELINE_COLUMNS], rows, note=f"{note} {notes.note()}")


def every_figure_table(document: RunRecord) -> Table:
    """Every figure of every computed metric, real row and splits as columns."""
    notes = Footnotes(document["results"])
    row_names = ["real", *document["splits"]]
    rows = []
    for metric, entry in document["results"].items():
        if entry["status"] != "ok":
            rows.append([metric, *[metric_cell(document["results"], metric, "", row, notes) for row in row_names]])
            continue
        figures = dict.fromkeys(name for values in entry["rows"].values() for name, cell in values.items()
                                if isinstance(cell, dict) and "value" in cell)
        for figure in figures:
            rows.append([f"{metric}.{figure}", *(metric_cell(document["results"], metric, figure, row, notes)
                                                  for row in row_names)])
    return Table("Every figure (95 % intervals, N in results.json)", ["Figure", *row_names], rows,
                 note=notes.note())


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
