"""SQLite has one writer at a time. While another connection holds the write lock (a large import is one
transaction), signing in still works — its bookkeeping is written as soon as the lock is free — and a
refused write is recognised as "busy", so the interface can say so in the user's words and nothing is lost."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from core.auth import authenticate
from core.errors import AuthenticationFailed
from db.busy import is_busy, patience
from db.models import AuditLog, User


def _hold_write_lock(engine) -> sqlite3.Connection:  # noqa: ANN001
    """Another process's writer: a raw connection with an open write transaction."""
    holder = sqlite3.connect(engine.url.database, timeout=0, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE user SET display_name = display_name")
    return holder


def _wait_for(engine, condition, seconds: float = 30.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with Session(engine) as session:
            value = condition(session)
        if value:
            return value
        time.sleep(0.2)
    return None


def test_signing_in_while_another_writer_holds_the_lock(sqlite_engine, tmp_path):
    with Session(sqlite_engine) as session:
        from core.auth import SYSTEM, create_user

        create_user(session, actor=SYSTEM, username="mia", password="Passw0rd!x", role="marketer")
        session.commit()
    holder = _hold_write_lock(sqlite_engine)
    try:
        with Session(sqlite_engine) as session:
            actor = authenticate(session, username="mia", password="Passw0rd!x")
        assert actor.role == "marketer"
        with Session(sqlite_engine) as session:
            assert session.exec(select(User.last_login_at).where(User.username == "mia")).one() is None
        with Session(sqlite_engine) as session, pytest.raises(AuthenticationFailed):
            authenticate(session, username="mia", password="wrong-password")
    finally:
        holder.execute("COMMIT")
        holder.close()
    # Once the writer ahead is done, the login and the failed attempt are recorded.
    assert _wait_for(sqlite_engine, lambda s: s.exec(select(User.last_login_at).where(User.username == "mia")).one())
    assert _wait_for(sqlite_engine, lambda s: s.exec(select(AuditLog).where(AuditLog.action == "login")).first())
    assert _wait_for(sqlite_engine, lambda s: s.exec(select(User.failed_logins).where(User.username == "mia")).one())


def test_a_write_refused_by_the_lock_is_recognised_as_busy(sqlite_engine):
    holder = _hold_write_lock(sqlite_engine)
    try:
        with Session(sqlite_engine) as session, pytest.raises(OperationalError) as refused:
            with patience(session, 0.1):
                session.execute(text("UPDATE user SET display_name = display_name"))
        assert is_busy(refused.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not is_busy(OperationalError("SELECT 1", {}, Exception("no such table: x")))


def _impatient(engine):  # noqa: ANN001, ANN202
    """The same database file, with writes that give up on the lock after 0.2 s instead of 30 s."""
    from sqlalchemy import event

    from db.engine import make_engine

    impatient = make_engine(str(engine.url))
    event.listen(impatient, "connect", lambda connection, _: connection.execute("PRAGMA busy_timeout=200"))
    return impatient


def test_a_tick_waits_for_the_writer_ahead_then_runs(sqlite_engine):
    import threading

    from core.scheduler import run_job
    from db.models import JobRun

    engine = _impatient(sqlite_engine)
    holder = _hold_write_lock(sqlite_engine)
    records = []
    tick = threading.Thread(target=lambda: records.append(
        run_job("workflow_tick", engine=engine, holder="cli:test", need_lease=False, patience=60)))
    tick.start()
    time.sleep(1.0)
    assert tick.is_alive()  # still waiting for the lock
    holder.execute("COMMIT")
    holder.close()
    tick.join(timeout=60)
    assert records and records[0].ok, records and records[0].error
    with Session(sqlite_engine) as session:
        assert session.exec(select(JobRun).where(JobRun.job == "workflow_tick", JobRun.ok)).first() is not None
    engine.dispose()


def test_a_beat_that_finds_the_database_busy_does_not_wait_and_is_recorded_later(sqlite_engine):
    from core.scheduler import run_job
    from db.models import JobRun

    engine = _impatient(sqlite_engine)
    holder = _hold_write_lock(sqlite_engine)
    try:
        started = time.monotonic()
        record = run_job("workflow_tick", engine=engine, holder="cli:test", need_lease=False)
        assert record is not None and time.monotonic() - started < 5  # nothing to do: no write was needed
        # The scheduler's own beat: the lease cannot be taken either, which is "not leading this beat".
        assert run_job("workflow_tick", engine=engine, holder="h1") is None
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert _wait_for(sqlite_engine, lambda s: s.exec(select(JobRun).where(JobRun.job == "workflow_tick")).first())
    engine.dispose()
