"""The listening sockets of `survey-app serve` (survey_app.server); the server under load: test_load.py."""

import gc
import socket

import pytest

from survey_app.app import create_app
from survey_app.server import StudyServer, check_can_listen, default_threads, open_listeners


def test_one_listening_socket_per_worker_on_one_port_without_nagle_delays() -> None:
    listeners = open_listeners("127.0.0.1", 0, count=3, backlog=16)
    try:
        assert len({listener.getsockname() for listener in listeners}) == 1
        for listener in listeners:
            assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
            assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # inherited by connections
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1"):
            check_can_listen("127.0.0.1", listeners[0].getsockname()[1])  # a second server cannot join in
    finally:
        for listener in listeners:
            listener.close()



def test_a_worker_loads_the_app_with_a_connection_per_thread_then_freezes_its_objects(app) -> None:
    """Full garbage collections of a worker's start-up objects would stall all its threads (survey_app.server)."""
    engine = app.extensions["survey_engine"]
    engine.dispose()
    server = StudyServer(lambda: app, "127.0.0.1", 0, workers=1, threads=2)
    gc.unfreeze()
    try:
        assert server.load() is app
        assert engine.pool.checkedin() == min(2, engine.pool.size())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_worker_starts_while_the_database_is_unreachable_and_says_so(tmp_path, capsys) -> None:
    config = {"SECRET_KEY": "k" * 32, "SURVEY_IMAGE_STORE": tmp_path}
    unreachable = create_app(config | {"SURVEY_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"})
    assert StudyServer(lambda: unreachable, "127.0.0.1", 0, workers=1, threads=2).load() is unreachable
    gc.unfreeze()
    assert "warning: cannot connect to the database yet: OperationalError" in capsys.readouterr().err


def test_threads_per_worker_default_to_two_on_sqlite_and_four_on_postgresql(tmp_path) -> None:
    """SQLite gives a process one connection, which more threads would only queue for (survey_app.server)."""
    assert default_threads(f"sqlite:///{tmp_path / 'survey.sqlite3'}") == 2
    assert default_threads("postgresql+psycopg://survey@127.0.0.1/survey") == 4
