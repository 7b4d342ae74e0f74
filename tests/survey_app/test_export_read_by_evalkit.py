"""Contract 2 from both sides: the export `survey-app export` writes is what `evalkit report --study-results` reads
(evalkit.study.read_study_export), headline and items included."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from evalkit.study import read_study_export
from survey_app.export import export_files
from survey_app.models import Study


def test_evalkit_reads_a_faces_study_export(db, study, start_rater, complete_session, tmp_path: Path) -> None:
    for _ in range(3):
        complete_session(*start_rater(study))
    files = export_files(db, db.scalar(select(Study)), 200)
    (tmp_path / "results_summary.json").write_text(files["results_summary.json"])
    export = read_study_export(tmp_path)
    summary = json.loads(files["results_summary.json"])
    assert export["format"] == "headline"
    assert export["headline"] == summary["headline"] and export["items"] == summary["items"]
    assert {row["kind"] for row in export["headline"]} == {"mos", "recognition", "lineup"}
