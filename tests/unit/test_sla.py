"""SLA timers with a passed-in ``now`` across a weekend, reminders and escalations by email (a real local SMTP
server) and group robots (a real local HTTP server), the CRM webhook, and alerts on what leads do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from core.lifecycle import promote_to_mql
from core.messaging import deliver_due
from core.routing import accept, reject
from core.routing.alerts import alert_reps
from core.routing.crm import accepted_export, sync_crm_status
from core.routing.sla import check_sla
from core.settings import set_setting
from db.models import Assignment, Message, ScoreEvent, Stage, Touchpoint
from tests.unit.handoff_helpers import build_team, demo_rules, make_lead, set_rep

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)


FRIDAY_1730 = local(2026, 11, 6, 17, 30)


@pytest.fixture
def team(session):
    team = build_team(session, emails=True)
    demo_rules(session, team)
    return team


def _route_friday(session, province: str = "上海") -> Assignment:
    lead = make_lead(session, province=province, name="陈晨", company="苏州精工机械有限公司")
    promote_to_mql(session=session, lead_ids=[lead], now=FRIDAY_1730, by_rule="MQL 线")
    session.commit()
    return session.exec(select(Assignment).where(Assignment.lead_id == lead)).one()


def _refresh(session, assignment: Assignment) -> Assignment:
    session.expire_all()
    return session.get(Assignment, assignment.id)


def test_the_sla_clock_skips_the_weekend_reminds_then_escalates(session, team):
    assignment = _route_friday(session)
    assert assignment.sla_due_at == local(2026, 11, 9, 16, 30)  # Monday, 8 working hours later
    # Saturday and Monday morning: plenty of working time left, nothing happens.
    for now in (local(2026, 11, 7, 12, 0), local(2026, 11, 9, 14, 0)):
        report = check_sla(session=session, now=now)
        session.commit()
        assert report.reminded == [] and report.escalated == []
    # Monday 14:45: 1.75 working hours left → one reminder, once.
    report = check_sla(session=session, now=local(2026, 11, 9, 14, 45))
    session.commit()
    assert report.reminded == [assignment.id]
    assert check_sla(session=session, now=local(2026, 11, 9, 15, 0)).reminded == []
    assert _refresh(session, assignment).reminded_at == local(2026, 11, 9, 14, 45)
    # Monday 16:31: overdue → escalated and counted as a breach.
    report = check_sla(session=session, now=local(2026, 11, 9, 16, 31))
    session.commit()
    assert report.escalated == [assignment.id]
    done = _refresh(session, assignment)
    assert done.breached and done.escalated_at == local(2026, 11, 9, 16, 31)
    assert check_sla(session=session, now=local(2026, 11, 10, 9, 0)).escalated == []
    kinds = session.exec(select(Message.idempotency_key).where(Message.channel == "notify")).all()
    assert {k.split(":")[0] for k in kinds} >= {"mql-assigned", "sla-remind", "sla-overdue", "sla-escalate"}
    # Deciding late keeps the breach on record.
    reject(session=session, actor=team.rep1, assignment_id=assignment.id, reason="no_budget",
           now=local(2026, 11, 10, 10, 0))
    session.commit()
    assert _refresh(session, assignment).breached


def test_a_decision_in_time_is_no_breach(session, team):
    assignment = _route_friday(session)
    accept(session=session, actor=team.rep1, assignment_id=assignment.id, now=local(2026, 11, 9, 16, 29))
    session.commit()
    assert not _refresh(session, assignment).breached
    assert check_sla(session=session, now=local(2026, 11, 9, 17, 0)).escalated == []


def test_reminder_and_escalation_reach_email_and_robots(session, team, smtp_server, http_receiver):
    host, port, smtp = smtp_server
    base, http = http_receiver
    set_setting(session, "smtp", {"host": host, "port": port, "security": "none", "sender": "leadloop@example.cn"})
    set_setting(session, "sla", {"robots": {"wecom": f"{base}/wecom", "dingtalk": f"{base}/dingtalk",
                                            "feishu": f"{base}/feishu"}})
    session.commit()
    set_rep(session, team.manager, language="en")
    assignment = _route_friday(session)
    check_sla(session=session, now=local(2026, 11, 9, 15, 0))
    check_sla(session=session, now=local(2026, 11, 9, 17, 0))
    session.commit()
    report = deliver_due(session=session, now=local(2026, 11, 9, 17, 1))
    assert report.failed == 0 and report.sent >= 8, report.errors
    subjects = {(m["to"][0], m["subject"]) for m in smtp.messages}
    assert ("sales1@example.cn", "SLA 提醒：陈晨 · 苏州精工机械有限公司") in subjects
    assert ("manager@example.cn", "SLA missed: 张伟 has not handled 陈晨 · 苏州精工机械有限公司") in subjects
    assert any(to == "sales1@example.cn" and "新 MQL" in subject for to, subject in subjects)
    posts = {(r["path"], r["json"].get("msgtype") or r["json"].get("msg_type")) for r in http.requests}
    assert posts == {("/wecom", "text"), ("/dingtalk", "text"), ("/feishu", "text")}
    assert len(http.requests) == 6  # a reminder digest and an escalation digest per robot
    texts = [r["json"].get("text", {}).get("content") or r["json"]["content"]["text"] for r in http.requests]
    assert sum("【SLA 提醒】1 条 MQL 即将超时" in t for t in texts) == 3
    assert sum("【SLA 超时】1 条 MQL 未按时处理" in t and "张伟" in t for t in texts) == 3
    assert _refresh(session, assignment).breached


def test_accepted_leads_reach_the_crm_webhook_and_the_export(session, team, http_receiver):
    base, http = http_receiver
    set_setting(session, "crm", {"webhook_url": f"{base}/crm/leads"})
    session.commit()
    assignment = _route_friday(session)
    assert accept(session=session, actor=team.rep1, assignment_id=assignment.id,
                  now=local(2026, 11, 9, 10, 0)) == "queued"
    session.commit()
    deliver_due(session=session, now=local(2026, 11, 9, 10, 1))
    crm = [r for r in http.requests if r["path"] == "/crm/leads"]
    assert len(crm) == 1
    body = crm[0]["json"]
    assert body["payload"]["event"] == "lead.accepted"
    assert body["payload"]["lead"]["name"] == "陈晨" and body["payload"]["rep"]["name"] == "张伟"
    assert crm[0]["headers"]["Idempotency-Key"] == f"crm:{assignment.id}"
    assert sync_crm_status(session=session) == 1
    session.commit()
    done = _refresh(session, assignment)
    assert done.crm_status == "sent" and done.crm_pushed_at == local(2026, 11, 9, 10, 1)
    export = accepted_export(session=session, actor=team.manager)
    assert export["name"].tolist() == ["陈晨"] and export["crm_status"].tolist() == ["sent"]


def test_a_refused_crm_webhook_is_recorded(session, team, http_receiver):
    base, http = http_receiver
    http.status = 400
    set_setting(session, "crm", {"webhook_url": f"{base}/crm"})
    session.commit()
    assignment = _route_friday(session)
    accept(session=session, actor=team.rep1, assignment_id=assignment.id, now=local(2026, 11, 9, 10, 0))
    session.commit()
    deliver_due(session=session, now=local(2026, 11, 9, 10, 1))
    sync_crm_status(session=session)
    session.commit()
    assert _refresh(session, assignment).crm_status.startswith("failed: ")


def test_reps_hear_what_their_leads_do(session, team):
    assignment = _route_friday(session)
    lead_id = assignment.lead_id
    now = local(2026, 11, 9, 11, 0)
    session.add(Touchpoint(lead_id=lead_id, kind="pricing_view", occurred_at=now - timedelta(minutes=10),
                           natural_key="p1", created_at=now - timedelta(minutes=5)))
    session.add(Touchpoint(lead_id=lead_id, kind="email_open", occurred_at=now - timedelta(minutes=10),
                           natural_key="p2", created_at=now - timedelta(minutes=5)))
    session.add(Touchpoint(lead_id=lead_id, kind="webinar_attended", occurred_at=now - timedelta(days=30),
                           natural_key="p3", created_at=now - timedelta(minutes=5)))  # a backfill: old news
    for points in (10, 8):
        session.add(ScoreEvent(lead_id=lead_id, component="engagement", points=points, occurred_at=now,
                               created_at=now - timedelta(hours=1)))
    unowned = make_lead(session, Stage.MQL)
    session.add(Touchpoint(lead_id=unowned, kind="pricing_view", occurred_at=now, natural_key="p4",
                           created_at=now))
    session.commit()
    report = alert_reps(session=session, now=now)
    session.commit()
    assert report.notes == 2
    notes = session.exec(select(Message).where(Message.idempotency_key.like("alert:%"))).all()
    assert {n.user_id for n in notes} == {team.rep1.id}
    assert sorted(n.payload["event"] for n in notes) == ["pricing_view", "score_jump"]
    assert any(n.subject == "陈晨 · 苏州精工机械有限公司：浏览价格页" for n in notes)
    assert alert_reps(session=session, now=now + timedelta(minutes=10)).notes == 0  # no repeats


def test_mqls_waiting_for_room_are_routed_when_a_rep_is_back(session, team):
    for rep in (team.rep1, team.rep2, team.rep3, team.rep4):
        set_rep(session, rep, out_of_office=True)
    lead = make_lead(session, province="上海")
    promote_to_mql(session=session, lead_ids=[lead], now=FRIDAY_1730, by_rule="MQL 线")
    session.commit()
    assert check_sla(session=session, now=FRIDAY_1730 + timedelta(minutes=5)).still_unrouted == 1
    set_rep(session, team.rep2, out_of_office=False)
    report = check_sla(session=session, now=FRIDAY_1730 + timedelta(minutes=10))
    session.commit()
    assert (report.rerouted, report.still_unrouted) == (1, 0)
    assert session.exec(select(Assignment.rep_id).where(Assignment.lead_id == lead)).one() == team.rep2.id
