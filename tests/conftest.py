"""Shared fixtures.

Every test that takes ``engine`` or ``session`` runs twice: on a fresh SQLite file and, when
``TEST_DATABASE_URL`` is set, on that PostgreSQL database (schema rebuilt once per run, tables truncated between
tests). Without ``TEST_DATABASE_URL`` the PostgreSQL variants are skipped.

Both schemas are built by the Alembic migrations, the way the app builds them, so every database test also
checks the migrations. SQLite migrates once into a template file that each test copies.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

import db.models  # noqa: F401 - registers the tables
from core.auth import SYSTEM, Actor, actor_for, create_user
from db.engine import make_engine
from db.migrate import upgrade_to_head

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"]

_pg_engine: Engine | None = None


def _postgres_engine() -> Engine:
    global _pg_engine
    if _pg_engine is None:
        assert TEST_DATABASE_URL
        engine = make_engine(TEST_DATABASE_URL)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        upgrade_to_head(engine)
        _pg_engine = engine
    return _pg_engine


def _truncate_all(engine: Engine) -> None:
    names = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


_template_path: Path | None = None


def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    global _template_path
    if _template_path is None:
        path = tmp_path_factory.mktemp("template") / "leadloop-template.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade_to_head(engine)
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        _template_path = path
    return _template_path


def fresh_sqlite_url(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A new SQLite database at the current schema (a copy of the migrated template)."""
    target = tmp_path / "leadloop-test.db"
    shutil.copyfile(_sqlite_template(tmp_path_factory), target)
    return f"sqlite:///{target}"


def database_engine(backend: str, tmp_path, tmp_path_factory) -> Iterator[Engine]:  # noqa: ANN001
    if backend == "postgresql":
        if not TEST_DATABASE_URL:
            pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL variant skipped")
        engine = _postgres_engine()
        _truncate_all(engine)
        yield engine
        engine.dispose()  # connections opened by the test (threads, scheduler) are closed
    else:
        engine = make_engine(fresh_sqlite_url(tmp_path, tmp_path_factory))
        yield engine
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path, tmp_path_factory) -> Iterator[Engine]:  # noqa: ANN001
    yield from database_engine(request.param, tmp_path, tmp_path_factory)


@pytest.fixture
def sqlite_engine(tmp_path, tmp_path_factory) -> Iterator[Engine]:  # noqa: ANN001
    """For tests that are about SQLite itself (or about code that does not touch SQL)."""
    yield from database_engine("sqlite", tmp_path, tmp_path_factory)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def make_actor(session: Session):  # noqa: ANN201
    """Create a user with a role and return its Actor: ``make_actor("sales", username="rep1")``."""
    counter = {"n": 0}

    def _make(role: str, username: str | None = None, **kwargs: object) -> Actor:
        counter["n"] += 1
        user = create_user(
            session,
            actor=SYSTEM,
            username=username or f"{role}{counter['n']}",
            password="Passw0rd!x",
            role=role,
            **kwargs,  # type: ignore[arg-type]
        )
        session.commit()
        return actor_for(session, user)

    return _make
