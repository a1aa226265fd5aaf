"""Scoring over the ledger: sums equal scores, rule changes adjust by one event, caps, decay over simulated time,
tags, grades, the MQL line, versions and restore, preview."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core import scoring
from core.errors import PermissionDenied
from core.rules import RuleSyntaxError, preview, restore_version, rule_versions, save_rule, set_active
from db.models import AuditLog, Lead, LeadTag, RuleVersion, ScoreEvent, Stage, Tag, Touchpoint

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _lead(session, **values) -> int:  # noqa: ANN001
    lead = Lead(**{"name": "王芳", **values})
    session.add(lead)
    session.flush()
    return int(lead.id)


def _touch(session, lead_id: int, kind: str, at: datetime) -> int:  # noqa: ANN001
    tp = Touchpoint(lead_id=lead_id, kind=kind, occurred_at=at, natural_key=f"{lead_id}-{kind}-{at.isoformat()}")
    session.add(tp)
    session.flush()
    return int(tp.id)


def _rule(session, actor, kind: str, text: str, points: float = 0, **params) -> int:  # noqa: ANN001
    return int(save_rule(session=session, actor=actor, rule_id=None, name=f"{kind}: {text}"[:100], kind=kind,
                         text=text, points=points, params=params, now=NOW).id)


def _ledger_matches_cache(session) -> None:  # noqa: ANN001
    for lead in session.scalars(select(Lead)):
        session.refresh(lead)
        fit = session.scalar(select(func.coalesce(func.sum(ScoreEvent.points), 0))
                             .where(ScoreEvent.lead_id == lead.id, ScoreEvent.component == "fit"))
        engagement = session.scalar(select(func.coalesce(func.sum(ScoreEvent.points), 0))
                                    .where(ScoreEvent.lead_id == lead.id, ScoreEvent.component == "engagement"))
        assert lead.fit_score == pytest.approx(float(fit), abs=1e-6)
        assert lead.engagement_score == pytest.approx(float(engagement), abs=1e-6)
        explained = scoring.explain(session=session, lead_id=lead.id)
        assert explained["points"].sum() == pytest.approx(lead.fit_score + lead.engagement_score, abs=1e-6)


@pytest.fixture
def marketer(make_actor):  # noqa: ANN001, ANN201
    return make_actor("marketer")


def test_fit_engagement_grade_and_ledger(session, marketer) -> None:  # noqa: ANN001
    _rule(session, marketer, "fit", 'title contains "总监"', 30)
    _rule(session, marketer, "fit", "company_size >= 500", 40)
    _rule(session, marketer, "engagement", 'kind = "webinar_attended"', 15, cap=30, period_days=90)
    _rule(session, marketer, "engagement", 'kind = "email_open"', 1)
    boss = _lead(session, title="市场总监", company_size=800)
    small = _lead(session, title="专员", company_size=20)
    for days in (1, 2, 3):  # three webinars in one window: capped at 30
        _touch(session, boss, "webinar_attended", NOW - days * DAY)
    _touch(session, small, "email_open", NOW - DAY)
    _touch(session, small, "email_open", NOW + DAY)  # in the future: not yet
    report = scoring.rescore(session=session, now=NOW)
    session.commit()
    assert report.leads == 2 and report.fit_events == 2 and report.engagement_events == 3
    boss_row, small_row = session.get(Lead, boss), session.get(Lead, small)
    assert (boss_row.fit_score, boss_row.engagement_score, boss_row.grade) == (70, 30, "A")
    assert (small_row.fit_score, small_row.engagement_score, small_row.grade) == (0, 1, "D")
    _ledger_matches_cache(session)
    explained = scoring.explain(session=session, lead_id=boss)
    assert set(explained["rule"].dropna()) >= {'fit: title contains "总监"'}
    assert set(explained["touchpoint"].dropna()) == {"webinar_attended"}

    # Idempotent: a second rescore writes nothing.
    again = scoring.rescore(session=session, now=NOW)
    assert again.events == 0


def test_rule_change_adjusts_by_one_event_and_deactivation_reverses(session, marketer) -> None:  # noqa: ANN001
    rule_id = _rule(session, marketer, "fit", 'industry = "金融"', 20)
    lead_id = _lead(session, industry="金融")
    scoring.rescore(session=session, now=NOW)
    save_rule(session=session, actor=marketer, rule_id=rule_id, name="金融", kind="fit", text='industry = "金融"',
              points=25, params={}, now=NOW + DAY)
    report = scoring.rescore(session=session, now=NOW + DAY)
    assert report.fit_events == 1
    assert session.get(Lead, lead_id).fit_score == 25
    last = session.scalars(select(ScoreEvent).order_by(ScoreEvent.id.desc())).first()
    assert (last.points, last.rule_version, last.reason) == (5, 2, "points_changed")
    set_active(session=session, actor=marketer, rule_id=rule_id, active=False, now=NOW + 2 * DAY)
    scoring.rescore(session=session, now=NOW + 2 * DAY)
    session.commit()
    assert session.get(Lead, lead_id).fit_score == 0
    _ledger_matches_cache(session)


def test_incremental_rescore_after_a_new_touchpoint(session, marketer) -> None:  # noqa: ANN001
    _rule(session, marketer, "engagement", 'kind = "pricing_view"', 20)
    leads = [_lead(session) for _ in range(5)]
    scoring.rescore(session=session, now=NOW)
    _touch(session, leads[2], "pricing_view", NOW)
    report = scoring.rescore(session=session, now=NOW, lead_ids=[leads[2]])
    assert not report.full and report.leads == 1 and report.engagement_events == 1
    assert [session.get(Lead, i).engagement_score for i in leads] == [0, 0, 20, 0, 0]


def test_half_life_decay_over_simulated_time(session, marketer) -> None:  # noqa: ANN001
    _rule(session, marketer, "engagement", 'kind = "demo_request"', 40)
    decay_id = _rule(session, marketer, "decay", "", 0, half_life_days=30)
    lead_id = _lead(session)
    _touch(session, lead_id, "demo_request", NOW)
    scoring.rescore(session=session, now=NOW)
    assert session.get(Lead, lead_id).engagement_score == 40
    for days, expected in [(30, 20.0), (60, 10.0), (90, 5.0)]:
        written = scoring.apply_decay(session=session, now=NOW + days * DAY)
        session.commit()
        session.refresh(lead := session.get(Lead, lead_id))
        assert written == 1
        assert lead.engagement_score == pytest.approx(expected, abs=0.01)
    assert scoring.apply_decay(session=session, now=NOW + 90 * DAY) == 0  # twice the same day: nothing more
    decays = session.scalars(select(ScoreEvent).where(ScoreEvent.kind == "decay")).all()
    assert [d.rule_id for d in decays] == [decay_id] * 3 and all(d.reason == "half_life" for d in decays)
    # A new touchpoint adds its full points; the old decay stays.
    _touch(session, lead_id, "demo_request", NOW + 90 * DAY)
    scoring.rescore(session=session, now=NOW + 90 * DAY, lead_ids=[lead_id])
    assert session.get(Lead, lead_id).engagement_score == pytest.approx(45.0, abs=0.01)
    _ledger_matches_cache(session)
    summary = scoring.score_summary(session=session, lead_id=lead_id)
    assert summary["decay"] == pytest.approx(-35.0, abs=0.01)


def test_idle_decay_takes_points_per_idle_period_and_never_below_zero(session, marketer) -> None:  # noqa: ANN001
    _rule(session, marketer, "engagement", 'kind = "form_submit"', 25)
    _rule(session, marketer, "decay", "", 10, idle_days=14)
    lead_id = _lead(session, created_at=NOW - 100 * DAY)
    _touch(session, lead_id, "form_submit", NOW)
    scoring.rescore(session=session, now=NOW)
    assert session.get(Lead, lead_id).engagement_score == 25
    scoring.apply_decay(session=session, now=NOW + 13 * DAY)
    assert session.get(Lead, lead_id).engagement_score == 25
    scoring.apply_decay(session=session, now=NOW + 14 * DAY)
    assert session.get(Lead, lead_id).engagement_score == 15
    scoring.apply_decay(session=session, now=NOW + 20 * DAY)
    assert session.get(Lead, lead_id).engagement_score == 15
    scoring.apply_decay(session=session, now=NOW + 60 * DAY)
    assert session.get(Lead, lead_id).engagement_score == 0
    session.commit()
    _ledger_matches_cache(session)


def test_tag_rules_add_and_remove(session, marketer) -> None:  # noqa: ANN001
    _rule(session, marketer, "tag", 'title contains "总监"', 0, tag="决策人", remove_when_false=True)
    _rule(session, marketer, "tag", "count(webinar_attended, 90d) >= 2", 0, tag="高意向", remove_when_false=False)
    lead_id = _lead(session, title="技术总监")
    for days in (1, 5):
        _touch(session, lead_id, "webinar_attended", NOW - days * DAY)
    report = scoring.rescore(session=session, now=NOW)
    assert report.tags_added == 2

    def tags() -> set[str]:
        return set(session.scalars(select(Tag.name).join(LeadTag, LeadTag.tag_id == Tag.id)
                                   .where(LeadTag.lead_id == lead_id)))
    assert tags() == {"决策人", "高意向"}
    session.get(Lead, lead_id).title = "专员"
    session.flush()
    report = scoring.rescore(session=session, now=NOW + 200 * DAY)
    assert report.tags_removed == 1 and tags() == {"高意向"}


def test_crossed_mql_lists_new_leads_over_the_line(session, marketer) -> None:  # noqa: ANN001
    _rule(session, marketer, "fit", 'title contains "总监"', 60)
    _rule(session, marketer, "engagement", 'kind = "demo_request"', 60)
    _rule(session, marketer, "mql", 'grade in ("A", "B") and engagement >= 60')
    over = _lead(session, title="总监")
    already = _lead(session, title="总监", stage=Stage.MQL)
    under = _lead(session, title="总监")
    for lead_id in (over, already):
        _touch(session, lead_id, "demo_request", NOW)
    report = scoring.rescore(session=session, now=NOW)
    assert report.crossed_mql == [over]
    assert under not in report.crossed_mql


def test_versions_and_restore(session, marketer, make_actor) -> None:  # noqa: ANN001
    rule_id = _rule(session, marketer, "fit", 'province = "上海"', 5)
    save_rule(session=session, actor=marketer, rule_id=rule_id, name="区域", kind="fit",
              text='province in ("上海", "北京")', points=8, params={}, now=NOW + DAY, note="加北京")
    restored = restore_version(session=session, actor=marketer, rule_id=rule_id, version=1, now=NOW + 2 * DAY)
    assert (restored.version, restored.text, restored.points) == (3, 'province = "上海"', 5)
    versions = rule_versions(session=session, rule_id=rule_id)
    assert versions["version"].tolist() == [3, 2, 1]
    assert versions["note"].tolist()[0] == "restored v1"
    assert session.scalar(select(func.count()).select_from(RuleVersion)) == 3
    assert session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "rules.save")) == 3
    with pytest.raises(RuleSyntaxError):
        save_rule(session=session, actor=marketer, rule_id=rule_id, name="区域", kind="fit", text="provnce = 1",
                  points=1, params={}, now=NOW)
    assert session.scalar(select(func.count()).select_from(RuleVersion)) == 3
    with pytest.raises(PermissionDenied):
        save_rule(session=session, actor=make_actor("sales"), rule_id=rule_id, name="x", kind="fit",
                  text="company_size > 1", points=1, params={}, now=NOW)
    manager = make_actor("manager")
    save_rule(session=session, actor=manager, rule_id=None, name="MQL", kind="mql",
              text='grade = "A" and engagement >= 50', now=NOW)
    with pytest.raises(PermissionDenied):
        save_rule(session=session, actor=manager, rule_id=rule_id, name="x", kind="fit", text="company_size > 1",
                  points=1, params={}, now=NOW)


def test_preview_counts_and_delta(session) -> None:  # noqa: ANN001
    for size in (10, 150, 250, 900, None):
        _lead(session, company_size=size, title="总监")
    result = preview("company_size >= 200", session=session, now=NOW, saved_text="company_size >= 100")
    assert (result.count, result.delta) == (2, -1)
    assert len(result.sample) == 2 and set(result.sample["company_size"]) == {250, 900}
    unchanged = preview("company_size >= 200", session=session, now=NOW, saved_text=" company_size >= 200\n")
    assert (unchanged.count, unchanged.delta) == (2, 0)
    engaged = preview('kind = "email_open"', session=session, now=NOW, kind="engagement")
    assert engaged.count == 0 and engaged.delta is None


def test_pipeline_rescores_written_leads_and_promotes_mql(session, marketer) -> None:  # noqa: ANN001
    from core.pipeline import after_leads_written

    _rule(session, marketer, "fit", 'title contains "总监"', 60)
    _rule(session, marketer, "engagement", 'kind = "demo_request"', 60)
    _rule(session, marketer, "mql", 'grade in ("A", "B") and engagement >= 60')
    lead_id = _lead(session, title="总监", email="zongjian@example.com")
    _touch(session, lead_id, "demo_request", NOW)
    report = after_leads_written(session=session, lead_ids=[lead_id], now=NOW, check_duplicates=False)
    session.commit()
    assert report.scoring["crossed_mql"] == 1 and report.promoted == 1
    assert session.get(Lead, lead_id).stage == Stage.MQL


def _ledger(session) -> list[tuple]:  # noqa: ANN001
    rows = session.execute(select(ScoreEvent.component, ScoreEvent.lead_id, ScoreEvent.rule_id,
                                  ScoreEvent.touchpoint_id, ScoreEvent.kind, ScoreEvent.reason,
                                  ScoreEvent.rule_version, ScoreEvent.points, ScoreEvent.occurred_at)).all()
    return sorted((r[0], r[1], r[2], r[3] or 0, r[4], r[5], r[6], round(r[7], 4), r[8].isoformat()) for r in rows)


def test_few_leads_in_python_write_the_same_ledger_as_sql(session, marketer) -> None:  # noqa: ANN001
    """Incremental rescoring of a few leads evaluates the rules in Python; a full pass runs them in SQL. Both
    must write exactly the same ledger, tags, scores and MQL crossings — first, and after rules change."""
    fit = _rule(session, marketer, "fit", 'title contains "总监" or has_tag("决策人")', 30)
    _rule(session, marketer, "fit", "company_size >= 500", 40)
    webinar = _rule(session, marketer, "engagement", 'kind = "webinar_attended"', 15, cap=30, period_days=90)
    _rule(session, marketer, "engagement", 'kind in ("email_open", "email_click") and title contains "总监"', 2)
    _rule(session, marketer, "decay", "", 0, half_life_days=30)
    _rule(session, marketer, "tag", "count(webinar_attended, 90d) >= 2", 0, tag="高意向", remove_when_false=True)
    _rule(session, marketer, "mql", 'grade in ("A", "B") and engagement >= 20')
    ids = [_lead(session, title=title, company_size=size)
           for title, size in [("市场总监", 800), ("专员", 20), ("技术总监", None), (None, 600)]]
    for n, lead_id in enumerate(ids):
        for days in range(0, 200, 20 + 10 * n):
            _touch(session, lead_id, "webinar_attended" if days % 40 == 0 else "email_open", NOW - days * DAY)
    session.commit()

    def both(now: datetime) -> None:
        savepoint = session.begin_nested()
        few = scoring.rescore(session=session, now=now, lead_ids=ids)
        few_ledger, few_scores = _ledger(session), [(round(session.get(Lead, i).fit_score, 6),
                                                      round(session.get(Lead, i).engagement_score, 6)) for i in ids]
        savepoint.rollback()
        session.expire_all()
        full = scoring.rescore(session=session, now=now)
        assert few_ledger == _ledger(session)
        assert few_scores == [(round(session.get(Lead, i).fit_score, 6), round(session.get(Lead, i).engagement_score, 6))
                              for i in ids]
        assert (few.crossed_mql, few.tags_added, few.events) == (full.crossed_mql, full.tags_added, full.events)
        session.commit()

    both(NOW)
    save_rule(session=session, actor=marketer, rule_id=fit, name="决策层", kind="fit", text='title contains "总监"',
              points=35, params={}, now=NOW + DAY)
    set_active(session=session, actor=marketer, rule_id=webinar, active=False, now=NOW + DAY)
    session.commit()
    both(NOW + 10 * DAY)
