"""Backup and restore of the whole database.

SQLite uses its online backup API, so a backup taken while the console runs is a consistent snapshot (WAL
readers and the writer go on). PostgreSQL uses ``pg_dump --format=custom`` and ``pg_restore --clean``, the tools
its operators already trust; they must be on the PATH (package ``postgresql-client``).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import Engine, make_url

from core.errors import LeadLoopError, ValidationError


class BackupError(LeadLoopError):
    key = "backup.failed"


def _sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise ValidationError("An in-memory database cannot be backed up.", key="backup.in_memory")
    return Path(database)


def _libpq_args(engine: Engine) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for the PostgreSQL client tools; the password travels in the environment."""
    url = make_url(str(engine.url.render_as_string(hide_password=False)))
    args = ["--host", url.host or "127.0.0.1", "--port", str(url.port or 5432), "--username", url.username or "postgres",
            "--dbname", url.database or ""]
    env = {"PGPASSWORD": url.password} if url.password else {}
    return args, env


def _run(command: list[str], env: dict[str, str]) -> None:
    import os

    tool = command[0]
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} is not installed; install the PostgreSQL client tools.", key="backup.no_tool",
                          tool=tool)
    result = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BackupError(f"{tool} failed: {detail[-1] if detail else result.returncode}", key="backup.tool_failed",
                          tool=tool, detail=detail[-1] if detail else str(result.returncode))


def backup(engine: Engine, target: Path) -> Path:
    """Write a consistent copy of the database to ``target`` and return it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if engine.dialect.name == "sqlite":
        source = sqlite3.connect(_sqlite_path(engine))
        destination = sqlite3.connect(target)
        try:
            with destination:
                source.backup(destination)
        finally:
            destination.close()
            source.close()
        return target
    if engine.dialect.name == "postgresql":
        args, env = _libpq_args(engine)
        _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(target), *args], env)
        return target
    raise ValidationError(f"No backup method for {engine.dialect.name}.", key="backup.unsupported",
                          dialect=engine.dialect.name)


def restore(engine: Engine, source: Path) -> None:
    """Replace the database's contents with the backup in ``source`` (stop the console first)."""
    source = Path(source)
    if not source.is_file():
        raise ValidationError(f"No backup file at {source}.", key="backup.missing_file", path=str(source))
    engine.dispose()  # no pooled connection may hold the old pages
    if engine.dialect.name == "sqlite":
        with open(source, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise ValidationError(f"{source} is not a SQLite backup.", key="backup.not_sqlite", path=str(source))
        backup_db = sqlite3.connect(source)
        live = sqlite3.connect(_sqlite_path(engine))
        try:
            with live:
                backup_db.backup(live)
        finally:
            live.close()
            backup_db.close()
        return
    if engine.dialect.name == "postgresql":
        args, env = _libpq_args(engine)
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", *args, str(source)], env)
        return
    raise ValidationError(f"No restore method for {engine.dialect.name}.", key="backup.unsupported",
                          dialect=engine.dialect.name)
