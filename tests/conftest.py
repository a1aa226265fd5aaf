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
# Tests drive time themselves: no in-process scheduler thread in AppTests or app servers they start.
os.environ.setdefault("LEADLOOP_SCHEDULER", "off")
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


# ---------------------------------------------------------------------------------------------------------------
# Real local receivers: an SMTP server (aiosmtpd) and an HTTP server that records what it is sent.
# ---------------------------------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RecordingSmtp:
    """What a real SMTP server on 127.0.0.1 received: one entry per accepted message."""

    def __init__(self) -> None:
        import threading

        self.messages: list[dict[str, object]] = []
        self.lock = threading.Lock()
        self.refuse: set[str] = set()  # recipients answered with 550

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, N802, ANN201
        if address in self.refuse:
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802, ANN201
        from email import message_from_bytes, policy

        parsed = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append({
                "from": envelope.mail_from, "to": list(envelope.rcpt_tos), "subject": str(parsed["Subject"]),
                "message_id": str(parsed["Message-ID"]), "body": parsed.get_body(("plain",)).get_content(),
                "headers": dict(parsed.items()),
            })
        return "250 Message accepted for delivery"


def running_smtp(recorder: RecordingSmtp) -> Iterator[tuple[str, int, RecordingSmtp]]:
    """Serve ``recorder`` as a real SMTP server on 127.0.0.1 for the duration: ``host, port, recorder``."""
    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield "127.0.0.1", port, recorder
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, int, RecordingSmtp]]:
    """A real SMTP server on 127.0.0.1: ``host, port, recorder``."""
    yield from running_smtp(RecordingSmtp())


class RecordingHttp:
    def __init__(self) -> None:
        self.requests: list[dict[str, object]] = []
        self.status = 200  # what the server answers; a test may change it


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, RecordingHttp]]:
    """A real HTTP server on 127.0.0.1 recording every POST: ``base_url, recorder``."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    recorder = RecordingHttp()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError:
                body = raw.decode("utf-8", "replace")
            recorder.requests.append({"path": self.path, "headers": dict(self.headers.items()), "json": body})
            self.send_response(recorder.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorder
    finally:
        server.shutdown()
        server.server_close()
