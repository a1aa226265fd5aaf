"""The schema: migrations match the models on both databases, and an older database is migrated, not broken."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from db.engine import DatabaseUnavailableError, check_connection, is_default_database, make_engine, redacted
from db.migrate import current_revision, head_revision, upgrade_to, upgrade_to_head


def test_migrations_produce_exactly_the_models(engine):
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []
    assert current_revision(engine) == head_revision()


def test_indexes_for_the_lookups_pages_and_jobs_make(engine):
    inspector = inspect(engine)
    lead_indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("lead")}
    for columns in [("email",), ("phone",), ("stage",), ("owner_id", "stage"), ("last_activity_at",)]:
        assert columns in lead_indexes, columns
    touchpoint_indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("touchpoint")}
    assert ("occurred_at",) in touchpoint_indexes
    assert ("lead_id", "occurred_at") in touchpoint_indexes


def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_engine):
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_a_database_from_the_first_version_is_migrated_with_its_rows(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade_to(engine, "0001")
    now = datetime(2026, 1, 5, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO lead (name, stage, status, fit_score, engagement_score, unsubscribed, is_customer,"
                 " created_at, updated_at, version, is_demo) VALUES ('张伟', 'new', 'valid', 0, 0, 0, 0, :now,"
                 " :now, 1, 0)"),
            {"now": now.isoformat()},
        )
        connection.execute(
            text("INSERT INTO account (name, name_key, is_target, is_customer, fit_score, engagement_score,"
                 " created_at) VALUES ('云杉科技', '云杉科技', 0, 0, 0, 0, :now)"),
            {"now": now.isoformat()},
        )
    upgrade_to_head(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        row = connection.execute(text("SELECT name, search_text, attributes FROM lead")).one()
        assert row.name == "张伟" and row.search_text == "" and row.attributes in ("{}", {})
        assert connection.execute(text("SELECT target_lists FROM account")).scalar() in ("[]", [])


def test_upgrade_is_a_no_op_at_head(engine):
    upgrade_to_head(engine)
    assert current_revision(engine) == head_revision()


def test_an_unreachable_database_gives_one_clear_sentence():
    engine = make_engine("postgresql://nobody:secret@127.0.0.1:1/leadloop")
    with pytest.raises(DatabaseUnavailableError) as caught:
        check_connection(engine)
    message = str(caught.value)
    assert message.startswith("Cannot reach the database") and "DATABASE_URL" in message
    assert "secret" not in message, "the password never appears in messages"
    assert "\n" not in message


def test_a_sqlite_path_that_cannot_exist_gives_one_clear_sentence(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DatabaseUnavailableError, match="Cannot reach the database.*DATABASE_URL"):
        make_engine(f"sqlite:///{blocker / 'leadloop.db'}")


def test_only_the_embedded_database_counts_as_the_demo_default(tmp_path):
    from db.engine import DEFAULT_DATABASE_URL

    assert is_default_database(DEFAULT_DATABASE_URL)
    assert not is_default_database(f"sqlite:///{tmp_path / 'team.db'}")
    assert not is_default_database("postgresql://u:p@db/leadloop")
    assert "p@" not in redacted("postgresql://u:p@db/leadloop")
