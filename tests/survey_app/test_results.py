import csv
import io
import json

from sqlalchemy import select

from survey_app.export import ANSWER_COLUMNS, RATER_COLUMNS, export_files
from survey_app.models import Answer, Image, ItemKind, Study, Trial
from survey_app.results import SCREENING_RULES, build_summary, load_answer_records

from .support import careful_answers


def straight_liner(kind: str, questions: list[str], html: str) -> dict[str, str]:
    return {question: {"quality": "3", "recognition": "yes", "lineup": "1"}[question] for question in questions}


def _run_study(study, start_rater, complete_session, careful: int, straight: int) -> None:
    for choose in [careful_answers] * careful + [straight_liner] * straight:
        client, token, csrf = start_rater(study)
        complete_session(client, token, csrf, choose)


def test_summary_excludes_straight_liners_and_reports_why(db, study, start_rater, complete_session) -> None:
    _run_study(study, start_rater, complete_session, careful=3, straight=1)
    summary = build_summary(db, db.scalar(select(Study)), bootstrap_replicates=200)
    assert summary["raters"] == {"started": 4, "completed": 4, "included": 3}
    [excluded] = summary["screening"]["excluded"]
    assert SCREENING_RULES["straight_lining"] in excluded["reasons"] and "straight_lining" in excluded["rules"]
    assert summary["screening"]["excluded_by_rule"] == {
        "attention": 0,
        "controls": 0,
        "straight_lining": 1,
        "speeding": 0,
    }
    overall = summary["mos"]["overall"]
    assert overall["n_votes"] == 3 * 4 and overall["n_raters"] == 3
    assert sum(overall["distribution"].values()) == 12
    assert overall["t_ci95"][0] <= overall["mean"] <= overall["t_ci95"][1]
    low, high = overall["clustered_bootstrap_ci95"]
    assert 1 <= low <= overall["mean"] <= high <= 5
    recognition = summary["recognition"]["overall"]
    assert recognition["n"] == 12 and recognition["not_sure"]["count"] == 12
    assert summary["controls"]["same_person"]["yes"]["share"] == 1.0
    assert summary["controls"]["different_person"]["no"]["share"] == 1.0
    controls = summary["controls"]
    assert controls["same_person_mos"]["n_votes"] == controls["different_person_mos"]["n_votes"] == 3
    assert summary["agreement"]["quality_ordinal"]["units"] >= 0
    assert set(summary["mos"]["by_split"]) <= {"test", "val"}
    lineup = summary["lineup"]
    assert lineup["n"] == 12 and lineup["chance"] == 1 / 3 and 0 <= lineup["p_value_above_chance"] <= 1


def test_mos_equals_the_mean_of_included_test_votes(db, study, start_rater, complete_session) -> None:
    _run_study(study, start_rater, complete_session, careful=2, straight=0)
    study_row = db.scalar(select(Study))
    votes = [
        int(r.value)
        for r in load_answer_records(db, study_row)
        if r.item_kind == ItemKind.TEST and r.question == "quality"
    ]
    summary = build_summary(db, study_row, bootstrap_replicates=200)
    assert summary["mos"]["overall"]["mean"] == sum(votes) / len(votes)


def test_attention_failure_excludes_a_rater(db, study, start_rater, complete_session) -> None:
    def inattentive(kind: str, questions: list[str], html: str) -> dict[str, str]:
        answers = careful_answers(kind, questions, html)
        if kind == "attention":
            answers["quality"] = str(int(answers["quality"]) % 5 + 1)
        return answers

    _run_study(study, start_rater, complete_session, careful=1, straight=0)
    client, token, csrf = start_rater(study)
    complete_session(client, token, csrf, inattentive)
    summary = build_summary(db, db.scalar(select(Study)), bootstrap_replicates=200)
    assert [entry["reasons"] for entry in summary["screening"]["excluded"]] == [[SCREENING_RULES["attention"]]]


def test_speeders_are_excluded_and_the_rule_is_stated(db, study, start_rater, complete_session) -> None:
    """A rater who answers every page at 300 ms fails the speeding rule, however careful the answers look."""
    _run_study(study, start_rater, complete_session, careful=1, straight=0)
    client, token, csrf = start_rater(study)
    complete_session(client, token, csrf, careful_answers, rt_ms="300")
    summary = build_summary(db, db.scalar(select(Study)), bootstrap_replicates=200)
    [excluded] = summary["screening"]["excluded"]
    assert excluded["rules"] == ["speeding"]
    assert summary["screening"]["excluded_by_rule"]["speeding"] == 1
    assert "1000 ms" in summary["screening"]["rules"]["speeding"]
    assert summary["raters"]["included"] == 1


def test_lineup_answers_are_scored_by_the_identity_of_the_chosen_photo(db, study, start_rater, complete_session):
    _run_study(study, start_rater, complete_session, careful=2, straight=0)
    study_row = db.scalar(select(Study))
    records = [r for r in load_answer_records(db, study_row) if r.item_kind == ItemKind.LINEUP]
    images = {image.id: image for image in db.scalars(select(Image))}
    for record in records:
        trial = db.get(Trial, record.trial_id)
        chosen = images[trial.display_image_ids[int(record.value)]]
        assert record.lineup_correct == (chosen.identity == record.identity)
        targets = [image for image in trial.display_image_ids[1:] if images[image].identity == record.identity]
        assert len(targets) == 1 and len(trial.display_image_ids) == 1 + study_row.lineup_size


def test_exports_follow_the_codebook(db, study, start_rater, complete_session) -> None:
    _run_study(study, start_rater, complete_session, careful=2, straight=1)
    files = export_files(db, db.scalar(select(Study)), bootstrap_replicates=200)
    answers = list(csv.DictReader(io.StringIO(files["answers.csv"])))
    assert list(answers[0]) == list(ANSWER_COLUMNS)
    assert len(answers) == len(db.scalars(select(Answer)).all())
    assert {row["rater_excluded"] for row in answers} == {"True", "False"}
    assert all(row["server_rt_ms"] != "" for row in answers)
    raters = list(csv.DictReader(io.StringIO(files["raters.csv"])))
    assert list(raters[0]) == list(RATER_COLUMNS) and len(raters) == 3
    bundle = json.loads(files["export.json"])
    assert bundle["codebook"] == json.loads(files["codebook.json"]) and len(bundle["answers"]) == len(answers)
    assert "platform_pid" not in answers[0]
    assert json.loads(files["results_summary.json"])["raters"]["included"] == 2
    markdown = files["results_summary.md"]
    assert "| all | 8 | 2 |" in markdown and "Krippendorff" in markdown and "Lineup:" in markdown
    assert "| Identity |" in markdown and "| Control pairs (anchors) |" in markdown
    assert "- variance of quality ratings below 0.1" in markdown and "Wilson" in markdown
