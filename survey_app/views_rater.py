"""The rater's pages: consent -> instructions -> (per task: its instructions -> its trials) -> completion code.

Every lookup is scoped to the token. Nothing a rater's browser receives tells the kind of a trial or which image is
real: the trial page's markup is the same for tests and controls, images come by slot under the trial's random id,
all of a study's images have one pixel size and byte length (survey_app.study_builder), and they are served without
validators (ETag, Last-Modified) that could tell their age or identity.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
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
    rater_token,
    record_answers,
    show_current_trial,
    start_session,
    unmark_current_trial_shown,
)
from survey_app.web import commits_each_statement, db_session, wants_json

rater_blueprint = Blueprint("rater", __name__)

PLATFORM_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
VIEWPORT_PATTERN = re.compile(r"\d{2,5}x\d{2,5}")
MTURK_PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
PLATFORM_PARAMETERS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "assignmentId", "hitId")
START_NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
RT_MS_PATTERN = re.compile(r"\d{1,9}")
PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"
QUALITY_LABELS = {"5": "Identical", "4": "Good", "3": "Fair", "2": "Poor", "1": "Bad"}
RECOGNITION_LABELS = {"yes": "Yes", "no": "No", "not_sure": "Not sure"}
RECOGNITION_KEYS = {"yes": "y", "no": "n", "not_sure": "s"}
QUESTION_FIELDS = {question.value for question in Question}
NEXT_FIELD = "next"  # the Next button's name: the form sent by it ends the trial
ANSWER_FORM_FIELDS = {"csrf_token", "rt_ms", NEXT_FIELD, *QUESTION_FIELDS}
TASKS = ("lineup", "pairs")
RATER_TOKEN_KEY = "survey_rater_token_key"


def init_app(app: Flask) -> None:
    """The key of the raters' tokens, derived from SECRET_KEY."""
    secret_key = app.config["SECRET_KEY"]
    secret_key = secret_key if isinstance(secret_key, bytes) else secret_key.encode()
    app.extensions[RATER_TOKEN_KEY] = hmac.digest(secret_key, b"survey-app rater tokens", "sha256")


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
            abort(400, f"The link you followed has a malformed {name}: please open the study from your platform again.")
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
    """The study's consent page; its form carries a one-time nonce that the rater's token is derived from."""
    study = _study_or_404(slug)
    parameters = platform_parameters(request.args)
    if parameters.get("assignmentId") == MTURK_PREVIEW_ASSIGNMENT:
        return render_template("preview.html", study=study)
    return render_template(
        "consent.html", study=study, parameters=parameters, start_nonce=secrets.token_urlsafe(32)
    )


@rater_blueprint.post("/s/<slug>/start")
def start(slug: str):
    """Consent given: creates the rater (once per consent form, however often it is sent) and sends them on."""
    study = _study_or_404(slug)
    if request.form.get("consent") != "agree":
        abort(400, "Please tick the consent box to take part.")
    if request.form.get("consent_version") != study.consent_version:
        abort(409, "The consent text has changed; please reload the page and read it again.")
    nonce = request.form.get("start_nonce", "")
    if not START_NONCE_PATTERN.fullmatch(nonce):
        abort(400, "This form is out of date: please reload the page.")
    parameters = platform_parameters(request.form)
    if parameters.get("assignmentId") == MTURK_PREVIEW_ASSIGNMENT:
        abort(400, "Accept the HIT before starting.")
    viewport = request.form.get("viewport") or None
    if viewport is not None and not VIEWPORT_PATTERN.fullmatch(viewport):
        abort(400, "This form is out of date: please reload the page.")
    token = rater_token(current_app.extensions[RATER_TOKEN_KEY], nonce)
    db = db_session()
    try:
        start_session(db, study, platform_identity(parameters), request.user_agent.string, viewport, token)
    except DuplicateParticipant:
        db.rollback()
        abort(409, "You have already started this study. Please continue with the personal link you were given.")
    db.commit()
    return redirect(url_for("rater.instructions", token=token))


