"""Time for the demo world: everything is epoch seconds (UTC) derived from one ``now``.

Working hours, weekdays and session times are in the team's time zone (``core.clock.TEAM_TIMEZONE``), so the
demo looks right on the screen: forms arrive during office hours, livestreams run in the evening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from core.clock import TEAM_TIMEZONE

DAY = 86_400
HOUR = 3_600
MINUTE = 60

# Relative weight of each local hour for things people do at work (forms, page views, decisions).
OFFICE_HOURS = np.array(
    [0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 2.0, 5.0, 8.0, 8.0, 4.0, 5.0, 8.0, 8.0, 7.0, 5.0, 3.0, 2.0,
     2.0, 1.8, 1.2, 0.6]
)
OFFICE_HOURS = OFFICE_HOURS / OFFICE_HOURS.sum()


@dataclass
class Timeline:
    """``now`` and the year before it, with local-time helpers."""

    now_dt: datetime
    days: int = 365
    now: int = field(init=False)
    start: int = field(init=False)
    offset: int = field(init=False)

    def __post_init__(self) -> None:
        self.now = int(self.now_dt.timestamp())
        self.start = self.now - self.days * DAY
        utcoffset = TEAM_TIMEZONE.utcoffset(self.now_dt.replace(tzinfo=None))
        self.offset = int(utcoffset.total_seconds()) if utcoffset is not None else 0

    # -- local days ------------------------------------------------------------------------------------------
    def local_day(self, t: np.ndarray | int) -> np.ndarray | int:
        """Local day number (days since 1970-01-01 in the team's time zone)."""
        return (np.asarray(t) + self.offset) // DAY if isinstance(t, np.ndarray) else (t + self.offset) // DAY

    def day_start(self, day: np.ndarray | int) -> np.ndarray | int:
        """UTC epoch seconds of local midnight of ``day``."""
        return day * DAY - self.offset

    @property
    def today(self) -> int:
        return int(self.local_day(self.now))

    def weekday(self, day: np.ndarray | int) -> np.ndarray | int:
        """Monday = 0 (1970-01-01 was a Thursday)."""
        return (day + 3) % 7

    def local_date(self, t: int) -> date:
        return date(1970, 1, 1) + timedelta(days=int(self.local_day(t)))

    def to_datetime(self, t: int | float) -> datetime:
        return datetime.fromtimestamp(int(t), UTC)

    def office_times(self, rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
        """A time of day with office-hour weights on each given local day."""
        hours = rng.choice(24, size=len(days), p=OFFICE_HOURS)
        seconds = rng.integers(0, HOUR, size=len(days))
        return self.day_start(days) + hours * HOUR + seconds

    # -- working hours (SLA clocks) --------------------------------------------------------------------------
    def add_working_hours(self, t: int, hours: float, *, start_hour: int = 9, end_hour: int = 18) -> int:
        """``t`` plus ``hours`` of working time (Monday–Friday, 09:00–18:00 local), as the default SLA setting."""
        remaining = hours * HOUR
        local = t + self.offset
        open_s, close_s = start_hour * HOUR, end_hour * HOUR
        while True:
            day, second = divmod(local, DAY)
            if (day + 3) % 7 >= 5 or second >= close_s:
                local = (day + 1) * DAY + open_s
                continue
            if second < open_s:
                local = day * DAY + open_s
                second = open_s
            available = close_s - second
            if remaining <= available:
                return int(local + remaining - self.offset)
            remaining -= available
            local = (day + 1) * DAY + open_s


def parse_now(value: datetime | str | None) -> datetime:
    """The seed's clock: aware UTC truncated to the minute; a naive value is read in the team's time zone."""
    from core.clock import ensure_utc, utcnow

    if value is None:
        moment = utcnow()
    elif isinstance(value, str):
        moment = ensure_utc(datetime.fromisoformat(value))
    else:
        moment = ensure_utc(value)
    return moment.astimezone(UTC).replace(second=0, microsecond=0)
