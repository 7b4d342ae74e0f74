"""`survey-app serve`: the app under gunicorn, pre-forked worker processes with threads (gthread workers).

One Python process runs one thread of Python at a time, so a single process serves at most one core's worth of
requests; the study server therefore runs several worker processes. Each worker builds its own app (and database
engine) after the fork: database connections are never shared across processes.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

DEFAULT_THREADS = 4


def default_workers() -> int:
    """One worker process per CPU this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_can_listen(host: str, port: int) -> None:
    """Raises OSError with a one-line message if HOST:PORT cannot be bound (gunicorn would retry, then exit)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


class StudyServer(BaseApplication):
    """gunicorn's arbiter serving `make_app()`; prints `serving on http://HOST:PORT/` once the socket listens."""

    def __init__(
        self, make_app: Callable[[], Flask], host: str, port: int, workers: int, threads: int, banner_suffix: str = ""
    ) -> None:
        if workers < 1 or threads < 1:
            raise ValueError("--workers and --threads must be at least 1")
        self._make_app = make_app
        self._banner_suffix = banner_suffix
        self._settings: Mapping[str, Any] = {
            "bind": [f"{host}:{port}"],
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "preload_app": False,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "keepalive": 30,
            "when_ready": self._announce,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._settings.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._make_app()

    def _announce(self, arbiter) -> None:
        host, port = arbiter.LISTENERS[0].sock.getsockname()[:2]  # --port 0: the port the system chose
        print(
            f"serving on http://{host}:{port}/{self._banner_suffix}",
            file=sys.stdout,
            flush=True,
        )