@rater_blueprint.get("/r/<token>/instructions")
@commits_each_statement
def instructions(token: str):
    """What the study holds, in which parts, and the personal link to resume it."""
    rater = _rater_or_404(token)
    return render_template(
        "instructions.html",
        token=token,
        lineup_trials=rater.lineup_trials,
        pair_trials=rater.trials_total - rater.lineup_trials,
        resume_url=url_for("rater.trial", token=token, _external=True),
    )


@rater_blueprint.get("/r/<token>/tasks/<task>")
@commits_each_statement
def task_instructions(token: str, task: str):
    """A task's instructions with worked examples and their answers, shown before the task's first trial."""
    rater = _rater_or_404(token)
    if task not in TASKS or (task == "lineup" and not rater.lineup_trials):
        abort(404)
    if not rater.completed:
        unmark_current_trial_shown(db_session(), rater)
        db_session().commit()
    examples = _examples(rater)
    lineup_size = db_session().get(Study, rater.study_id).lineup_size
    return render_template(
        f"task_{task}.html",
        token=token,
        examples=examples,
        example_urls={name: url_for("rater.example_image", token=token, name=name) for name in examples},
        lineup_options=[name for name in examples if name.startswith("other")][: max(lineup_size - 1, 1)],
        pages=rater.lineup_trials if task == "lineup" else rater.trials_total - rater.lineup_trials,
        part=1 if task == "lineup" or not rater.lineup_trials else 2,
        quality_labels=QUALITY_LABELS,
        recognition_labels=RECOGNITION_LABELS,
        start_url=url_for("rater.trial", token=token, intro="done"),
    )


def _examples(rater: RaterRef) -> dict[str, str]:
    """The worked examples' images by name: baseline, generated (from the baseline person's voice), same (another
    photo of that person), other1, other2, ... (photos of other people)."""
    items = db_session().scalars(
        select(Item)
        .where(Item.study_id == rater.study_id, Item.kind.in_(EXAMPLE_KINDS))
        .order_by(Item.id)
    ).all()
    examples: dict[str, str] = {}
    others = 0
    for item in items:
        if item.kind == ItemKind.EXAMPLE:
            examples |= {"baseline": item.reference_image_id, "generated": item.probe_image_id}
        elif item.kind == ItemKind.EXAMPLE_SAME:
            examples["same"] = item.probe_image_id
        else:
            others += 1
            examples[f"other{others}"] = item.probe_image_id
    return examples


EXAMPLE_KINDS = (ItemKind.EXAMPLE, ItemKind.EXAMPLE_SAME, ItemKind.EXAMPLE_DIFFERENT)


@rater_blueprint.get("/r/<token>/examples/<name>")
@commits_each_statement
def example_image(token: str, name: str):
    """One image of the worked examples."""
    image_id = _examples(_rater_or_404(token)).get(name)
    if image_id is None:
        abort(404)
    return _send_image(image_id)


@rater_blueprint.get("/r/<token>/trial")
@commits_each_statement
def trial(token: str):
    """The rater's current trial (its task's instructions first, before the task's first trial)."""
    db = db_session()
    found = show_current_trial(db, token)
    if found is None:
        abort(404)
    rater, shown = found
    db.commit()  # before rendering: on SQLite the transaction holds the write lock
    if shown is None:
        return redirect(url_for("rater.done", token=token))
    if rater.starts_a_block(shown.kind) and not shown.answers and request.args.get("intro") != "done":
        task = "lineup" if shown.kind == ItemKind.LINEUP else "pairs"
        return redirect(url_for("rater.task_instructions", token=token, task=task))
    return render_template(
        "trial.html",
        token=token,
        trial=shown,
        lineup=shown.kind == ItemKind.LINEUP,
        slots=_slots(token, shown),
        questions=[question.value for question in shown.questions],
        answered={question.value: value for question, value in shown.answers.items()},
        attention_label=_attention_label(shown),
        done=rater.trials_answered,
        total=rater.trials_total,
        last=rater.trials_answered + 1 == rater.trials_total,
        quality_labels=QUALITY_LABELS,
        recognition_labels=RECOGNITION_LABELS,
        recognition_keys=RECOGNITION_KEYS,
    )


