"""Fixtures: a tiny run folder of PNG pairs made with PIL, a migrated SQLite app, and a study in it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from survey_app import migrate
from survey_app.app import create_app
from survey_app.db import create_database_engine, create_session_factory
from survey_app.manifest import load_run_input
from survey_app.study_builder import StudyOptions, create_study

IDENTITIES = ("id00", "id01", "id02", "id03", "id04", "id05")
SPLITS = ("test", "val")
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def write_png(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 255 - shade, (shade * 7) % 256)).save(path)


def write_run_dir(folder: Path, identities=IDENTITIES, photos_per_identity: int = 2, groups: bool = False) -> Path:
    """Each identity in one split (alternating), with `photos_per_identity` real/generated rows."""
    rows = ["split,identity,real,generated" + (",group" if groups else "")]
    for index, identity in enumerate(identities):
        for photo in range(photos_per_identity):
            real, generated = f"real/{identity}_{photo}.png", f"generated/{identity}_{photo}.png"
            write_png(folder / real, 10 * index + photo)
            write_png(folder / generated, 200 - 10 * index - photo)
            row = f"{SPLITS[index % 2]},{identity},{real},{generated}"
            rows.append(row + (f",{'a' if index % 2 else 'b'}" if groups else ""))
    (folder / "pairs.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run_dir(tmp_path / "run")


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database migrated once per test run; each test gets a copy (Alembic per test would be slow)."""
    path = tmp_path_factory.mktemp("template") / "survey.sqlite3"
    engine = create_database_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # closing the last connection checkpoints the WAL into the file
    assert not path.with_name("survey.sqlite3-wal").exists()
    return path


@pytest.fixture
def app_config(tmp_path: Path, migrated_database: Path) -> dict:
    database = tmp_path / "survey.sqlite3"
    shutil.copy(migrated_database, database)
    return {
        "SECRET_KEY": "test-secret",
        "SURVEY_DATABASE_URL": f"sqlite:///{database}",
        "SURVEY_IMAGE_STORE": tmp_path / "images",
        "SURVEY_BOOTSTRAP_REPLICATES": 200,
    }


@pytest.fixture
def app(app_config: dict):
    return create_app(app_config)


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


@pytest.fixture
def start_rater(app) -> Callable[..., tuple]:
    """Consents in a fresh test client; returns (client, token, csrf token)."""

    def start(slug: str, query: str = "", **form) -> tuple:
        client = app.test_client()
        page = client.get(f"/s/{slug}{query}")
        assert page.status_code == 200, page.text
        csrf = csrf_from(page.text)
        fields = {"csrf_token": csrf, "consent": "agree", "consent_version": "1", "viewport": "1280x800"} | form
        response = client.post(f"/s/{slug}/start", data=fields)
        assert response.status_code == 302, response.text
        token = response.headers["Location"].split("/r/")[1].split("/")[0]
        return client, token, csrf

    return start


TRIAL_KIND = re.compile(r'class="trial trial-(\w+)"')
TRIAL_ACTION = re.compile(r'action="(/r/[^"]+/answers)"')
QUESTION = re.compile(r'data-question="(\w+)"')
ATTENTION_VALUE = re.compile(r"please select (\d)")


def careful_answers(kind: str, questions: list[str], html: str) -> dict[str, str]:
    """A rater who follows instructions, recognises controls correctly and varies ratings."""
    answers = {"quality": str(1 + len(html) % 5), "recognition": "not_sure", "lineup": "1"}
    if kind == "attention":
        answers["quality"] = ATTENTION_VALUE.search(html).group(1)
    if kind == "control_same":
        answers["recognition"] = "yes"
    if kind == "control_different":
        answers["recognition"] = "no"
    return {question: answers[question] for question in questions}


@pytest.fixture
def complete_session() -> Callable[..., list[str]]:
    """Answers every trial of a started session with `choose(kind, questions, html)`; returns the kinds seen."""

    def complete(client, token: str, csrf: str, choose=careful_answers) -> list[str]:
        kinds = []
        while True:
            page = client.get(f"/r/{token}/trial")
            if page.status_code == 302:
                assert page.headers["Location"].endswith(f"/r/{token}/done")
                return kinds
            kind = TRIAL_KIND.search(page.text).group(1)
            questions = QUESTION.findall(page.text)
            action = TRIAL_ACTION.search(page.text).group(1)
            response = client.post(
                action, data={"csrf_token": csrf, "rt_ms": "1200"} | choose(kind, questions, page.text)
            )
            assert response.status_code == 302, response.text
            kinds.append(kind)

    return complete
