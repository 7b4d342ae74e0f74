"""Login throttling: Flask-Limiter's limits, counted in the app's own database.

Flask-Limiter (with the `limits` library) decides what is counted and when a request is refused (429 with
Retry-After). Its counters must be shared by every process of `survey-app serve`: an in-memory counter per worker
would multiply the allowance by the number of workers, and the app has no Redis or Memcached beside it. So this
module gives `limits` one more storage backend, `survey-db://`, a table of fixed-window counters in the study's
database (SQLite or PostgreSQL), incremented by one atomic upsert. Only the admin login is limited: the raters' pages
carry no limit, so the storage is never touched on their hot path.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits.storage import Storage
from sqlalchemy import Engine, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from survey_app.models import RateLimitCounter

COUNTERS = RateLimitCounter.__table__
# Failed and successful attempts alike count (a hit is counted before the password is checked, atomically, so
# parallel guesses cannot slip through between a check and a count).
LOGIN_LIMIT_PER_ACCOUNT = "5 per minute;20 per hour"
LOGIN_LIMIT_PER_ADDRESS = "10 per minute;60 per hour"
STORAGE_URI = "survey-db://"


class DatabaseStorage(Storage):
    """A `limits` storage (fixed and fixed-window strategies) on the app's SQLAlchemy engine; pass it as
    `storage_options={"engine": engine}`."""

    STORAGE_SCHEME = ["survey-db"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        self.engine: Engine = options.pop("engine")
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Adds `amount` to the counter of `key` (a new window of `expiry` seconds if there is none, or it ended) and
        returns the new count, in one statement."""
        now = time.time()
        dialect_insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        statement = dialect_insert(COUNTERS).values(key=key, count=amount, expires_at=now + expiry)
        ended = COUNTERS.c.expires_at <= now
        statement = statement.on_conflict_do_update(
            index_elements=[COUNTERS.c.key],
            set_={
                "count": case((ended, amount), else_=COUNTERS.c.count + amount),
                "expires_at": case((ended, now + expiry), else_=COUNTERS.c.expires_at),
            },
        ).returning(COUNTERS.c.count)
        with self.engine.begin() as connection:
            return connection.execute(statement).scalar_one()

    def get(self, key: str) -> int:
        with self.engine.connect() as connection:
            count = connection.execute(
                select(COUNTERS.c.count).where(COUNTERS.c.key == key, COUNTERS.c.expires_at > time.time())
            ).scalar()
        return count or 0

    def get_expiry(self, key: str) -> float:
        with self.engine.connect() as connection:
            expires_at = connection.execute(select(COUNTERS.c.expires_at).where(COUNTERS.c.key == key)).scalar()
        return expires_at if expires_at is not None else time.time()

    def check(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as connection:
            removed = connection.execute(select(func.count()).select_from(COUNTERS)).scalar()
            connection.execute(delete(COUNTERS))
        return removed

    def clear(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(COUNTERS).where(COUNTERS.c.key == key))


def retry_after_seconds(error: RateLimitExceeded) -> int:
    """The refused limit's window: the longest a client must wait (a fixed window ends at most that long after)."""
    return int(error.limit.limit.get_expiry())


def login_account() -> str:
    """The per-account key: the username as typed (case-folded), whether or not such an admin exists."""
    return "account:" + request.form.get("username", "")[:64].strip().casefold()


def login_address() -> str:
    return "address:" + (get_remote_address() or "unknown")


def create_limiter(app: Flask, engine: Engine) -> Limiter:
    """The app's Limiter, counting in `engine`'s database; no default or application-wide limits: views opt in with
    `limiter.limit`."""
    limiter = Limiter(
        key_func=login_address,
        app=app,
        storage_uri=STORAGE_URI,
        storage_options={"engine": engine},
        strategy="fixed-window",
        # Its X-RateLimit headers would read the storage after the view, while on SQLite the view's transaction still
        # holds the process's one connection; a refusal gets Retry-After from retry_after_seconds instead.
        headers_enabled=False,
    )
    # Only decorated views are limited, and a decorated view checks its limits itself when called: the check that
    # Flask-Limiter also runs before every request (~40 us of CPU, measured, about 2 % of the server's CPU per saved
    # answer on the raters' pages, which carry no limit) is taken off.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    app.extensions["survey_limiter"] = limiter
    return limiter