def _slots(token: str, shown: TrialView) -> list[dict[str, str]]:
    """Image URLs in display order with the role the rater is told (never real/generated for the probe of a pair):
    pairs always show the baseline photo first (left) and the image to judge second (right)."""
    slots = []
    for slot, _image_id in enumerate(shown.display_image_ids):
        if shown.kind == ItemKind.LINEUP:
            role = "Generated face" if slot == 0 else f"Person {slot}"
        else:
            role = "Baseline photo" if slot == 0 else "Image to judge"
        slots.append({"role": role, "url": url_for("rater.trial_image", token=token, trial_id=shown.id, slot=slot)})
    return slots


def _attention_label(shown: TrialView) -> str | None:
    if shown.kind != ItemKind.ATTENTION:
        return None
    return f"{shown.expected_quality} ({QUALITY_LABELS[str(shown.expected_quality)]})"


@rater_blueprint.post("/r/<token>/trials/<trial_id>/answers")
@commits_each_statement
def answer(token: str, trial_id: str):
    """Saves the answers given (the page's script sends each one as it is given; they can be changed until Next);
    the form sent by the Next button also ends the trial. JSON reply for scripts, else a redirect to the next page."""
    if set(request.form) - ANSWER_FORM_FIELDS or request.files:
        abort(400, "This page sent something unexpected: please reload it.")
    if any(len(values) > 1 for values in request.form.listvalues()):
        abort(400, "This page sent something unexpected: please reload it.")
    submitted = {name: value for name, value in request.form.items() if name in QUESTION_FIELDS}
    raw_rt = request.form.get("rt_ms") or None
    if raw_rt is not None and not RT_MS_PATTERN.fullmatch(raw_rt):
        abort(400, "This page sent a time we cannot read: please reload it.")
    db = db_session()
    found = find_rater_and_current_trial(db, token)
    if found is None:
        abort(404)
    try:
        stored = record_answers(
            db, *found, trial_id, submitted, int(raw_rt) if raw_rt else None, NEXT_FIELD in request.form
        )
    except TrialNotFound:
        abort(404)
    except TrialNotOpen:
        abort(409, "You have already gone past this page, so its answers cannot change now.")
    except InvalidAnswer as error:
        abort(400, str(error))
    next_url = url_for("rater.trial", token=token)
    if wants_json():
        return jsonify(answers=stored, next=next_url)
    return redirect(next_url)


@rater_blueprint.get("/r/<token>/trials/<trial_id>/images/<int:slot>")
@commits_each_statement
def trial_image(token: str, trial_id: str, slot: int):
    """The image in display slot `slot` of one of the rater's trials."""
    rater = _rater_or_404(token)
    try:
        shown = find_trial(db_session(), rater, trial_id)
    except TrialNotFound:
        abort(404)
    if slot >= len(shown.display_image_ids):
        abort(404)
    return _send_image(shown.display_image_ids[slot])


def _send_image(image_id: str) -> Response:
    """The stored PNG, cacheable by this browser only, without ETag or Last-Modified (whose values differ between
    images and could tell them apart)."""
    image = db_session().get(Image, image_id)
    if image is None:
        abort(404)
    path = current_app.config["SURVEY_IMAGE_STORE"] / f"{image.id}.png"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        abort(404)
    response = Response(data, mimetype="image/png")
    response.cache_control.private = True
    response.cache_control.max_age = 3600
    return response


@rater_blueprint.get("/r/<token>/done")
@commits_each_statement
def done(token: str):
    """The completion code, and what to do with it for the platform the rater came from."""
    rater = _rater_or_404(token)
    if not rater.completed:
        return redirect(url_for("rater.trial", token=token))
    study = db_session().get(Study, rater.study_id)
    if rater.platform == Platform.PROLIFIC:
        code = study.completion_code
        return_url = PROLIFIC_COMPLETION_URL.format(code=code)
    else:
        code, return_url = rater.completion_code, None
    return render_template(
        "done.html", study=study, code=code, return_url=return_url, platform=rater.platform.value
    )
