"""Database engines (survey_app.db): the cross-process queue of a multi-process server on SQLite (process_lock), and
PostgreSQL connections that the server closed."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from survey_app.db import create_database_engine, default_database_url

WAITER = """
import sys, time
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from survey_app.db import create_database_engine
engine = create_database_engine(sys.argv[1], process_lock=True)
print("ready", flush=True)
with engine.connect() as connection:
    acquired = time.time()
    connection.execute(text("SELECT 1"))
print(acquired, flush=True)
"""


def test_a_second_process_waits_for_the_connection_and_wakes_when_it_is_released(tmp_path: Path) -> None:
    url = default_database_url(tmp_path)
    engine = create_database_engine(url, process_lock=True)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        waiter = subprocess.Popen([sys.executable, "-c", WAITER, url], stdout=subprocess.PIPE, text=True)
        assert waiter.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        released = time.time()
    acquired = float(waiter.stdout.readline())
    assert waiter.wait(timeout=60) == 0
    assert released <= acquired < released + 2  # it waited for the release, and no longer



@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_connections_the_server_closed_are_replaced_without_a_failed_request(app, study, start_rater) -> None:
    """After a database restart (here: the app's pooled connections terminated), the next requests still succeed."""
    client, token, _ = start_rater(study)
    app_backends = "datname = current_database() AND pid <> pg_backend_pid()"
    administrator = create_engine(app.config["SURVEY_DATABASE_URL"], poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with administrator.connect() as connection:
        assert connection.execute(text(f"SELECT count(*) FROM pg_stat_activity WHERE {app_backends}")).scalar() > 0
        connection.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {app_backends}"))
        deadline = time.monotonic() + 10
        while connection.execute(text(f"SELECT count(*) FROM pg_stat_activity WHERE {app_backends}")).scalar():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    administrator.dispose()
    assert client.get(f"/r/{token}/trial?intro=done").status_code == 200
    assert client.get(f"/r/{token}/trial?intro=done").status_code == 200


def test_postgresql_connections_read_committed_whatever_the_server_default(postgres_server_url: str) -> None:
    """Saving answers without a row lock relies on READ COMMITTED (survey_app.rater_sessions)."""
    serializable = make_url(postgres_server_url).update_query_dict(
        {"options": "-c default_transaction_isolation=serializable"}
    )
    engine = create_database_engine(serializable.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW transaction_isolation")).scalar() == "read committed"
    finally:
        engine.dispose()
