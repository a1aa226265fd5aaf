"""The set-based rescore (wanted points vs. the ledger's sums, in SQL): its SQL path over a list of leads, its
full pass and the per-lead Python path write the same ledger; changes write exactly the difference; an
unchanged rescore writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core import scoring
from core.rules import save_rule, set_active
from db.models import Lead, ScoreEvent, Touchpoint

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _ledger(session) -> list[tuple]:  # noqa: ANN001
    rows = session.execute(select(ScoreEvent.component, ScoreEvent.lead_id, ScoreEvent.rule_id,
                                  ScoreEvent.touchpoint_id, ScoreEvent.kind, ScoreEvent.reason,
                                  ScoreEvent.rule_version, ScoreEvent.points, ScoreEvent.occurred_at)).all()
    return sorted((r[0], r[1], r[2], r[3] or 0, r[4], r[5], r[6], round(r[7], 4), r[8].isoformat()) for r in rows)


def _sums_match_cache(session) -> None:  # noqa: ANN001
    for lead in session.scalars(select(Lead)):
        session.refresh(lead)
        for component, cached in (("fit", lead.fit_score), ("engagement", lead.engagement_score)):
            total = session.scalar(select(func.coalesce(func.sum(ScoreEvent.points), 0))
                                   .where(ScoreEvent.lead_id == lead.id, ScoreEvent.component == component))
            assert cached == pytest.approx(float(total), abs=1e-6)


@pytest.fixture
def setup(session, make_actor):  # noqa: ANN001, ANN201
    actor = make_actor("marketer")

    def rule(kind: str, text: str, points: float = 0, **params) -> int:  # noqa: ANN003
        return int(save_rule(session=session, actor=actor, rule_id=None, name=f"{kind}: {text}"[:100], kind=kind,
                             text=text, points=points, params=params, now=NOW).id)

    ids = []
    for n, (title, size) in enumerate([("市场总监", 800), ("专员", 20), ("技术总监", None), (None, 600)]):
        lead = Lead(name=f"线索{n}", title=title, company_size=size)
        session.add(lead)
        session.flush()
        ids.append(int(lead.id))
        for days in range(0, 150, 15 + 5 * n):
            kind = "webinar_attended" if days % 30 == 0 else "email_open"
            session.add(Touchpoint(lead_id=lead.id, kind=kind, occurred_at=NOW - days * DAY,
                                   natural_key=f"{lead.id}-{days}"))
    session.flush()
    return actor, rule, ids


def test_sql_path_for_listed_leads_writes_the_same_ledger_as_python_and_full(session, setup, monkeypatch) -> None:  # noqa: ANN001
    actor, rule, ids = setup
    fit = rule("fit", 'title contains "总监"', 30)
    rule("fit", "company_size >= 500", 40)
    webinar = rule("engagement", 'kind = "webinar_attended"', 15, cap=30, period_days=90)
    rule("engagement", 'kind = "email_open" and title contains "总监"', 2)
    rule("decay", "", 0, half_life_days=30)
    session.commit()

    def three_ways(now: datetime) -> int:
        results = []
        for mode in ("few", "sql", "full"):
            savepoint = session.begin_nested()
            monkeypatch.setattr(scoring, "FEW", 200 if mode == "few" else 0)
            report = scoring.rescore(session=session, now=now, lead_ids=None if mode == "full" else ids)
            results.append((_ledger(session), report.fit_events, report.engagement_events, report.decay_events))
            _sums_match_cache(session)
            if mode == "full":
                savepoint.commit()
            else:
                savepoint.rollback()
                session.expire_all()
        assert results[0] == results[1] == results[2]
        session.commit()
        # Nothing changed since: the next pass writes nothing.
        count = session.scalar(select(func.count()).select_from(ScoreEvent))
        again = scoring.rescore(session=session, now=now)
        assert again.events == 0 and session.scalar(select(func.count()).select_from(ScoreEvent)) == count
        return results[2][1] + results[2][2]

    assert three_ways(NOW) > 0
    # A fit rule narrows and changes its points; a cap tightens (capped touchpoints give their points back).
    save_rule(session=session, actor=actor, rule_id=fit, name="技术总监", kind="fit", text='title contains "技术"',
              points=35, params={}, now=NOW + DAY)
    save_rule(session=session, actor=actor, rule_id=webinar, name="webinar", kind="engagement",
              text='kind = "webinar_attended"', points=15, params={"cap": 15, "period_days": 90}, now=NOW + DAY)
    session.commit()
    assert three_ways(NOW + DAY) > 0
    set_active(session=session, actor=actor, rule_id=webinar, active=False, now=NOW + 2 * DAY)
    session.commit()
    assert three_ways(NOW + 2 * DAY) > 0
    webinar_points = session.scalar(select(func.sum(ScoreEvent.points)).where(ScoreEvent.rule_id == webinar))
    assert webinar_points == pytest.approx(0, abs=1e-9)
    reasons = dict(session.execute(select(ScoreEvent.reason, func.count()).group_by(ScoreEvent.reason)).all())
    assert {"matched", "touchpoint", "points_changed", "no_longer_matches", "rule_inactive", "half_life"} <= set(reasons)


def test_a_full_pass_writes_without_foreign_key_lookups_and_hands_the_connection_back_with_them(sqlite_engine) -> None:  # noqa: ANN001
    from sqlalchemy.exc import IntegrityError
    from sqlmodel import Session

    from core.auth import SYSTEM

    with Session(sqlite_engine) as session:
        lead = Lead(name="线索", title="市场总监")
        session.add(lead)
        session.flush()
        session.add(Touchpoint(lead_id=lead.id, kind="webinar_attended", occurred_at=NOW - DAY, natural_key="fk-1"))
        save_rule(session=session, actor=SYSTEM, rule_id=None, name="总监", kind="fit", text='title contains "总监"',
                  points=20, params={}, now=NOW)
        save_rule(session=session, actor=SYSTEM, rule_id=None, name="webinar", kind="engagement",
                  text='kind = "webinar_attended"', points=15, params={"cap": 30, "period_days": 90}, now=NOW)
        session.commit()
    with Session(sqlite_engine) as session:
        report = scoring.rescore(session=session, now=NOW)
        assert report.fit_events == 1 and report.engagement_events == 1
        # The pass started outside a transaction, so its writes skipped the per-row checks …
        assert session.connection().exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
        assert session.connection().exec_driver_sql("PRAGMA cache_size").scalar() == -262_144  # the bulk cache
        used = session.connection().connection.driver_connection
        session.commit()
    # … and the connection the pool hands out next checks them again.
    with Session(sqlite_engine) as session:
        assert session.connection().connection.driver_connection is used
        assert session.connection().exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert session.connection().exec_driver_sql("PRAGMA cache_size").scalar() == -2000  # SQLite's default
        session.add(ScoreEvent(lead_id=999_999, component="fit", points=1.0, occurred_at=NOW))
        with pytest.raises(IntegrityError):
            session.flush()
