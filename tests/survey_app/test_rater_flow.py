import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from survey_app import csrf as csrf_cookie
from survey_app.models import Answer, ItemKind, Platform, Rater, Trial
from survey_app.rater_sessions import find_rater_and_current_trial, record_answers

from .conftest import QUESTION, TRIAL_ACTION, TRIAL_KIND


def test_consent_instructions_trials_and_completion_code(app, db, study, start_rater, complete_session) -> None:
    client, token, csrf = start_rater(study)
    instructions = client.get(f"/r/{token}/instructions")
    assert instructions.status_code == 200
    assert f"/r/{token}/trial" in instructions.text and "Worked example" in instructions.text
    assert client.get(f"/r/{token}/example/0").status_code == 200
    assert client.get(f"/r/{token}/done").headers["Location"].endswith("/trial")
    kinds = complete_session(client, token, csrf)
    assert Counter(kinds) == {"test": 4, "lineup": 4, "attention": 1, "control_same": 1, "control_different": 1}
    assert kinds[:4] == ["lineup"] * 4
    done = client.get(f"/r/{token}/done")
    rater = db.scalar(select(Rater))
    assert rater.completed_at is not None and rater.consent_version == "1" and rater.viewport == "1280x800"
    assert re.search(r'id="completion-code">([0-9A-F]{10})<', done.text).group(1) == rater.completion_code
    assert "prolific" not in done.text.lower()


