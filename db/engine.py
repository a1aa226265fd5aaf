"""Engine and sessions.

``DATABASE_URL`` chooses the database; without it LeadLoop uses an embedded SQLite file at
``data/leadloop.db`` (WAL mode, so the scheduler thread and page reruns can read while one writes).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, create_engine

from db.busy import SQLITE_BUSY_TIMEOUT_MS

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'data' / 'leadloop.db'}"


class DatabaseUnavailableError(RuntimeError):
    """The configured database cannot be reached; the message is one sentence for a person."""


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def is_default_database(url: str) -> bool:
    """True for the embedded demo database (the only one that is seeded without being asked)."""
    return make_url(url) == make_url(DEFAULT_DATABASE_URL)


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def normalized_url(url: str) -> str:
    """The URL with the driver LeadLoop uses (psycopg 3 for PostgreSQL)."""
    # Accept the URLs people paste from their hosting panel: postgres:// and postgresql:// use psycopg 3.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # A write waits this long for the writer ahead (a large import holds the lock for its whole transaction).
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# A full rescore writes a million ledger rows derived, in its own transaction, from leads, rules and touchpoints
# that exist: it turns SQLite's per-row foreign-key lookups off for that transaction (see core.scoring) and marks
# the connection; the pool turns them back on when the connection is returned, outside any transaction, so the
# next user of the connection gets the usual checks.
FOREIGN_KEYS_OFF = "foreign_keys_off"


BULK_CACHE = "bulk_cache"
# SQLite's page cache for a batch that reads and writes much of the database (negative: KiB, so 256 MB at most).
_BULK_CACHE_KIB = 262_144


def use_bulk_cache(session: Session) -> None:
    """Give this session's SQLite connection a 256 MB page cache (its temporary schema too) for a bulk job, and
    let its commit return without copying the write-ahead log back into the database.

    With the default 2 MB cache, an import or a full rescore reads the same index pages from disk again and
    again. Such a job leaves a log of a few hundred MB, and copying it back at commit (SQLite's automatic
    checkpoint) would add most of a second to it: a background thread does that once the connection is
    returned (:func:`_checkpoint_later`). The pool puts the defaults back then, so the memory is not kept by a
    connection that next serves a page."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    connection.exec_driver_sql(f"PRAGMA cache_size=-{_BULK_CACHE_KIB}")
    connection.exec_driver_sql(f"PRAGMA temp.cache_size=-{_BULK_CACHE_KIB}")
    connection.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
    connection.connection.info[BULK_CACHE] = True


def _checkpoint(path: str) -> None:
    try:
        # mode=rw: a file removed in the meantime is not created again, empty.
        with closing(sqlite3.connect(f"{Path(path).as_uri()}?mode=rw", uri=True,
                                     timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)) as connection:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error as error:  # the next commit's automatic checkpoint does it instead
        log.warning("background checkpoint of %s failed: %s", path, error)


def _checkpoint_later(dbapi_connection) -> None:  # noqa: ANN001 - DB-API connection
    """Copy the write-ahead log back into the database file in a thread of its own (a passive checkpoint: it
    waits for no reader or writer), so neither the bulk job nor the next person to save anything waits for it."""
    rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
    path = next((row[2] for row in rows if row[1] == "main"), "")
    if path:  # an in-memory database has no file and no log
        threading.Thread(target=_checkpoint, args=(path,), name="sqlite-checkpoint", daemon=True).start()


def _restore_connection(dbapi_connection, record) -> None:  # noqa: ANN001 - DB-API objects
    """Undo what a bulk job changed on a pooled SQLite connection (foreign keys, page cache, checkpoints)."""
    if dbapi_connection is None:
        return
    statements = []
    if record.info.pop(FOREIGN_KEYS_OFF, False):
        statements.append("PRAGMA foreign_keys=ON")
    bulk = record.info.pop(BULK_CACHE, False)
    if bulk:
        statements += ["PRAGMA cache_size=-2000", "PRAGMA temp.cache_size=-2000", "PRAGMA wal_autocheckpoint=1000"]
    if statements:
        cursor = dbapi_connection.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()
    if bulk:
        _checkpoint_later(dbapi_connection)


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """A new engine for ``url`` (default: ``DATABASE_URL``), with SQLite pragmas on every connection."""
    url = normalized_url(url or database_url())
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DatabaseUnavailableError(
                    f"Cannot reach the database at {redacted(url)}: its folder cannot be created ({error.strerror}). "
                    "Check DATABASE_URL."
                ) from error
        engine = create_engine(
            url,
            echo=echo,
            # The scheduler thread shares the engine with page reruns.
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(engine, "connect", _set_sqlite_pragmas)
        event.listen(engine, "checkin", _restore_connection)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        connect_args={"connect_timeout": 5},
    )


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (one pool per database)."""
    key = normalized_url(url or database_url())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(key)
        return engine


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def check_connection(engine: Engine) -> None:
    """Raise ``DatabaseUnavailableError`` with one clear sentence when the database cannot be reached."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (OperationalError, SQLAlchemyError) as error:
        detail = str(getattr(error, "orig", error)).strip().splitlines()[0] if str(error) else type(error).__name__
        raise DatabaseUnavailableError(
            f"Cannot reach the database at {redacted(str(engine.url))}: {detail}. "
            "Check DATABASE_URL and that the database server is running."
        ) from error


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = Session(engine or get_engine(), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
