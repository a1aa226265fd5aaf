"""Backup and restore round trips: SQLite through its online backup API, PostgreSQL through pg_dump/pg_restore."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from core.backup import backup, restore
from core.errors import ValidationError
from db.models import Lead, ScoreEvent, Touchpoint
from seed.demo import seed_demo


def _fingerprint(engine) -> tuple:
    with Session(engine) as session:
        return (
            session.scalar(select(func.count()).select_from(Lead)),
            session.scalar(select(func.count()).select_from(Touchpoint)),
            tuple(session.scalars(select(Lead.name).order_by(Lead.id).limit(50))),
        )


def test_backup_then_restore_brings_back_every_row(engine, tmp_path):
    if engine.dialect.name == "postgresql" and shutil.which("pg_dump") is None:
        pytest.skip("PostgreSQL client tools are not installed")
    seed_demo(engine, leads=120, seed=3)
    before = _fingerprint(engine)
    path = backup(engine, tmp_path / "leadloop.backup")
    assert path.stat().st_size > 0
    with Session(engine) as session:  # lose data after the backup
        session.execute(ScoreEvent.__table__.delete())  # the ledger points at touchpoints
        session.execute(Touchpoint.__table__.delete())
        session.commit()
    assert _fingerprint(engine) != before
    restore(engine, path)
    assert _fingerprint(engine) == before


def test_a_sqlite_backup_is_taken_while_a_writer_holds_the_database(sqlite_engine, tmp_path):
    seed_demo(sqlite_engine, leads=60, seed=5)
    with Session(sqlite_engine) as writer:
        writer.add(Lead(name="写入中"))
        writer.flush()  # an open write transaction
        path = backup(sqlite_engine, tmp_path / "during.db")
        writer.rollback()
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"


def test_restoring_something_that_is_not_a_backup_is_refused(sqlite_engine, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(ValidationError):
        restore(sqlite_engine, junk)
    with pytest.raises(ValidationError):
        restore(sqlite_engine, tmp_path / "missing.db")
