"""Admin dashboard behind a login: studies, progress, results, power planner, exports.

Logins are Flask-Login sessions in Flask's signed cookie: they expire after SURVEY_ADMIN_IDLE_MINUTES without a
request and SURVEY_ADMIN_MAX_HOURS after login, and the user id in the cookie carries the admin's session generation,
which logging out and changing the password increment, so that every earlier cookie of that admin stops working at
once. Login attempts are throttled per account and per address (survey_app.throttle).
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from survey_app import csrf, stats, throttle
from survey_app.export import export_files
from survey_app.models import Admin, Answer, Item, ItemKind, Question, Rater, Study, StudyKind, Trial
from survey_app.rater_sessions import QUESTIONS_BY_KIND
from survey_app.results import build_summary
from survey_app.study_kinds import MAIN_ITEM_KIND
from survey_app.web import db_session

admin_blueprint = Blueprint("admin", __name__)

EXPORT_TYPES = {
    "answers.csv": "text/csv",
    "raters.csv": "text/csv",
    "codebook.json": "application/json",
    "export.json": "application/json",
    "results_summary.json": "application/json",
    "results_summary.md": "text/markdown",
}
MIN_PASSWORD_LENGTH = 12
LOGIN_AT = "admin_login_at"
# Checked when the username is unknown, so a failed login takes as long either way.
_UNKNOWN_USER_HASH = generate_password_hash("no such admin")


def init_app(app: Flask) -> None:
    """Flask-Login for the admin pages, session lifetimes, and the login throttle (on the app's database)."""
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(minutes=app.config["SURVEY_ADMIN_IDLE_MINUTES"]))
    login_manager = LoginManager()
    login_manager.login_view = "admin.login"
    login_manager.login_message = "Please log in."
    login_manager.session_protection = "strong"
    login_manager.user_loader(load_admin)
    login_manager.unauthorized_handler(lambda: redirect(url_for("admin.login")))
    login_manager.init_app(app, add_context_processor=False)  # the raters' pages never need current_user
    limiter = throttle.create_limiter(app, app.extensions["survey_engine"])
    view = app.view_functions["admin.login"]
    view = limiter.limit(
        app.config["SURVEY_LOGIN_LIMIT_PER_ADDRESS"],
        methods=["POST"],
        error_message="Too many login attempts from this address. Please wait a few minutes and try again.",
    )(view)
    view = limiter.limit(
        app.config["SURVEY_LOGIN_LIMIT_PER_ACCOUNT"],
        key_func=throttle.login_account,
        methods=["POST"],
        error_message="Too many login attempts for this account. Please wait a few minutes and try again.",
    )(view)
    app.view_functions["admin.login"] = view


def load_admin(user_id: str) -> Admin | None:
    """Flask-Login's loader: the admin of the cookie's `ID.GENERATION`, if that generation is still current and the
    login is younger than SURVEY_ADMIN_MAX_HOURS."""
    admin_id, _, generation = user_id.partition(".")
    if not (admin_id.isdigit() and generation.isdigit()):
        return None
    login_at = session.get(LOGIN_AT)
    max_age_s = current_app.config["SURVEY_ADMIN_MAX_HOURS"] * 3600
    if not isinstance(login_at, (int, float)) or not 0 <= time.time() - login_at <= max_age_s:
        return None
    admin = db_session().get(Admin, int(admin_id))
    if admin is None or admin.session_generation != int(generation):
        return None
    return admin


def end_other_sessions(admin: Admin) -> None:
    """Every session cookie issued to `admin` so far stops working."""
    admin.session_generation += 1


@admin_blueprint.route("/login", methods=["GET", "POST"])
def login():
    """The login form; a good password starts a session (new CSRF secret, new cookie). 401: wrong name or password;
    429: too many attempts from this address; 400: no valid CSRF token."""
    if request.method == "GET":
        return render_template("admin/login.html", failed=False)
    username = request.form.get("username", "")[:64]
    db = db_session()
    admin = db.scalar(select(Admin).where(Admin.username == username))
    password = request.form.get("password", "")[:256]
    valid = check_password_hash(admin.password_hash if admin else _UNKNOWN_USER_HASH, password)
    if admin is None or not valid:
        return render_template("admin/login.html", failed=True), 401
    _start_session(admin)
    return redirect(url_for("admin.index"))


def _start_session(admin: Admin) -> None:
    session.clear()
    session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME without a request
    session[LOGIN_AT] = time.time()
    login_user(admin)
    csrf.renew_secret()


@admin_blueprint.post("/logout")
@login_required
def logout():
    """Ends this session and every other session of this admin. Not logged in: to the login page; 400: no CSRF token."""
    admin = db_session().merge(current_user._get_current_object())
    end_other_sessions(admin)
    db_session().commit()
    logout_user()
    session.clear()
    return redirect(url_for("admin.login"))


