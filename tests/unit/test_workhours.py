"""Working-hour SLA arithmetic across nights, weekends, holidays and make-up working days (team time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ValidationError
from core.routing.workhours import WorkCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar(start=9, end=18, workdays=frozenset({0, 1, 2, 3, 4}), tz=SHANGHAI)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)


def test_friday_evening_runs_over_the_weekend():
    # Friday 17:30 + 8 working hours: 30 minutes on Friday, 7.5 hours on Monday → Monday 16:30.
    assert CAL.add(local(2026, 11, 6, 17, 30), 8) == local(2026, 11, 9, 16, 30)


def test_a_night_arrival_starts_counting_at_nine():
    assert CAL.add(local(2026, 11, 3, 22, 0), 2) == local(2026, 11, 4, 11, 0)
    assert CAL.add(local(2026, 11, 4, 6, 0), 9) == local(2026, 11, 4, 18, 0)


def test_a_weekend_arrival_starts_on_monday():
    assert CAL.add(local(2026, 11, 7, 10, 0), 8) == local(2026, 11, 9, 17, 0)


def test_results_are_aware_utc():
    due = CAL.add(datetime(2026, 11, 2, 1, 0, tzinfo=UTC), 1)  # 09:00 Shanghai
    assert due.tzinfo is UTC and due == datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def test_public_holidays_and_make_up_days():
    # National Day week 2026: 1–7 October off; Sunday 27 September and Saturday 10 October are working days.
    golden_week = WorkCalendar.from_settings({
        "work_start": 9, "work_end": 18, "workdays": [0, 1, 2, 3, 4],
        "holidays": [f"2026-10-0{d}" for d in range(1, 8)], "extra_workdays": ["2026-09-27", "2026-10-10"],
    }, tz=SHANGHAI)
    assert golden_week.add(local(2026, 9, 30, 17, 0), 8) == local(2026, 10, 8, 16, 0)
    assert golden_week.add(local(2026, 9, 26, 12, 0), 4) == local(2026, 9, 27, 13, 0)  # Sunday works
    assert golden_week.add(local(2026, 10, 9, 17, 0), 2) == local(2026, 10, 10, 10, 0)  # so does Saturday


def test_hours_between_count_only_working_time_and_go_negative_when_overdue():
    assert CAL.between(local(2026, 11, 6, 17, 30), local(2026, 11, 9, 16, 30)) == pytest.approx(8)
    assert CAL.between(local(2026, 11, 9, 16, 30), local(2026, 11, 6, 17, 30)) == pytest.approx(-8)
    assert CAL.between(local(2026, 11, 7, 9, 0), local(2026, 11, 8, 20, 0)) == 0  # a weekend


def test_subtract_is_the_inverse_of_add():
    due = local(2026, 11, 9, 10, 0)
    assert CAL.subtract(due, 2) == local(2026, 11, 6, 17, 0)


def test_half_hours_and_bad_calendars():
    cal = WorkCalendar.from_settings({"work_start": 8.5, "work_end": 17.5, "workdays": [0, 1, 2, 3, 4, 5]})
    assert cal.hours_per_day == 9
    with pytest.raises(ValidationError):
        WorkCalendar.from_settings({"work_start": 18, "work_end": 9, "workdays": [0]})
    with pytest.raises(ValidationError):
        WorkCalendar.from_settings({"work_start": 9, "work_end": 18, "workdays": []})
    with pytest.raises(ValidationError) as caught:
        WorkCalendar.from_settings({"holidays": ["十月一日"]})
    assert "十月一日" in caught.value.localized("zh")


@settings(max_examples=200, deadline=None)
@given(start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
       hours=st.floats(min_value=0.1, max_value=60))
def test_the_working_time_between_start_and_due_is_the_sla(start, hours):
    begin = start.replace(tzinfo=SHANGHAI).astimezone(UTC)
    due = CAL.add(begin, hours)
    assert due > begin
    assert CAL.between(begin, due) == pytest.approx(hours, abs=1e-6)
    assert due - begin >= timedelta(hours=hours)
