"""Admin dashboard behind a login: studies, progress, results, power planner, exports."""

from __future__ import annotations

import functools
import math

from flask import Blueprint, Response, abort, current_app, g, redirect, render_template, request, session, url_for
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from survey_app import csrf, stats
from survey_app.export import export_files
from survey_app.models import Admin, Answer, Item, ItemKind, Question, Rater, Study, Trial
from survey_app.results import build_summary
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
# Checked when the username is unknown, so a failed login takes as long either way.
_UNKNOWN_USER_HASH = generate_password_hash("no such admin")


def login_required(view):
    @functools.wraps(view)
    def wrapped(**kwargs):
        admin_id = session.get("admin_id")
        g.admin = db_session().get(Admin, admin_id) if isinstance(admin_id, int) else None
        if g.admin is None:
            return redirect(url_for("admin.login"))
        return view(**kwargs)

    return wrapped


@admin_blueprint.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("admin/login.html", failed=False)
    username = request.form.get("username", "")[:64]
    admin = db_session().scalar(select(Admin).where(Admin.username == username))
    password = request.form.get("password", "")[:256]
    valid = check_password_hash(admin.password_hash if admin else _UNKNOWN_USER_HASH, password)
    if admin is None or not valid:
        return render_template("admin/login.html", failed=True), 401
    session.clear()
    session["admin_id"] = admin.id
    csrf.renew_secret()
    return redirect(url_for("admin.index"))


@admin_blueprint.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("admin.login"))


@admin_blueprint.get("/")
@login_required
def index():
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
    db = db_session()
    answered = dict(
        db.execute(
            select(Item.id, func.count(Answer.id))
            .join(Trial, Trial.item_id == Item.id)
            .join(Answer, (Answer.trial_id == Trial.id) & (Answer.question == Question.QUALITY))
            .where(Item.study_id == study.id, Item.kind == ItemKind.TEST)
            .group_by(Item.id)
        ).all()
    )
    test_items = db.scalars(select(Item.id).where(Item.study_id == study.id, Item.kind == ItemKind.TEST)).all()
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
    study = _study_or_404(slug)
    summary = build_summary(db_session(), study, current_app.config["SURVEY_BOOTSTRAP_REPLICATES"])
    observed = summary["power"] or {"sd": 1.0, "rater_icc": 0.0}
    planner = stats.plan_raters(
        sd=_planner_argument("sd", observed["sd"], 0.01, 4),
        half_width=_planner_argument("half_width", 0.2, 0.01, 2),
        votes_per_rater=int(_planner_argument("votes_per_rater", study.test_trials_per_session, 1, 1000)),
        icc=_planner_argument("icc", observed["rater_icc"], 0, 1),
    )
    return render_template(
        "admin/study.html",
        study=study,
        summary=summary,
        votes=votes_per_test_item(study),
        planner=planner,
        planner_inputs={"sd": observed["sd"], "icc": observed["rater_icc"]},
        export_types=EXPORT_TYPES,
    )


@admin_blueprint.get("/studies/<slug>/export/<name>")
@login_required
def export(slug: str, name: str):
    if name not in EXPORT_TYPES:
        abort(404)
    study = _study_or_404(slug)
    text = export_files(db_session(), study, current_app.config["SURVEY_BOOTSTRAP_REPLICATES"])[name]
    return Response(
        text,
        mimetype=EXPORT_TYPES[name],
        headers={"Content-Disposition": f'attachment; filename="{study.slug}-{name}"'},
    )
