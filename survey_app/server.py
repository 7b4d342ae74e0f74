"""`survey-app serve`: the app under gunicorn, pre-forked worker processes with threads (gthread workers).

One Python process runs one thread of Python at a time, so a single process serves at most one core's worth of
requests; the study server therefore runs several worker processes. Each worker builds its own app (and database
engine) after the fork: database connections are never shared across processes.

Each worker accepts from a listening socket of its own (SO_REUSEPORT), so the kernel spreads new connections evenly
over the workers. On gunicorn's one shared socket, the worker that wakes first accepts a whole burst of connections,
and a rater's keep-alive connection stays with the worker that accepted it: measured here, all 50 raters of the load
benchmark often ended up on one worker, which then served alone on one core. The arbiter opens the sockets, one per
worker, before it forks: connections queue from the moment the banner is printed, and a replacement for a crashed
worker takes over its socket and the connections waiting there. The worker count is therefore fixed (gunicorn's
TTIN/TTOU signals are ignored: one worker fewer would leave a socket that nobody accepts from).
"""

from __future__ import annotations

import gc
import os
import socket
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from survey_app.db import open_pooled_connections

SQLITE_THREADS = 2
POSTGRES_THREADS = 4


def default_threads(database_url: str) -> int:
    """Threads per worker process. On SQLite a process has one database connection, which its threads queue for:
    beyond two (one in the database, one parsing or rendering) they only add GIL contention; measured with the load
    benchmark, 2 threads gave 357-427 answers/s where 4 gave 256-333. A PostgreSQL server takes each thread's
    queries at once, and there 2, 3 and 4 measured alike."""
    return SQLITE_THREADS if make_url(database_url).get_backend_name() == "sqlite" else POSTGRES_THREADS


def default_workers() -> int:
    """One worker process per CPU this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_can_listen(host: str, port: int) -> None:
    """Raises OSError with a one-line message if HOST:PORT cannot be bound (gunicorn would retry, then exit).

    The probe does not set SO_REUSEPORT, so a port that another `survey-app serve` holds counts as busy.
    """
    try:
        with _bound_socket(host, port, reuse_port=False):
            pass
    except OSError as error:
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def _bound_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    bound = socket.socket(family, socket.SOCK_STREAM)
    try:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        bound.bind(address)
    except OSError:
        bound.close()
        raise
    return bound


def open_listeners(host: str, port: int, count: int, backlog: int) -> list[socket.socket]:
    """`count` listening sockets on HOST:PORT (SO_REUSEPORT: the kernel spreads new connections over them); port 0:
    the port the system chose for the first."""
    listeners = [_bound_socket(host, port, reuse_port=True)]
    try:
        while len(listeners) < count:
            listeners.append(_bound_socket(*listeners[0].getsockname()[:2], reuse_port=True))
        for listener in listeners:
            # Accepted connections inherit it: gunicorn sends a response's headers and body in two writes, which
            # Nagle's algorithm would hold back until the client's delayed ACK (~40 ms a response).
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listener.listen(backlog)
    except OSError:
        for listener in listeners:
            listener.close()
        raise
    return listeners


class StudyServer(BaseApplication):
    """gunicorn's arbiter serving `make_app()`; prints `serving on http://HOST:PORT/` once the socket listens."""

    def __init__(
        self, make_app: Callable[[], Flask], host: str, port: int, workers: int, threads: int, banner_suffix: str = ""
    ) -> None:
        if workers < 1 or threads < 1:
            raise ValueError("--workers and --threads must be at least 1")
        self._make_app = make_app
        self._banner_suffix = banner_suffix
        self._host, self._port = host, port
        self._settings: Mapping[str, Any] = {
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "preload_app": False,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "keepalive": 30,
            "when_ready": self._announce,
            "pre_fork": self._give_worker_a_socket,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._settings.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """In each worker after the fork: the app with a database connection per thread, then everything allocated
        so far moved out of the garbage collector's sight (gc.freeze). A full collection of a worker's ~140,000
        start-up objects takes ~80 ms here, during which all of its threads stand still: the slowest answers of the
        load benchmark."""
        app = self._make_app()
        try:
            open_pooled_connections(app.extensions["survey_engine"], self.cfg.threads)
        except SQLAlchemyError as error:  # the requests will connect when the database is back
            print(f"warning: cannot connect to the database yet: {error.__class__.__name__}", file=sys.stderr)
        gc.freeze()
        return app

    def run(self) -> None:
        """Serves until stopped; raises OSError if HOST:PORT cannot be bound."""
        listeners = open_listeners(self._host, self._port, self.cfg.workers, self.cfg.backlog)
        arbiter = FixedWorkersArbiter(self)
        arbiter.LISTENERS = listeners
        try:
            arbiter.run()
        except RuntimeError as error:  # gunicorn's own start-up errors, as BaseApplication.run reports them
            sys.exit(f"error: {error}")

    @staticmethod
    def _give_worker_a_socket(arbiter: Arbiter, worker) -> None:
        """Before the fork: the worker accepts from the socket that the fewest running workers accept from."""
        taken = Counter(id(sock) for running in arbiter.WORKERS.values() for sock in running.sockets)
        worker.sockets = [min(arbiter.LISTENERS, key=lambda listener: taken[id(listener)])]

    def _announce(self, arbiter) -> None:
        host, port = arbiter.LISTENERS[0].getsockname()[:2]
        print(
            f"serving on http://{host}:{port}/{self._banner_suffix}",
            file=sys.stdout,
            flush=True,
        )


class FixedWorkersArbiter(Arbiter):
    """gunicorn's arbiter with the worker count fixed: each worker has a listening socket of its own."""

    def handle_ttin(self) -> None:
        self.log.warning("SIGTTIN ignored: the number of workers is fixed (--workers)")

    def handle_ttou(self) -> None:
        self.log.warning("SIGTTOU ignored: the number of workers is fixed (--workers)")
