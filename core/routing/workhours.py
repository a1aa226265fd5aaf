"""Working time: the SLA clock only runs during the team's working hours.

An MQL handed to a rep at 17:30 on a Friday with an 8-hour SLA is due at 16:30 on Monday, not at 01:30 on
Saturday. The calendar is read from the "sla" setting (hours of the working day, working weekdays, public
holidays and the weekend make-up days that Chinese holiday schedules add) and works in the team's time zone
(``core.clock.TEAM_TIMEZONE``); every value going in and out is aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.clock import TEAM_TIMEZONE, ensure_utc
from core.errors import ValidationError

# Ten years of calendar days: far beyond any SLA, and a hard stop for a calendar without working days.
_MAX_DAYS = 3660


def _dates(values: Iterable[Any]) -> frozenset[date]:
    out: set[date] = set()
    for value in values or ():
        if isinstance(value, datetime):
            out.add(value.date())
        elif isinstance(value, date):
            out.add(value)
        elif str(value).strip():
            try:
                out.add(date.fromisoformat(str(value).strip()))
            except ValueError as error:
                raise ValidationError(
                    f"Not a date: {value}. Write dates as 2026-10-01.", key="routing.bad_date", value=str(value)
                ) from error
    return frozenset(out)


@dataclass(frozen=True)
class WorkCalendar:
    start: float = 9.0  # hour of the day the working day starts (local time), e.g. 9 or 8.5
    end: float = 18.0
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    tz: ZoneInfo = TEAM_TIMEZONE

    @classmethod
    def from_settings(cls, sla: dict[str, Any], tz: ZoneInfo = TEAM_TIMEZONE) -> WorkCalendar:
        calendar = cls(
            start=float(sla.get("work_start", 9)),
            end=float(sla.get("work_end", 18)),
            workdays=frozenset(int(d) for d in sla.get("workdays", (0, 1, 2, 3, 4))),
            holidays=_dates(sla.get("holidays", ())),
            extra_workdays=_dates(sla.get("extra_workdays", ())),
            tz=tz,
        )
        calendar.validate()
        return calendar

    def validate(self) -> None:
        if not (0 <= self.start < self.end <= 24):
            raise ValidationError(
                f"The working day must start before it ends (between 0 and 24): {self.start}–{self.end}.",
                key="routing.bad_work_hours", start=self.start, end=self.end,
            )
        if not self.workdays and not self.extra_workdays:
            raise ValidationError("Choose at least one working day.", key="routing.no_workdays")
        if not self.workdays <= set(range(7)):
            raise ValidationError("Working days are Monday (0) to Sunday (6).", key="routing.no_workdays")

    @property
    def hours_per_day(self) -> float:
        return self.end - self.start

    def is_workday(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() in self.workdays

    def _window(self, day: date) -> tuple[datetime, datetime]:
        midnight = datetime.combine(day, time(0), tzinfo=self.tz)
        return midnight + timedelta(hours=self.start), midnight + timedelta(hours=self.end)

    def add(self, start: datetime, hours: float) -> datetime:
        """The moment ``hours`` working hours after ``start`` (aware UTC in, aware UTC out)."""
        local = ensure_utc(start).astimezone(self.tz)
        remaining = timedelta(hours=hours)
        if remaining <= timedelta(0):
            return local.astimezone(UTC)
        day = local.date()
        for _ in range(_MAX_DAYS):
            if self.is_workday(day):
                opens, closes = self._window(day)
                begin = max(local, opens)
                if begin < closes:
                    available = closes - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(UTC)
                    remaining -= available
            day += timedelta(days=1)
            local = datetime.combine(day, time(0), tzinfo=self.tz)
        raise ValidationError("The working calendar has no working time.", key="routing.no_workdays")

    def subtract(self, end: datetime, hours: float) -> datetime:
        """The moment ``hours`` working hours before ``end`` (for "remind two working hours before due")."""
        local = ensure_utc(end).astimezone(self.tz)
        remaining = timedelta(hours=hours)
        if remaining <= timedelta(0):
            return local.astimezone(UTC)
        day = local.date()
        for _ in range(_MAX_DAYS):
            if self.is_workday(day):
                opens, closes = self._window(day)
                finish = min(local, closes)
                if finish > opens:
                    available = finish - opens
                    if remaining <= available:
                        return (finish - remaining).astimezone(UTC)
                    remaining -= available
            day -= timedelta(days=1)
            local = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz)
        raise ValidationError("The working calendar has no working time.", key="routing.no_workdays")

    def between(self, start: datetime, end: datetime) -> float:
        """Working hours from ``start`` to ``end``; negative when ``end`` is earlier (time overdue)."""
        a, b = ensure_utc(start), ensure_utc(end)
        if b < a:
            return -self.between(b, a)
        a_local, b_local = a.astimezone(self.tz), b.astimezone(self.tz)
        total = timedelta(0)
        day = a_local.date()
        last = b_local.date()
        steps = 0
        while day <= last and steps < _MAX_DAYS:
            if self.is_workday(day):
                opens, closes = self._window(day)
                begin, finish = max(a_local, opens), min(b_local, closes)
                if finish > begin:
                    total += finish - begin
            day += timedelta(days=1)
            steps += 1
        return total.total_seconds() / 3600
