"""Time in one place: aware UTC in the database and in core, the team's time zone for display and working hours."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

TEAM_TIMEZONE = ZoneInfo(os.environ.get("LEADLOOP_TIMEZONE", "Asia/Shanghai"))


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only form core stores or compares)."""
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    """Aware UTC from any datetime; a naive value is taken to be in the team's time zone (what people type)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=TEAM_TIMEZONE)
    return value.astimezone(UTC)


def to_local(value: datetime | None) -> datetime | None:
    """A datetime in the team's time zone, for display and working-hour arithmetic."""
    if value is None:
        return None
    return ensure_utc(value).astimezone(TEAM_TIMEZONE)
