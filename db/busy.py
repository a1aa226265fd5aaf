"""When SQLite is busy: one writer at a time.

In WAL mode readers never wait, but a write waits for the writer ahead of it — for a 100,000-row import,
which is one transaction so that it is all or nothing, that can be longer than a person should wait. Two
answers, both here:

* ``is_busy(error)`` recognises the "database is locked" error, so the interface can say, in the user's
  language, that their change was not saved because a large job is writing, and that trying again will work.
* ``write_later(engine, write)`` retries a small bookkeeping write (a login's timestamp and audit line, a
  failed-login count) in the background until the writer ahead is done, so signing in never fails on it.

PostgreSQL locks rows, not the database, so there these paths do not arise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

log = logging.getLogger(__name__)

# How long any SQLite write waits for the writer ahead by default (db.engine sets it on every connection).
SQLITE_BUSY_TIMEOUT_MS = 30_000
_BUSY_WORDS = ("database is locked", "database is busy", "database table is locked")


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` is SQLite saying another connection holds the write lock."""
    if not isinstance(error, OperationalError):
        return False
    text = str(getattr(error, "orig", error)).lower()
    return any(word in text for word in _BUSY_WORDS)


@contextmanager
def patience(session: Session, seconds: float) -> Iterator[None]:
    """Within the block, a write on ``session`` waits at most ``seconds`` for SQLite's lock (then fails busy)."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    connection = session.connection()
    connection.exec_driver_sql(f"PRAGMA busy_timeout={int(seconds * 1000)}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def write_later(engine: Engine, write: Callable[[Session], None], *, what: str,
                give_up_after: float = 3600.0, pause: float = 2.0) -> threading.Thread:
    """Run ``write(session)`` and commit, in a background thread, retrying while the database is busy."""

    def attempt() -> None:
        deadline = time.monotonic() + give_up_after
        while True:
            try:
                with Session(engine) as session:
                    write(session)
                    session.commit()
                return
            except OperationalError as error:
                if not is_busy(error) or time.monotonic() > deadline:
                    log.error("gave up writing %s: %s", what, error)
                    return
                time.sleep(pause)

    thread = threading.Thread(target=attempt, name=f"write-later:{what}", daemon=True)
    thread.start()
    return thread
