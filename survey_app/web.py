"""Request-scoped helpers shared by the blueprints."""

from __future__ import annotations

from flask import current_app, g, request
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session

csrf = CSRFProtect()


def db_session() -> Session:
    """The request's database session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["survey_sessions"]()
    return g.db_session


def close_db_session(_error: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def wants_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"
