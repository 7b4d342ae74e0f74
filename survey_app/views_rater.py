"""The rater's pages: consent -> instructions -> trials -> completion code. Every lookup is scoped to the token."""

from __future__ import annotations

import re
from collections.abc import Mapping

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from sqlalchemy import select

from survey_app.models import (
    Image,
    Item,
    ItemKind,
    Platform,
    Question,
    Study,
)
from survey_app.rater_sessions import (
    DuplicateParticipant,
    InvalidAnswer,
    PlatformIdentity,
    RaterRef,
    TrialNotFound,
    TrialNotOpen,
    TrialView,
    find_rater,
    find_rater_and_current_trial,
    find_trial,
    record_answers,
    show_current_trial,
    start_session,
)
from survey_app.web import commits_each_statement, db_session, wants_json

rater_blueprint = Blueprint("rater", __name__)

PLATFORM_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
VIEWPORT_PATTERN = re.compile(r"\d{2,5}x\d{2,5}")
MTURK_PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
PLATFORM_PARAMETERS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "assignmentId", "hitId")
PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"
QUALITY_LABELS = {"5": "Identical", "4": "Good", "3": "Fair", "2": "Poor", "1": "Bad"}
RECOGNITION_LABELS = {"yes": "Yes", "no": "No", "not_sure": "Not sure"}
RECOGNITION_KEYS = {"yes": "y", "no": "n", "not_sure": "s"}
QUESTION_FIELDS = {question.value for question in Question}
ANSWER_FORM_FIELDS = {"csrf_token", "rt_ms", *QUESTION_FIELDS}


def _study_or_404(slug: str) -> Study:
    study = db_session().scalar(select(Study).where(Study.slug == slug))
    if study is None:
        abort(404)
    return study


def _rater_or_404(token: str) -> RaterRef:
    rater = find_rater(db_session(), token)
    if rater is None:
        abort(404)
    return rater


def platform_parameters(source: Mapping[str, str]) -> dict[str, str]:
    """The recruitment platform's URL parameters that are present; 400 on any malformed one."""
    present = {name: source[name] for name in PLATFORM_PARAMETERS if source.get(name)}
    for name, value in present.items():
        if value != MTURK_PREVIEW_ASSIGNMENT and not PLATFORM_ID_PATTERN.fullmatch(value):
            abort(400, f"malformed {name}")
    return present


def platform_identity(parameters: Mapping[str, str]) -> PlatformIdentity:
    if "PROLIFIC_PID" in parameters:
        return PlatformIdentity(
            Platform.PROLIFIC, parameters["PROLIFIC_PID"], parameters.get("STUDY_ID"), parameters.get("SESSION_ID")
        )
    if "workerId" in parameters:
        return PlatformIdentity(
            Platform.MTURK, parameters["workerId"], parameters.get("hitId"), parameters.get("assignmentId")
        )
    return PlatformIdentity(Platform.DIRECT)


@rater_blueprint.get("/s/<slug>")
@commits_each_statement
def landing(slug: str):
    study = _study_or_404(slug)
    parameters = platform_parameters(request.args)
    if parameters.get("assignmentId") == MTURK_PREVIEW_ASSIGNMENT:
        return render_template("preview.html", study=study)
    return render_template("consent.html", study=study, parameters=parameters)


@rater_blueprint.post("/s/<slug>/start")
def start(slug: str):
    study = _study_or_404(slug)
    if request.form.get("consent") != "agree":
        abort(400, "Please tick the consent box to take part.")
    if request.form.get("consent_version") != study.consent_version:
        abort(409, "The consent text has changed; please reload the page and read it again.")
    parameters = platform_parameters(request.form)
    if parameters.get("assignmentId") == MTURK_PREVIEW_ASSIGNMENT:
        abort(400, "Accept the HIT before starting.")
    viewport = request.form.get("viewport") or None
    if viewport is not None and not VIEWPORT_PATTERN.fullmatch(viewport):
        abort(400, "malformed viewport")
    db = db_session()
    try:
        token = start_session(db, study, platform_identity(parameters), request.user_agent.string, viewport)
    except DuplicateParticipant:
        db.rollback()
        abort(409, "You have already started this study. Please continue with the personal link you were given.")
    db.commit()
    return redirect(url_for("rater.instructions", token=token))


@rater_blueprint.get("/r/<token>/instructions")
@commits_each_statement
def instructions(token: str):
    rater = _rater_or_404(token)
    example = _example_item(rater)
    return render_template(
        "instructions.html",
        token=token,
        has_example=example is not None,
        resume_url=url_for("rater.trial", token=token, _external=True),
        quality_labels=QUALITY_LABELS,
    )


