from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from survey_app import migrate
from survey_app.db import create_database_engine
from survey_app.models import Base, Rater

from .conftest import QUESTION, TRIAL_ACTION, careful_answers, open_trial, trial_kind


def test_upgrade_to_head_builds_exactly_the_models_schema(empty_database_url: str) -> None:
    engine = create_database_engine(empty_database_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.is_up_to_date(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_downgrade_to_base_and_upgrade_again(empty_database_url: str) -> None:
    engine = create_database_engine(empty_database_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    migrate.upgrade(engine)
    assert "answers" in inspect(engine).get_table_names()
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_revision_0005_keeps_the_progress_of_existing_sessions(app, study, start_rater, complete_session):
    """Downgrading to 0004 and upgrading again gives every session back its position and its lineup block."""
    finished = start_rater(study)
    complete_session(*finished)
    client, token, csrf = start_rater(study)
    for _ in range(5):  # the four lineups, then one pair trial
        page = open_trial(client, token)
        questions = QUESTION.findall(page.text)
        answers = careful_answers(trial_kind(app, page.text), questions, page.text)
        posted = client.post(TRIAL_ACTION.search(page.text).group(1), data={"csrf_token": csrf, "next": "1"} | answers)
        assert posted.status_code == 302, posted.text
    start_rater(study)
    engine = app.extensions["survey_engine"]
    counters = select(Rater.id, Rater.trials_answered, Rater.trials_total, Rater.lineup_trials).order_by(Rater.id)
    with engine.connect() as connection:
        before = connection.execute(counters).all()
    assert [tuple(row[1:]) for row in before] == [(11, 11, 4), (5, 11, 4), (0, 11, 4)]
    migrate.downgrade(engine, "0004")
    migrate.upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(counters).all() == before


def test_revision_0006_keeps_faces_studies_and_their_sessions(app, study, start_rater, complete_session) -> None:
    """An older study is a faces study after the upgrade; downgrading to 0005 and upgrading again keeps it whole."""
    complete_session(*start_rater(study))
    engine = app.extensions["survey_engine"]
    counters = select(Rater.id, Rater.trials_answered, Rater.completed_at.is_not(None)).order_by(Rater.id)
    with engine.connect() as connection:
        before = connection.execute(counters).all()
    migrate.downgrade(engine, "0005")
    assert "audio_clips" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(counters).all() == before
        assert connection.execute(text("SELECT kind FROM studies")).scalars().all() == ["FACES"]
        assert connection.execute(text("SELECT count(*) FROM trials WHERE plays = 0")).scalar() == before[0][1]
