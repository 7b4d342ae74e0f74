"""Helpers of the survey-app tests (not fixtures): run folders, kind studies, database set-up, reading forms and
trials; ``tests/survey_app/conftest.py`` wraps them as fixtures."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from survey_app.manifest import load_run_input
from survey_app.models import Base, Item, Trial
from survey_app.study_builder import StudyOptions
from survey_app.study_kinds import KindOptions, create_kind_study
from tests.survey_app.robot import (
    CSRF_META,
    QUESTION,
    TASK_INSTRUCTIONS,
    TRIAL_ACTION,
    write_png,
    write_synthetic_run,
)
from tests.survey_app.robot import choose_answers as careful_answers

__all__ = ["QUESTION", "TRIAL_ACTION", "careful_answers", "csrf_from", "trial_kind", "write_png"]

IDENTITIES = ("id00", "id01", "id02", "id03", "id04", "id05")
PHOTOS_PER_IDENTITY = 10  # enough that every image of a session is new to its rater (survey_app.study_builder)
POSTGRES_URL_VARIABLE = "SURVEY_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgresql")


def write_run_dir(
    folder: Path, identities=IDENTITIES, photos_per_identity: int = PHOTOS_PER_IDENTITY, groups: bool = False, **audio
) -> Path:
    """A synthetic run folder; `audio_seconds=...` adds the clip and audio columns (robot.write_synthetic_run)."""
    return write_synthetic_run(folder, identities, photos_per_identity, groups, **audio)


def build_kind_study(app, runs: list[Path], slug: str, kind_options: KindOptions, **overrides) -> str:
    """A matching, hype or pairwise study over `runs` in the app's database; its slug."""
    options = {
        "title": "t",
        "slug": slug,
        "seed": 3,
        "test_pairs": 12,
        "test_trials_per_session": 8,
        "lineup_size": 0,
    } | overrides
    with app.extensions["survey_sessions"]() as session:
        create_kind_study(
            session,
            [load_run_input(run) for run in runs],
            app.config["SURVEY_IMAGE_STORE"],
            StudyOptions(**options),
            kind_options,
        )
        session.commit()
    return slug


@contextmanager
def scratch_postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards; yields its URL."""
    name = f"survey_test_{secrets.token_hex(6)}"
    server = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        server.dispose()


def emptied_postgres(url: str) -> str:
    engine = create_engine(url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    engine.dispose()
    return url


def csrf_from(html: str) -> str:
    return CSRF_META.search(html).group(1)


def trial_kind(app, html: str) -> str:
    """The kind of the trial on a trial page, looked up on the server (the page itself must not tell it)."""
    trial_id = TRIAL_ACTION.search(html).group(1).split("/trials/")[1].split("/")[0]
    with app.extensions["survey_sessions"]() as session:
        return session.scalar(select(Item.kind).join(Trial, Trial.item_id == Item.id).where(Trial.id == trial_id)).value


def open_trial(client, token: str, **kwargs):
    """GET the rater's current trial, through its task's instructions when the server sends the rater there first;
    the trial page, or the redirect to the completion page."""
    page = client.get(f"/r/{token}/trial", **kwargs)
    if page.status_code == 302 and TASK_INSTRUCTIONS.search(page.headers["Location"]):
        assert client.get(page.headers["Location"], **kwargs).status_code == 200
        page = client.get(f"/r/{token}/trial?intro=done", **kwargs)
    return page