def test_answers_are_idempotent_and_the_first_answer_stands(db, study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    page = client.get(f"/r/{token}/trial")
    action = TRIAL_ACTION.search(page.text).group(1)
    question = QUESTION.findall(page.text)[0]
    value = "1" if question in ("quality", "lineup") else "yes"
    headers = {"Accept": "application/json"}
    first = client.post(action, data={"csrf_token": csrf, question: value, "rt_ms": "900"}, headers=headers)
    retry = client.post(action, data={"csrf_token": csrf, question: value}, headers=headers)
    changed = client.post(action, data={"csrf_token": csrf, question: "2"}, headers=headers)
    assert first.status_code == retry.status_code == changed.status_code == 200
    assert first.json["answers"] == retry.json["answers"] == changed.json["answers"] == {question: value}
    stored = db.scalars(select(Answer)).all()
    assert len(stored) == 1 and stored[0].client_rt_ms == 900


def test_resume_by_token_continues_where_the_rater_stopped(app, db, study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    page = client.get(f"/r/{token}/trial")
    first_trial = TRIAL_ACTION.search(page.text).group(1)
    values = {"quality": "4", "recognition": "no", "lineup": "2"}
    client.post(first_trial, data={"csrf_token": csrf} | {q: values[q] for q in QUESTION.findall(page.text)})
    other_browser = app.test_client()
    resumed = other_browser.get(f"/r/{token}/trial")
    assert resumed.status_code == 200
    assert TRIAL_ACTION.search(resumed.text).group(1) != first_trial
    assert "2 / 11" in resumed.text


def test_order_is_randomised_per_rater_with_a_stored_seed_and_left_right_balanced(db, study, start_rater) -> None:
    for _ in range(12):
        start_rater(study)
    raters = db.scalars(select(Rater)).all()
    orders = {tuple(trial.item_id for trial in rater.trials) for rater in raters}
    assert len(orders) > 1
    assert len({rater.seed for rater in raters}) == len(raters)
    reference_left = Counter(
        trial.display_image_ids[0] == trial.item.reference_image_id
        for rater in raters
        for trial in rater.trials
        if trial.item.kind != ItemKind.LINEUP
    )
    assert reference_left[True] > 10 and reference_left[False] > 10


def test_every_session_has_an_attention_check_and_both_controls(db, study, start_rater) -> None:
    for _ in range(5):
        start_rater(study)
    for rater in db.scalars(select(Rater)):
        kinds = Counter(trial.item.kind for trial in rater.trials)
        assert kinds[ItemKind.ATTENTION] == kinds[ItemKind.CONTROL_SAME] == kinds[ItemKind.CONTROL_DIFFERENT] == 1


def test_assignment_fills_the_least_filled_items_first(db, study, start_rater) -> None:
    # 8 test pairs, 4 per session: two sessions cover every pair once, four sessions twice.
    for sessions in (2, 4):
        for _ in range(2):
            start_rater(study)
        fill = Counter(trial.item_id for trial in db.scalars(select(Trial)) if trial.item.kind == ItemKind.TEST)
        db.commit()  # SQLite transactions here hold the write lock: end the test's before the app writes
        assert len(fill) == 8 and set(fill.values()) == {sessions // 2}


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
    csrf = re.search(r'csrf-token" content="([^"]+)"', client.get(f"/s/{study}").text).group(1)
    again = client.post(
        f"/s/{study}/start",
        data={"csrf_token": csrf, "consent": "agree", "consent_version": "1", "PROLIFIC_PID": "twice"},
    )
    assert again.status_code == 409 and "already started" in again.text


def test_mturk_preview_shows_no_consent_form_and_mturk_ids_are_kept(app, db, study, start_rater) -> None:
    preview = app.test_client().get(f"/s/{study}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=h1")
    assert preview.status_code == 200 and "preview" in preview.text and "consent-form" not in preview.text
    start_rater(study, "?workerId=w1&assignmentId=a1&hitId=h1", workerId="w1", assignmentId="a1", hitId="h1")
    rater = db.scalar(select(Rater))
    assert (rater.platform, rater.platform_pid, rater.platform_session_id) == (Platform.MTURK, "w1", "a1")


def test_consent_is_required_and_must_match_the_current_version(app, study) -> None:
    client = app.test_client()
    csrf = re.search(r'csrf-token" content="([^"]+)"', client.get(f"/s/{study}").text).group(1)
    no_consent = client.post(f"/s/{study}/start", data={"csrf_token": csrf, "consent_version": "1"})
    old_version = client.post(
        f"/s/{study}/start", data={"csrf_token": csrf, "consent": "agree", "consent_version": "0"}
    )
    assert (no_consent.status_code, old_version.status_code) == (400, 409)


def test_answers_to_a_later_trial_are_refused_until_it_is_current(db, study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    later = db.scalar(select(Rater)).trials[-1]
    question = "quality" if later.item.kind != ItemKind.LINEUP else "lineup"
    db.commit()
    response = client.post(f"/r/{token}/trials/{later.id}/answers", data={"csrf_token": csrf, question: "1"})
    assert response.status_code == 409


def test_the_trial_page_offers_keyboard_shortcuts_and_a_mobile_viewport(study, start_rater) -> None:
    client, token, _ = start_rater(study)
    page = client.get(f"/r/{token}/trial").text
    assert 'name="viewport" content="width=device-width' in page
    assert 'data-key="1"' in page and TRIAL_KIND.search(page)


def test_the_questions_of_a_trial_saved_at_the_same_moment_move_the_rater_on(app, db, study, start_rater) -> None:
    """The page's script saves each question as it is answered: two saves of one trial can race (a fast keyboard).
    Whichever lands second must see the first, so the rater moves on to the next trial and completes."""
    client, token, csrf = start_rater(study)
    second_tab = app.test_client()
    second_tab.set_cookie(csrf_cookie.COOKIE_NAME, client.get_cookie(csrf_cookie.COOKIE_NAME).value)
    values = {"quality": "3", "recognition": "yes", "lineup": "1"}
    raced = 0
    for _ in range(11):  # the study's trials per session
        page = client.get(f"/r/{token}/trial")
        assert page.status_code == 200
        action, questions = TRIAL_ACTION.search(page.text).group(1), QUESTION.findall(page.text)
        if TRIAL_KIND.search(page.text).group(1) == "attention":
            values["quality"] = re.search(r"please select (\d)", page.text).group(1)
        together = threading.Barrier(len(questions))

        def save(browser, question: str) -> int:
            together.wait()
            form = {"csrf_token": csrf, question: values[question]}
            return browser.post(action, data=form, headers={"Accept": "application/json"}).status_code

        with ThreadPoolExecutor(max_workers=2) as pool:
            statuses = list(pool.map(save, (client, second_tab), questions))
        assert statuses == [200] * len(questions)
        raced += len(questions) == 2
    assert raced == 6  # 4 test trials, 2 controls
    assert client.get(f"/r/{token}/trial").headers["Location"].endswith(f"/r/{token}/done")
    rater = db.scalar(select(Rater))
    assert rater.completed_at is not None and rater.trials_answered == rater.trials_total == 11


def test_a_save_that_read_the_trial_before_another_save_gets_the_first_answer_back(app, db, study, start_rater):
    """Two saves of the same question at once: both read the trial before either stored; the one that stores second
    stores nothing, counts nothing and answers with the value stored first."""
    client, token, csrf = start_rater(study)
    page = client.get(f"/r/{token}/trial").text
    action, question = TRIAL_ACTION.search(page).group(1), QUESTION.findall(page)[0]
    trial_id = action.split("/trials/")[1].split("/")[0]
    rater, stale = find_rater_and_current_trial(db, token)
    db.commit()
    first = client.post(action, data={"csrf_token": csrf, question: "1"}, headers={"Accept": "application/json"})
    assert first.json["answers"] == {question: "1"}
    assert record_answers(db, rater, stale, trial_id, {question: "2"}, None) == {question: "1"}
    assert db.scalar(select(func.count()).select_from(Answer)) == 1
    progress = db.execute(select(Rater.trials_answered, Rater.current_trial_answers)).one()
    assert tuple(progress) == ((1, 0) if question == "lineup" else (0, 1))
