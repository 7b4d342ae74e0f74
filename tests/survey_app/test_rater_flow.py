import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from survey_app import csrf as csrf_cookie
from survey_app.models import Answer, ItemKind, Platform, Rater, Trial
from survey_app.rater_sessions import (
    TrialNotOpen,
    find_rater_and_current_trial,
    record_answers,
)
from tests.survey_app.robot import START_NONCE

from .conftest import QUESTION, TRIAL_ACTION, csrf_from, open_trial, trial_kind

JSON = {"Accept": "application/json"}


def test_consent_instructions_tasks_trials_and_completion_code(app, db, study, start_rater, complete_session) -> None:
    client, token, csrf = start_rater(study)
    instructions = client.get(f"/r/{token}/instructions")
    assert instructions.status_code == 200
    assert f"/r/{token}/trial" in instructions.text and "Who is it?" in instructions.text
    first = client.get(f"/r/{token}/trial")
    assert first.headers["Location"].endswith(f"/r/{token}/tasks/lineup")
    lineup_task = client.get(first.headers["Location"])
    assert "Worked example" in lineup_task.text and "Answer: Person 2" in lineup_task.text
    for name in ("generated", "same", "other1", "other2"):
        assert client.get(f"/r/{token}/examples/{name}").status_code == 200
    assert client.get(f"/r/{token}/examples/nothing").status_code == 404
    assert client.get(f"/r/{token}/done").headers["Location"].endswith("/trial")
    kinds = complete_session(client, token, csrf)
    assert Counter(kinds) == {"test": 4, "lineup": 4, "attention": 1, "control_same": 1, "control_different": 1}
    assert kinds[:4] == ["lineup"] * 4
    done = client.get(f"/r/{token}/done")
    rater = db.scalar(select(Rater))
    assert rater.completed_at is not None and rater.consent_version == "1" and rater.viewport == "1280x800"
    assert re.search(r'id="completion-code">([0-9A-F]{10})<', done.text).group(1) == rater.completion_code
    assert "prolific" not in done.text.lower()
    assert "send it to the person who invited you" in done.text


