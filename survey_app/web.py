"""Request-scoped helpers shared by the blueprints."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import current_app, g, request
from sqlalchemy.orm import Session

from survey_app.db import commit_each_statement

P = ParamSpec("P")
R = TypeVar("R")


def db_session() -> Session:
    """The request's database session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["survey_sessions"]()
        if g.get("commit_each_statement"):
            commit_each_statement(g.db_session)
    return g.db_session


def commits_each_statement(view: Callable[P, R]) -> Callable[P, R]:
    """For a view whose statements need no common transaction (reads, and writes that stand alone): its session
    commits each statement where the database gains by it (survey_app.db.commit_each_statement)."""

    @functools.wraps(view)
    def run_view(*args: P.args, **kwargs: P.kwargs) -> R:
        g.commit_each_statement = True
        return view(*args, **kwargs)

    return run_view


def close_db_session(_error: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def wants_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"
