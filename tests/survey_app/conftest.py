"""Fixtures: a tiny run folder of PNG pairs, a migrated database on SQLite and on PostgreSQL, an app and a study in it.

Every test that uses `database_url` (through `app`) runs on both backends. PostgreSQL is the server named by
$SURVEY_TEST_POSTGRES_URL (.ci/run starts one on loopback); without it those runs skip, saying so.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from survey_app import migrate
from survey_app.app import create_app
from survey_app.db import create_database_engine, create_session_factory
from survey_app.manifest import load_run_input
from survey_app.models import Base, Item, Trial
from survey_app.study_builder import StudyOptions, create_study
from survey_app.study_kinds import KindOptions, create_kind_study
from tests.survey_app.robot import (
    CSRF_META,
    QUESTION,
    START_NONCE,
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


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run_dir(tmp_path / "run")


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database migrated once per test run; each test gets a copy (Alembic per test would be slow)."""
    path = tmp_path_factory.mktemp("template") / "survey.sqlite3"
    engine = create_database_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # closing the last connection checkpoints the WAL into the file
    assert not path.with_name("survey.sqlite3-wal").exists()
    return path


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        pytest.skip(f"set {POSTGRES_URL_VARIABLE} to a PostgreSQL server on loopback to test it (.ci/run does)")
    return url


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


@pytest.fixture(scope="session")
def migrated_postgres(postgres_server_url: str) -> Iterator[str]:
    """A database migrated once per test run; each test empties it first."""
    with scratch_postgres_database(postgres_server_url) as url:
        engine = create_database_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url


def emptied_postgres(url: str) -> str:
    engine = create_engine(url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    engine.dispose()
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database: a copy of the SQLite template, or the PostgreSQL test database emptied."""
    if request.param == "postgresql":
        return emptied_postgres(request.getfixturevalue("migrated_postgres"))
    database = tmp_path / "survey.sqlite3"
    shutil.copy(request.getfixturevalue("migrated_sqlite"), database)
    return f"sqlite:///{database}"


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database without any schema, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with scratch_postgres_database(request.getfixturevalue("postgres_server_url")) as url:
        yield url


@pytest.fixture
def app_config(tmp_path: Path, database_url: str) -> dict:
    """tmp_path doubles as a `survey-app --data-dir`: the image store is its images/ folder."""
    return {
        "SECRET_KEY": "test-secret",
        "SURVEY_DATABASE_URL": database_url,
        "SURVEY_IMAGE_STORE": tmp_path / "images",
        "SURVEY_BOOTSTRAP_REPLICATES": 200,
    }


@pytest.fixture
def app(app_config: dict):
    app = create_app(app_config)
    yield app
    app.extensions["survey_engine"].dispose()


@pytest.fixture
def db(app):
    with app.extensions["survey_sessions"]() as session:
        yield session


@pytest.fixture
def make_study(app, run_dir: Path) -> Callable[..., str]:
    def make(slug: str = "study-one", **overrides) -> str:
        options = {
            "title": "Test study",
            "slug": slug,
            "seed": 7,
            "test_pairs": 8,
            "test_trials_per_session": 4,
            "lineup_size": 3,
        } | overrides
        session_factory = create_session_factory(app.extensions["survey_engine"])
        with session_factory() as session:
            create_study(session, load_run_input(run_dir), app.config["SURVEY_IMAGE_STORE"], StudyOptions(**options))
            session.commit()
        return slug

    return make


@pytest.fixture
def study(make_study) -> str:
    return make_study()


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


@pytest.fixture
def start_rater(app) -> Callable[..., tuple]:
    """Consents in a fresh test client; returns (client, token, csrf token)."""

    def start(slug: str, query: str = "", **form) -> tuple:
        client = app.test_client()
        page = client.get(f"/s/{slug}{query}")
        assert page.status_code == 200, page.text
        csrf = csrf_from(page.text)
        fields = {
            "csrf_token": csrf,
            "consent": "agree",
            "consent_version": "1",
            "viewport": "1280x800",
            "start_nonce": START_NONCE.search(page.text).group(1),
        } | form
        response = client.post(f"/s/{slug}/start", data=fields)
        assert response.status_code == 302, response.text
        token = response.headers["Location"].split("/r/")[1].split("/")[0]
        return client, token, csrf

    return start


@pytest.fixture
def complete_session(app) -> Callable[..., list[str]]:
    """Answers every trial of a started session with `choose(kind, questions, html)` and Next; returns the kinds
    seen."""

    def complete(client, token: str, csrf: str, choose=careful_answers, rt_ms: str = "1200") -> list[str]:
        kinds = []
        while True:
            page = open_trial(client, token)
            if page.status_code == 302:
                assert page.headers["Location"].endswith(f"/r/{token}/done")
                return kinds
            kind = trial_kind(app, page.text)
            questions = QUESTION.findall(page.text)
            action = TRIAL_ACTION.search(page.text).group(1)
            response = client.post(
                action, data={"csrf_token": csrf, "rt_ms": rt_ms, "next": "1"} | choose(kind, questions, page.text)
            )
            assert response.status_code == 302, response.text
            kinds.append(kind)

    return complete