def test_each_task_has_its_instructions_before_its_first_trial(app, study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    seen = []
    for _ in range(11):
        page = client.get(f"/r/{token}/trial")
        if page.status_code == 302:
            seen.append(page.headers["Location"].rsplit("/", 1)[1])
            task = client.get(page.headers["Location"])
            assert task.status_code == 200 and 'id="start-task"' in task.text
            page = client.get(f"/r/{token}/trial?intro=done")
        kind = trial_kind(app, page.text)
        answers = {question: "1" for question in QUESTION.findall(page.text)}
        answers |= {"recognition": "no"} if "recognition" in answers else {}
        if kind == "attention":
            answers["quality"] = re.search(r"please select (\d)", page.text).group(1)
        posted = client.post(TRIAL_ACTION.search(page.text).group(1), data={"csrf_token": csrf, "next": "1"} | answers)
        assert posted.status_code == 302
    assert seen == ["lineup", "pairs"]
    pairs_task = client.get(f"/r/{token}/tasks/pairs").text
    assert pairs_task.count("Quality: <strong>") == 3 and "5 Identical" in pairs_task and "1 Bad" in pairs_task


def test_answers_can_change_until_next_and_are_final_after_it(db, study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    page = open_trial(client, token)
    action = TRIAL_ACTION.search(page.text).group(1)
    assert QUESTION.findall(page.text) == ["lineup"]
    first = client.post(action, data={"csrf_token": csrf, "lineup": "1", "rt_ms": "900"}, headers=JSON)
    changed = client.post(action, data={"csrf_token": csrf, "lineup": "2", "rt_ms": "1500"}, headers=JSON)
    retry = client.post(action, data={"csrf_token": csrf, "lineup": "2"}, headers=JSON)
    assert first.status_code == changed.status_code == retry.status_code == 200
    assert changed.json["answers"] == retry.json["answers"] == {"lineup": "2"}
    reloaded = open_trial(client, token)  # still the same trial, its answer shown
    assert TRIAL_ACTION.search(reloaded.text).group(1) == action
    assert re.search(r'value="2" data-key="2"\s+checked', reloaded.text)
    stored = db.scalar(select(Answer))
    assert (stored.value, stored.changes, stored.client_rt_ms) == ("2", 1, 1500)
    db.commit()
    moved = client.post(action, data={"csrf_token": csrf, "next": "1"})
    assert moved.status_code == 302
    again = client.post(action, data={"csrf_token": csrf, "lineup": "2", "next": "1"}, headers=JSON)  # a retry
    late = client.post(action, data={"csrf_token": csrf, "lineup": "3"}, headers=JSON)
    assert again.status_code == 200 and again.json["answers"] == {"lineup": "2"}
    assert late.status_code == 409 and "already gone past" in late.json["error"]
    assert db.scalar(select(Rater.trials_answered)) == 1


def test_next_needs_every_question_answered(app, db, study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    for _ in range(4):  # past the lineups
        page = open_trial(client, token)
        client.post(TRIAL_ACTION.search(page.text).group(1), data={"csrf_token": csrf, "lineup": "1", "next": "1"})
    while True:
        page = open_trial(client, token)
        if QUESTION.findall(page.text) == ["quality", "recognition"]:
            break
        quality = re.search(r"please select (\d)", page.text).group(1)
        client.post(TRIAL_ACTION.search(page.text).group(1), data={"csrf_token": csrf, "quality": quality, "next": "1"})
    action = TRIAL_ACTION.search(page.text).group(1)
    half = client.post(action, data={"csrf_token": csrf, "quality": "4", "next": "1"})
    assert half.status_code == 400 and "answer every question" in half.text
    assert "Traceback" not in half.text
    saved = client.post(action, data={"csrf_token": csrf, "recognition": "no"}, headers=JSON)
    assert saved.status_code == 200
    done = client.post(action, data={"csrf_token": csrf, "next": "1"})  # the answers saved before count
    assert done.status_code == 302
    stored = select(Answer.question, Answer.value).where(Answer.trial_id == action.split("/")[4])
    answers = dict(db.execute(stored).all())
    assert {question.value: value for question, value in answers.items()} == {"quality": "4", "recognition": "no"}


def test_resume_by_token_continues_where_the_rater_stopped(app, db, study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    page = open_trial(client, token)
    first_trial = TRIAL_ACTION.search(page.text).group(1)
    client.post(first_trial, data={"csrf_token": csrf, "lineup": "2", "next": "1"})
    other_browser = app.test_client()
    resumed = other_browser.get(f"/r/{token}/trial")
    assert resumed.status_code == 200
    assert TRIAL_ACTION.search(resumed.text).group(1) != first_trial
    assert "2 / 11" in resumed.text


def test_order_is_random_per_rater_and_the_pair_layout_is_fixed(db, study, start_rater) -> None:
    for _ in range(8):
        start_rater(study)
    raters = db.scalars(select(Rater)).all()
    orders = {tuple(trial.item_id for trial in rater.trials) for rater in raters}
    assert len(orders) > 1
    assert len({rater.seed for rater in raters}) == len(raters)
    for rater in raters:
        for trial in rater.trials:
            if trial.item.kind != ItemKind.LINEUP:
                assert trial.display_image_ids == [trial.item.reference_image_id, trial.item.probe_image_id]


def test_every_session_has_an_attention_check_and_both_controls(db, study, start_rater) -> None:
    for _ in range(5):
        start_rater(study)
    for rater in db.scalars(select(Rater)):
        kinds = Counter(trial.item.kind for trial in rater.trials)
        assert kinds[ItemKind.ATTENTION] == kinds[ItemKind.CONTROL_SAME] == kinds[ItemKind.CONTROL_DIFFERENT] == 1
        assert kinds[ItemKind.LINEUP] == rater.lineup_trials == 4


def test_assignment_fills_the_least_filled_items_first(db, study, start_rater) -> None:
    # 8 test pairs, 4 per session: two sessions cover every pair once, four sessions twice.
    for sessions in (2, 4):
        for _ in range(2):
            start_rater(study)
        fill = Counter(trial.item_id for trial in db.scalars(select(Trial)) if trial.item.kind == ItemKind.TEST)
        db.commit()  # SQLite transactions here hold the write lock: end the test's before the app writes
        assert len(fill) == 8 and set(fill.values()) == {sessions // 2}


def test_a_double_click_on_start_creates_one_rater(app, db, study) -> None:
    """The consent form sent twice (one after the other, or at once) gives the same personal link and one rater."""
    client = app.test_client()
    page = client.get(f"/s/{study}").text
    form = {
        "csrf_token": csrf_from(page),
        "consent": "agree",
        "consent_version": "1",
        "start_nonce": START_NONCE.search(page).group(1),
    }
    first = client.post(f"/s/{study}/start", data=form)
    second = client.post(f"/s/{study}/start", data=form)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    together = threading.Barrier(4)

    def send(_: int) -> str:
        browser = app.test_client()
        browser.set_cookie(csrf_cookie.COOKIE_NAME, client.get_cookie(csrf_cookie.COOKIE_NAME).value)
        together.wait()
        return browser.post(f"/s/{study}/start", data=form | {"start_nonce": "n" * 43}).headers["Location"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        locations = set(pool.map(send, range(4)))
    assert len(locations) == 1
    tampered = client.post(f"/s/{study}/start", data=form | {"start_nonce": "bad"})
    assert tampered.status_code == 400
    assert db.scalar(select(func.count()).select_from(Rater)) == 2


def test_prolific_parameters_are_stored_and_lead_to_the_study_code(db, study, start_rater, complete_session) -> None:
    query = "?PROLIFIC_PID=pid123&STUDY_ID=st1&SESSION_ID=se1"
    client, token, csrf = start_rater(study, query, PROLIFIC_PID="pid123", STUDY_ID="st1", SESSION_ID="se1")
    complete_session(client, token, csrf)
    done = client.get(f"/r/{token}/done").text
    code = re.search(r'id="completion-code">(\w+)<', done).group(1)
    rater = db.scalar(select(Rater))
    assert (rater.platform, rater.platform_pid, rater.platform_study_id) == (Platform.PROLIFIC, "pid123", "st1")
    assert f"https://app.prolific.com/submissions/complete?cc={code}" in done
    assert code != rater.completion_code


def test_the_same_platform_participant_cannot_start_twice(app, study, start_rater) -> None:
    start_rater(study, PROLIFIC_PID="twice")
    client = app.test_client()
    page = client.get(f"/s/{study}").text
    again = client.post(
        f"/s/{study}/start",
        data={
            "csrf_token": csrf_from(page),
            "consent": "agree",
            "consent_version": "1",
            "PROLIFIC_PID": "twice",
            "start_nonce": START_NONCE.search(page).group(1),
        },
    )
    assert again.status_code == 409 and "already started" in again.text


def test_mturk_preview_shows_no_consent_form_and_mturk_ids_are_kept(app, db, study, start_rater) -> None:
    preview = app.test_client().get(f"/s/{study}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=h1")
    assert preview.status_code == 200 and "preview" in preview.text and "consent-form" not in preview.text
    client, token, csrf = start_rater(
        study, "?workerId=w1&assignmentId=a1&hitId=h1", workerId="w1", assignmentId="a1", hitId="h1"
    )
    rater = db.scalar(select(Rater))
    assert (rater.platform, rater.platform_pid, rater.platform_session_id) == (Platform.MTURK, "w1", "a1")


def test_consent_is_required_and_must_match_the_current_version(app, study) -> None:
    client = app.test_client()
    page = client.get(f"/s/{study}").text
    form = {"csrf_token": csrf_from(page), "start_nonce": START_NONCE.search(page).group(1)}
    no_consent = client.post(f"/s/{study}/start", data=form | {"consent_version": "1"})
    old_version = client.post(f"/s/{study}/start", data=form | {"consent": "agree", "consent_version": "0"})
    assert (no_consent.status_code, old_version.status_code) == (400, 409)


def test_answers_to_a_later_trial_are_refused_until_it_is_current(db, study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    later = db.scalar(select(Rater)).trials[-1]
    question = "quality" if later.item.kind != ItemKind.LINEUP else "lineup"
    db.commit()
    response = client.post(f"/r/{token}/trials/{later.id}/answers", data={"csrf_token": csrf, question: "1"})
    assert response.status_code == 409


def test_a_save_racing_next_never_changes_an_answer_after_next(app, db, study, start_rater) -> None:
    """The page's script saves an answer while the rater presses Next (a fast click): whichever lands first, the
    stored answer is the one Next sent, and the rater moves on exactly once per trial."""
    client, token, csrf = start_rater(study)
    second_tab = app.test_client()
    second_tab.set_cookie(csrf_cookie.COOKIE_NAME, client.get_cookie(csrf_cookie.COOKIE_NAME).value)
    submitted = {}
    for _ in range(11):  # the study's trials per session
        page = open_trial(client, token)
        assert page.status_code == 200
        action, questions = TRIAL_ACTION.search(page.text).group(1), QUESTION.findall(page.text)
        final = {question: {"quality": "4", "recognition": "yes", "lineup": "2"}[question] for question in questions}
        stale = {questions[0]: "1"}
        together = threading.Barrier(2)

        def post(browser, form: dict, together=together, action=action) -> int:
            together.wait()
            return browser.post(action, data={"csrf_token": csrf} | form, headers=JSON).status_code

        with ThreadPoolExecutor(max_workers=2) as pool:
            statuses = list(pool.map(post, (client, second_tab), (final | {"next": "1"}, stale)))
        assert statuses[0] == 200 and statuses[1] in (200, 409)
        submitted[action.split("/")[4]] = final
    assert client.get(f"/r/{token}/trial").headers["Location"].endswith(f"/r/{token}/done")
    rater = db.scalar(select(Rater))
    assert rater.completed_at is not None and rater.trials_answered == rater.trials_total == 11
    stored = {}
    for trial_id, question, value in db.execute(select(Answer.trial_id, Answer.question, Answer.value)):
        stored.setdefault(trial_id, {})[question.value] = value
    assert stored == submitted


def test_a_save_that_read_the_trial_before_next_is_refused(app, db, study, start_rater) -> None:
    """A save whose request read the trial as current while another request pressed Next stores nothing."""
    client, token, csrf = start_rater(study)
    page = open_trial(client, token)
    action = TRIAL_ACTION.search(page.text).group(1)
    trial_id = action.split("/trials/")[1].split("/")[0]
    rater, stale = find_rater_and_current_trial(db, token)
    db.commit()
    moved = client.post(action, data={"csrf_token": csrf, "lineup": "1", "next": "1"})
    assert moved.status_code == 302
    assert record_answers(db, rater, stale, trial_id, {"lineup": "1"}, None, advance=False) == {"lineup": "1"}
    with pytest.raises(TrialNotOpen):
        record_answers(db, rater, stale, trial_id, {"lineup": "2"}, None, advance=False)
    assert db.execute(select(Answer.value, Answer.changes)).all() == [("1", 0)]
    assert db.scalar(select(Rater.trials_answered)) == 1