@admin_blueprint.route("/password", methods=["GET", "POST"])
@login_required
def change_password():
    """A new password; every other session of this admin ends, this one goes on. 400: wrong current password, too
    short, or the two new ones differ (the form again, saying which), or no CSRF token."""
    if request.method == "GET":
        return render_template("admin/password.html", error=None)
    db = db_session()
    admin = db.merge(current_user._get_current_object())
    new = request.form.get("new_password", "")[:256]
    error = None
    if not check_password_hash(admin.password_hash, request.form.get("current_password", "")[:256]):
        error = "The current password is wrong."
    elif len(new) < MIN_PASSWORD_LENGTH:
        error = f"The new password needs at least {MIN_PASSWORD_LENGTH} characters."
    elif new != request.form.get("confirm_password", ""):
        error = "The two new passwords differ."
    if error:
        return render_template("admin/password.html", error=error), 400
    admin.password_hash = generate_password_hash(new)
    end_other_sessions(admin)
    db.commit()
    _start_session(admin)
    return redirect(url_for("admin.index", password_changed=1))


@admin_blueprint.get("/")
@login_required
def index():
    """Every study with its rater link and progress. Not logged in: to the login page."""
    db = db_session()
    studies = db.scalars(select(Study).order_by(Study.created_at.desc())).all()
    counts = {
        study_id: (started, completed)
        for study_id, started, completed in db.execute(
            select(Rater.study_id, func.count(), func.count(Rater.completed_at)).group_by(Rater.study_id)
        )
    }
    return render_template("admin/index.html", studies=studies, counts=counts)


def _study_or_404(slug: str) -> Study:
    study = db_session().scalar(select(Study).where(Study.slug == slug))
    if study is None:
        abort(404)
    return study


def votes_per_test_item(study: Study) -> list[int]:
    """Answers per item of the study's measuring kind (test pairs: quality votes), sorted."""
    db = db_session()
    kind = MAIN_ITEM_KIND[study.kind]
    question = Question.QUALITY if kind == ItemKind.TEST else QUESTIONS_BY_KIND[kind][0]
    answered = dict(
        db.execute(
            select(Item.id, func.count(Answer.id))
            .join(Trial, Trial.item_id == Item.id)
            .join(Answer, (Answer.trial_id == Trial.id) & (Answer.question == question))
            .where(Item.study_id == study.id, Item.kind == kind)
            .group_by(Item.id)
        ).all()
    )
    test_items = db.scalars(select(Item.id).where(Item.study_id == study.id, Item.kind == kind)).all()
    return sorted(answered.get(item_id, 0) for item_id in test_items)


def _planner_argument(name: str, default: float, low: float, high: float) -> float:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        abort(400, f"{name} must be a number")
    if not math.isfinite(value) or not low <= value <= high:
        abort(400, f"{name} must be between {low} and {high}")
    return value


@admin_blueprint.get("/studies/<slug>")
@login_required
def study_detail(slug: str):
    """One study's progress and results, the power planner and the exports. 404: no such study; 400: a planner
    argument that is not a number in its range; not logged in: to the login page."""
    study = _study_or_404(slug)
    summary = build_summary(db_session(), study, current_app.config["SURVEY_BOOTSTRAP_REPLICATES"])
    matching = study.kind == StudyKind.MATCHING
    if matching:  # an arm's accuracy: binomial SD at the observed accuracy, one arm's trials per rater
        observed = (summary["matching"] or {}).get("power") or {"sd": 0.5, "rater_icc": 0.0}
        default_votes, default_half_width = max(1, study.test_trials_per_session // 2), 0.1
    else:
        observed = summary["power"] or {"sd": 1.0, "rater_icc": 0.0}
        default_votes, default_half_width = study.test_trials_per_session, 0.2
    planner = stats.plan_raters(
        sd=_planner_argument("sd", observed["sd"], 0.01, 4),
        half_width=_planner_argument("half_width", default_half_width, 0.01, 2),
        votes_per_rater=int(_planner_argument("votes_per_rater", default_votes, 1, 1000)),
        icc=_planner_argument("icc", observed["rater_icc"], 0, 1),
    )
    return render_template(
        "admin/study.html",
        study=study,
        summary=summary,
        votes=votes_per_test_item(study),
        planner=planner,
        planner_inputs={
            "sd": observed["sd"],
            "icc": observed["rater_icc"],
            "votes": default_votes,
            "measure": "an arm's matching accuracy (share)" if matching else "the MOS (1-5)",
        },
        export_types=EXPORT_TYPES,
    )


@admin_blueprint.get("/studies/<slug>/export/<name>")
@login_required
def export(slug: str, name: str):
    """One export file as a download; never stored by a browser or proxy cache (raters.csv has platform ids). 404: no
    such study or file; not logged in: to the login page."""
    if name not in EXPORT_TYPES:
        abort(404)
    study = _study_or_404(slug)
    text = export_files(db_session(), study, current_app.config["SURVEY_BOOTSTRAP_REPLICATES"])[name]
    return Response(
        text,
        mimetype=EXPORT_TYPES[name],
        headers={"Content-Disposition": f'attachment; filename="{study.slug}-{name}"', "Cache-Control": "no-store"},
    )


@admin_blueprint.context_processor
def _admin_context() -> dict:
    return {"current_admin": current_user}
