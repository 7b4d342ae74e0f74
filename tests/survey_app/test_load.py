"""A storm of raters against a real `survey-app serve` process on loopback, on SQLite and PostgreSQL.

50 raters answer 32 test trials each (plus the attention check and two controls) at once; afterwards the database
must hold exactly the acknowledged answers. The crash test kills the server with SIGKILL in the middle of the storm:
every answer acknowledged by then must already be in the database; the raters then go on against a restarted
server and finish.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from survey_app.models import Rater
from tests.survey_app.robot import (
    AcknowledgedAnswer,
    AnswerAudit,
    ServerProcess,
    Storm,
    acknowledged_answers,
    audit_answers,
)

from .conftest import write_run_dir

pytestmark = pytest.mark.slow

RATERS = 50
TEST_TRIALS = 32
ANSWERS_PER_RATER = 2 * TEST_TRIALS + 1 + 2 * 2  # test pairs, attention check (one question), two controls
STORM_TIMEOUT_S = 120
SERVER_WORKERS = 2  # several processes: SQLite writes then also queue across processes (survey_app.db)
SERVER_THREADS = 4


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """32 pairs: 8 identities with 4 photos each."""
    identities = tuple(f"id{index:02d}" for index in range(8))
    return write_run_dir(tmp_path / "run", identities=identities, photos_per_identity=4)


@pytest.fixture
def storm_study(make_study) -> str:
    return make_study("storm", test_pairs=TEST_TRIALS, test_trials_per_session=TEST_TRIALS, lineup_size=0)


@pytest.fixture
def server(tmp_path: Path, app_config: dict, storm_study: str) -> Iterator[ServerProcess]:
    """`survey-app --data-dir tmp_path serve` on the test's database (tmp_path/images is the app's image store)."""
    url, log = app_config["SURVEY_DATABASE_URL"], tmp_path / "server.log"
    process = ServerProcess(tmp_path, url, SERVER_WORKERS, SERVER_THREADS, log)
    process.start()
    yield process
    process.stop()


def audit(app: Flask, slug: str, answers: list[AcknowledgedAnswer]) -> AnswerAudit:
    with app.extensions["survey_sessions"]() as db:
        return audit_answers(db, slug, answers)


def completed_raters(app: Flask) -> int:
    with app.extensions["survey_sessions"]() as db:
        return db.scalar(select(func.count()).select_from(Rater).where(Rater.completed_at.is_not(None)))


def test_connections_spread_over_the_worker_processes(server: ServerProcess, storm_study: str) -> None:
    """Every worker accepts from a socket of its own: 40 connections opened at once do not all land on one worker."""
    connections = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=30) for _ in range(40)]
    try:
        with ThreadPoolExecutor(max_workers=len(connections)) as pool:
            statuses = list(pool.map(lambda connection: _landing_page_status(connection, storm_study), connections))
        assert statuses == [200] * len(connections)
        held = sorted(count for count in server.connections_per_process().values() if count)
        assert len(held) == SERVER_WORKERS and sum(held) == len(connections)
        assert held[0] >= 5  # even split 20/20; fewer than 5 of 40 on one worker by chance: p < 1e-6
    finally:
        for connection in connections:
            connection.close()


def _landing_page_status(connection: http.client.HTTPConnection, slug: str) -> int:
    connection.request("GET", f"/s/{slug}")
    response = connection.getresponse()
    response.read()
    return response.status


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_50_raters_at_once_lose_and_double_no_answer(app: Flask, server: ServerProcess, storm_study: str) -> None:
    runs = Storm(server.base_url, storm_study, RATERS, STORM_TIMEOUT_S).run()
    assert all(run.completed for run in runs) and sum(run.network_errors for run in runs) == 0
    expected = RATERS * ANSWERS_PER_RATER
    assert audit(app, storm_study, acknowledged_answers(runs)) == AnswerAudit(expected, expected, 0, 0, 0)
    assert completed_raters(app) == RATERS


def test_kill_9_mid_storm_loses_no_acknowledged_answer(app: Flask, server: ServerProcess, storm_study: str) -> None:
    storm = Storm(server.base_url, storm_study, RATERS, STORM_TIMEOUT_S)
    with ThreadPoolExecutor(max_workers=1) as pool:
        finished = pool.submit(storm.run)
        wait_until(lambda: storm.acknowledged_count >= RATERS * TEST_TRIALS // 3 or finished.done(), 90)
        server.kill()
        assert not finished.done(), "the storm ended before the crash"
        before_crash = acknowledged_answers(storm.runs)
        at_crash = audit(app, storm_study, before_crash)
        assert at_crash.acknowledged > 0 and at_crash.lost == 0 and at_crash.doubled == 0
        server.start()
        runs = finished.result()
    assert all(run.completed for run in runs) and sum(run.network_errors for run in runs) > 0
    expected = RATERS * ANSWERS_PER_RATER
    assert audit(app, storm_study, acknowledged_answers(runs)) == AnswerAudit(expected, expected, 0, 0, 0)
    assert completed_raters(app) == RATERS
