"""Flask app factory: configuration, database session per request, CSRF, security headers, error pages."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from pathlib import Path
from typing import Any

from flask import Flask, abort, current_app, jsonify, render_template, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from survey_app import csrf
from survey_app.db import create_database_engine, create_session_factory
from survey_app.views_admin import admin_blueprint
from survey_app.views_rater import rater_blueprint
from survey_app.web import close_db_session, wants_json

MAX_REQUEST_BYTES = 16 * 1024
DEFAULT_CONFIG: dict[str, Any] = {
    "MAX_CONTENT_LENGTH": MAX_REQUEST_BYTES,
    "MAX_FORM_MEMORY_SIZE": MAX_REQUEST_BYTES,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "SURVEY_FRAME_ANCESTORS": "'none'",
    "SURVEY_BOOTSTRAP_REPLICATES": 2000,
    "SURVEY_SQLITE_PROCESS_LOCK": False,  # True in each process of a multi-process server on SQLite (survey_app.db)
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors {frame_ancestors}"
)


class SessionCookieOnDemand(SecureCookieSessionInterface):
    """Flask's signed-cookie session (the admin's login), decoded only when the browser sent one: the rater's pages
    never use it, and building the signing serializer on each of their requests cost ~3 % of the server's CPU."""

    def open_session(self, app: Flask, request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def create_app(config: Mapping[str, Any]) -> Flask:
    """`config` needs SECRET_KEY, SURVEY_DATABASE_URL and SURVEY_IMAGE_STORE; the schema must be migrated already."""
    app = Flask(__name__)
    app.session_interface = SessionCookieOnDemand()
    app.config.update(DEFAULT_CONFIG)
    app.config.update(config)
    for key in ("SECRET_KEY", "SURVEY_DATABASE_URL", "SURVEY_IMAGE_STORE"):
        if not app.config.get(key):
            raise ValueError(f"create_app needs {key}")
    app.config["SURVEY_IMAGE_STORE"] = Path(app.config["SURVEY_IMAGE_STORE"]).resolve()
    engine = create_database_engine(app.config["SURVEY_DATABASE_URL"], app.config["SURVEY_SQLITE_PROCESS_LOCK"])
    app.extensions["survey_engine"] = engine
    app.extensions["survey_sessions"] = create_session_factory(engine)
    csrf.init_app(app)

    app.register_blueprint(rater_blueprint)
    app.register_blueprint(admin_blueprint, url_prefix="/admin")
    app.before_request(_refuse_nul_bytes)
    app.teardown_appcontext(close_db_session)
    app.after_request(_add_security_headers)
    app.register_error_handler(HTTPException, _render_http_error)
    return app


def _refuse_nul_bytes() -> None:
    """No id or field of this app holds a NUL byte, and PostgreSQL text cannot: refuse them before any query."""
    values = chain([request.path], chain.from_iterable(request.args.listvalues()))
    if any("\x00" in value for value in chain(values, chain.from_iterable(request.form.listvalues()))):
        abort(400, "NUL byte in the request")


def _add_security_headers(response):
    frame_ancestors = current_app.config["SURVEY_FRAME_ANCESTORS"]
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.format(frame_ancestors=frame_ancestors)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
    if frame_ancestors == "'none'":
        response.headers["X-Frame-Options"] = "DENY"
    if response.mimetype in ("text/html", "application/json"):
        response.headers["Cache-Control"] = "no-store"
    return response


def _render_http_error(error: HTTPException):
    description = error.description if error.code != 404 else "Not found."
    if wants_json():
        return jsonify(error=description), error.code
    return render_template("error.html", code=error.code, description=description), error.code
