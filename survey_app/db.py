"""Database engines: SQLite by default (WAL, busy timeout, every transaction BEGIN IMMEDIATE), PostgreSQL by URL.

SQLite runs one write transaction at a time, and here every transaction takes the write lock, so a process keeps
one connection and its threads queue for it in the pool: a freed connection wakes the next thread at once, where
SQLite's busy handler would have it sleep in steps of up to 100 ms. The server's worker processes extend that queue
across processes (`process_lock`): a process holds an exclusive flock on DATABASE-process.lock while it has its
connection checked out, and a blocked flock wakes as soon as it is released. The busy timeout still covers other
processes (the CLI beside the server).
"""

from __future__ import annotations

import fcntl
import os
import select
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_POOL_TIMEOUT_S = 30
POSTGRES_CONNECT_TIMEOUT_S = 10


def default_database_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'survey.sqlite3').resolve()}"


def create_database_engine(database_url: str, process_lock: bool = False) -> Engine:
    """`process_lock`: SQLite only, for an engine in each of several server processes (never two in one process:
    a thread holding one engine's connection while waiting for the other's would wait forever)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # Saving answers relies on READ COMMITTED (survey_app.rater_sessions), whatever the server's default is. A
        # database host that does not answer fails a connection in 10 s (unless the URL says otherwise), not minutes.
        connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
        engine = create_engine(url, isolation_level="READ COMMITTED", connect_args=connect_args)
        _drop_connections_closed_by_the_server(engine)
        return engine
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=SQLITE_POOL_TIMEOUT_S,
    )
    in_memory = url.database in (None, "", ":memory:")
    if not in_memory:
        make_private(Path(url.database))
    _configure_sqlite(engine, in_memory)
    if process_lock and not in_memory:
        _serialize_across_processes(engine, Path(url.database).with_name(Path(url.database).name + "-process.lock"))
    return engine


def make_private(database: Path) -> None:
    """The SQLite database (password hashes, platform ids) readable by its owner only: created empty with mode 0600
    when missing (SQLite then creates its -wal and -shm files with the database's mode), existing files narrowed to
    0600."""
    if not database.parent.is_dir():
        return  # SQLite will say that it cannot open the file
    try:
        descriptor = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        os.close(descriptor)
    for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except (FileNotFoundError, PermissionError):
            continue


def _configure_sqlite(engine: Engine, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:
        # Take transaction control away from pysqlite so that "begin" below decides how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:
        # A deferred transaction that reads and then writes can fail with SQLITE_BUSY at once, busy timeout or
        # not; taking the write lock at BEGIN makes the wait happen there and makes assignment atomic.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _drop_connections_closed_by_the_server(engine: Engine) -> None:
    """A pooled connection is checked without a round trip (pool_pre_ping would cost one per request): an idle
    connection has nothing to read unless the server closed it (a restart, pg_terminate_backend, an idle timeout),
    in which case it sent its goodbye and the socket is readable. The pool then replaces the connection."""

    @event.listens_for(engine, "checkout")
    def check(dbapi_connection, _record, _proxy) -> None:
        poll = select.poll()
        poll.register(dbapi_connection.fileno(), select.POLLIN)
        if poll.poll(0):
            raise DisconnectionError("the server closed the connection")


def _serialize_across_processes(engine: Engine, lock_path: Path) -> None:
    @event.listens_for(engine, "connect")
    def open_lock(_dbapi_connection, record) -> None:
        record.info["process_lock"] = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    @event.listens_for(engine, "checkout")
    def acquire(_dbapi_connection, record, _proxy) -> None:
        fcntl.flock(record.info["process_lock"], fcntl.LOCK_EX)

    @event.listens_for(engine, "checkin")
    def release(_dbapi_connection, record) -> None:
        if "process_lock" in record.info:
            fcntl.flock(record.info["process_lock"], fcntl.LOCK_UN)

    @event.listens_for(engine, "close")
    def close_lock(_dbapi_connection, record) -> None:
        os.close(record.info.pop("process_lock"))


def open_pooled_connections(engine: Engine, count: int) -> None:
    """Opens up to `count` connections (no more than the pool keeps) and returns them to the pool, so that a server
    worker's first requests find them ready: a new PostgreSQL connection costs a server process, and the engine's
    first one a few catalog queries, all while other requests wait."""
    opened = []
    try:
        for _ in range(min(count, engine.pool.size())):
            opened.append(engine.connect())
    finally:
        for connection in opened:
            connection.close()


def commit_each_statement(session: Session) -> None:
    """Before the session's first statement: on PostgreSQL each statement then commits by itself, which saves the
    BEGIN and COMMIT round trips of a transaction. On SQLite nothing changes: the session's statements stay one
    transaction, which takes the write lock (see above)."""
    if is_postgresql(session):
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