def _example_item(rater: RaterRef) -> Item | None:
    return db_session().scalar(select(Item).where(Item.study_id == rater.study_id, Item.kind == ItemKind.EXAMPLE))


@rater_blueprint.get("/r/<token>/example/<int:slot>")
@commits_each_statement
def example_image(token: str, slot: int):
    rater = _rater_or_404(token)
    example = _example_item(rater)
    if example is None or slot not in (0, 1):
        abort(404)
    return _send_image((example.reference_image_id, example.probe_image_id)[slot])


@rater_blueprint.get("/r/<token>/trial")
@commits_each_statement
def trial(token: str):
    db = db_session()
    found = show_current_trial(db, token)
    if found is None:
        abort(404)
    rater, shown = found
    db.commit()  # before rendering: on SQLite the transaction holds the write lock
    if shown is None:
        return redirect(url_for("rater.done", token=token))
    return render_template(
        "trial.html",
        token=token,
        trial=shown,
        kind=shown.kind.value,
        slots=_slots(token, shown),
        questions=[question.value for question in shown.questions],
        answered={question.value: value for question, value in shown.answers.items()},
        attention_label=_attention_label(shown),
        done=rater.trials_answered,
        total=rater.trials_total,
        quality_labels=QUALITY_LABELS,
        recognition_labels=RECOGNITION_LABELS,
        recognition_keys=RECOGNITION_KEYS,
    )


def _slots(token: str, shown: TrialView) -> list[dict[str, str]]:
    """Image URLs in display order with the role the rater is told (never real/generated for the probe of a pair)."""
    slots = []
    for slot, image_id in enumerate(shown.display_image_ids):
        if shown.kind == ItemKind.LINEUP:
            role = "Generated face" if slot == 0 else f"Person {slot}"
        else:
            role = "Baseline photo" if image_id == shown.reference_image_id else "Image to judge"
        slots.append({"role": role, "url": url_for("rater.trial_image", token=token, trial_id=shown.id, slot=slot)})
    return slots


def _attention_label(shown: TrialView) -> str | None:
    if shown.kind != ItemKind.ATTENTION:
        return None
    return f"{shown.expected_quality} ({QUALITY_LABELS[str(shown.expected_quality)]})"


@rater_blueprint.post("/r/<token>/trials/<trial_id>/answers")
@commits_each_statement
def answer(token: str, trial_id: str):
    if set(request.form) - ANSWER_FORM_FIELDS or request.files:
        abort(400, "unexpected field")
    if any(len(values) > 1 for values in request.form.listvalues()):
        abort(400, "repeated field")
    submitted = {name: value for name, value in request.form.items() if name in QUESTION_FIELDS}
    db = db_session()
    found = find_rater_and_current_trial(db, token)
    if found is None:
        abort(404)
    try:
        client_rt_ms = int(request.form["rt_ms"]) if request.form.get("rt_ms") else None
        stored = record_answers(db, *found, trial_id, submitted, client_rt_ms)
    except TrialNotFound:
        abort(404)
    except TrialNotOpen:
        abort(409, "This is not your current trial.")
    except (InvalidAnswer, ValueError) as error:
        abort(400, str(error))
    next_url = url_for("rater.trial", token=token)
    if wants_json():
        return jsonify(answers=stored, next=next_url)
    return redirect(next_url)


@rater_blueprint.get("/r/<token>/trials/<trial_id>/images/<int:slot>")
@commits_each_statement
def trial_image(token: str, trial_id: str, slot: int):
    rater = _rater_or_404(token)
    try:
        shown = find_trial(db_session(), rater, trial_id)
    except TrialNotFound:
        abort(404)
    if slot >= len(shown.display_image_ids):
        abort(404)
    return _send_image(shown.display_image_ids[slot])


def _send_image(image_id: str):
    image = db_session().get(Image, image_id)
    if image is None:
        abort(404)
    response = send_from_directory(
        current_app.config["SURVEY_IMAGE_STORE"], f"{image.id}.png", mimetype="image/png", max_age=3600
    )
    response.cache_control.public = False
    response.cache_control.private = True
    return response


@rater_blueprint.get("/r/<token>/done")
@commits_each_statement
def done(token: str):
    rater = _rater_or_404(token)
    if not rater.completed:
        return redirect(url_for("rater.trial", token=token))
    study = db_session().get(Study, rater.study_id)
    if rater.platform == Platform.PROLIFIC:
        code = study.completion_code
        return_url = PROLIFIC_COMPLETION_URL.format(code=code)
    else:
        code, return_url = rater.completion_code, None
    return render_template("done.html", study=study, code=code, return_url=return_url)
