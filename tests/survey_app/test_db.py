"""The cross-process queue of a multi-process server on SQLite (survey_app.db, process_lock)."""

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from survey_app.db import create_database_engine, default_database_url

WAITER = """
import sys, time
from sqlalchemy import text
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

