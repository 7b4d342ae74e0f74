"""Flask app factory: configuration, database session per request, CSRF, body limit, admin logins and their
throttle, security headers, error pages."""

from __future__ import annotations

import io
from collections.abc import Mapping
from itertools import chain
from pathlib import Path
from typing import Any

from flask import Flask, abort, current_app, jsonify, render_template, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from survey_app import csrf, views_admin, views_rater
from survey_app.db import create_database_engine, create_session_factory
from survey_app.throttle import LOGIN_LIMIT_PER_ACCOUNT, LOGIN_LIMIT_PER_ADDRESS, retry_after_seconds
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
    "SURVEY_ADMIN_IDLE_MINUTES": 30,  # an admin session ends after this long without a request
    "SURVEY_ADMIN_MAX_HOURS": 12,  # and this long after login in any case
    "SURVEY_LOGIN_LIMIT_PER_ACCOUNT": LOGIN_LIMIT_PER_ACCOUNT,
    "SURVEY_LOGIN_LIMIT_PER_ADDRESS": LOGIN_LIMIT_PER_ADDRESS,
    "SURVEY_PROXY_HOPS": 0,  # reverse proxies in front that set X-Forwarded-For/-Proto (the throttle's address)
}
ERROR_TITLES = {
    400: "This request could not be used",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    409: "This page is out of date",
    413: "Too much data",
    429: "Too many attempts",
    500: "Something went wrong on our side",
}
GENERIC_ERROR = "Something went wrong on our side. Please try again in a minute."
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
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
    app.before_request(_refuse_oversized_chunked_bodies)  # first: the hooks below read the form
    csrf.init_app(app)

    app.register_blueprint(rater_blueprint)
    app.register_blueprint(admin_blueprint, url_prefix="/admin")
    views_rater.init_app(app)
    views_admin.init_app(app)
    if app.config["SURVEY_PROXY_HOPS"]:
        hops = app.config["SURVEY_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    app.before_request(_refuse_nul_bytes)
    app.teardown_appcontext(close_db_session)
    app.after_request(_add_security_headers)
    app.register_error_handler(HTTPException, _render_http_error)
    return app


def _refuse_oversized_chunked_bodies() -> None:
    """A body sent chunked (no Content-Length) is read here up to MAX_CONTENT_LENGTH: over it, 413 as for a sized
    body; within it, the request goes on with the body as if it had been sized. (Werkzeug alone reads a chunked
    body only up to the limit and parses that part, silently dropping the rest.)"""
    # The headers, not request.content_length: that property is cached, and must first be read after the change.
    if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    stream = request.environ["wsgi.input"]
    body = bytearray()
    while len(body) <= limit:
        chunk = stream.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        raise RequestEntityTooLarge(f"The request body is over the limit of {limit} bytes.")
    request.environ["wsgi.input"] = io.BytesIO(bytes(body))
    request.environ["CONTENT_LENGTH"] = str(len(body))
    request.environ.pop("wsgi.input_terminated", None)
    request.environ.pop("HTTP_TRANSFER_ENCODING", None)


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
    """Our own messages are written for raters; an error without one (a server fault) gets a generic line, never
    Python's own text."""
    code = error.code or 500
    if code >= 500:
        description = GENERIC_ERROR
    elif code == 404:
        description = "There is nothing at this address: the link may be mistyped or cut short."
    else:
        description = error.description
    if wants_json():
        response = jsonify(error=description)
    else:
        title = ERROR_TITLES.get(code, "Sorry")
        response = render_template("error.html", code=code, title=title, description=description)
    response = current_app.make_response((response, code))
    if code == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(error.valid_methods)
    if isinstance(error, RateLimitExceeded):
        response.headers["Retry-After"] = str(retry_after_seconds(error))
    return response
