"""One module per CLI command; see core/__main__.py."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from db.engine import check_connection, get_engine
from db.migrate import upgrade_to_head


def ready_engine(url: str | None = None) -> Engine:
    """The configured engine, reachable and migrated to the current schema."""
    engine = get_engine(url)
    check_connection(engine)
    upgrade_to_head(engine)
    return engine
