"""Fixtures: a tiny run folder of PNG pairs, a migrated database on SQLite and on PostgreSQL, an app and a study in it.

Every test that uses `database_url` (through `app`) runs on both backends. PostgreSQL is the server named by
$SURVEY_TEST_POSTGRES_URL (.ci/run starts one on loopback); without it those runs skip, saying so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from survey_app import migrate
from survey_app.app import create_app
from survey_app.db import create_database_engine, create_session_factory
from survey_app.manifest import load_run_input
from survey_app.study_builder import StudyOptions, create_study
from tests.survey_app.robot import (
    QUESTION,
    START_NONCE,
    TRIAL_ACTION,
)
from tests.survey_app.robot import choose_answers as careful_answers
from tests.survey_app.support import (
    BACKENDS,
    POSTGRES_URL_VARIABLE,
    csrf_from,
    emptied_postgres,
    open_trial,
    scratch_postgres_database,
    trial_kind,
    write_run_dir,
)


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


@pytest.fixture(scope="session")
def migrated_postgres(postgres_server_url: str) -> Iterator[str]:
    """A database migrated once per test run; each test empties it first."""
    with scratch_postgres_database(postgres_server_url) as url:
        engine = create_database_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url


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
