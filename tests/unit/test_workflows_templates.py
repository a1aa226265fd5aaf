"""Shipped templates run end to end: the WeChat recall flow day by day, the email lifecycle through real SMTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from core.auth import SYSTEM
from core.messaging import deliver_due
from core.settings import set_setting
from core.workflows import (
    TEMPLATES,
    activate_workflow,
    create_from_template,
    enroll_leads,
    run_due,
    step_counts,
)
from core.workflows.definition import validate_definition, validate_trigger
from db.models import Enrollment, Group, GroupMember, Lead, Touchpoint

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def groups_of(session: Session, lead_ids: list[int]) -> dict[int, set[str]]:
    rows = session.execute(select(GroupMember.lead_id, Group.name).join(Group)
                           .where(GroupMember.lead_id.in_(lead_ids))).all()
    out: dict[int, set[str]] = {lead: set() for lead in lead_ids}
    for lead, name in rows:
        out[lead].add(name)
    return out


def test_every_shipped_template_is_valid():
    for key, shipped in TEMPLATES.items():
        assert not validate_definition(shipped["definition"]), key
        assert not validate_trigger(shipped["trigger"]), key


def test_wechat_recall_flow_over_forty_days_and_beyond(session, http_receiver):
    base, received = http_receiver
    set_setting(session, "webhooks", {"wechat": {"url": f"{base}/wechat"}})
    fans = [Lead(name=name, wechat_id=f"wx_{i}") for i, name in enumerate(["早注册", "晚注册", "沉睡"])]
    session.add_all(fans)
    session.commit()
    early, late, silent = (int(f.id) for f in fans)
    workflow = create_from_template(session=session, actor=SYSTEM, now=T0, key="wechat_recall")
    activate_workflow(session=session, actor=SYSTEM, now=T0, workflow_id=workflow.id)
    session.commit()
    # The fans follow the account: they join the "new followers" group, which triggers the flow.
    entry = Group(name="新关注粉丝")
    session.add(entry)
    session.flush()
    session.add_all([GroupMember(group_id=entry.id, lead_id=lead, added_at=T0 + timedelta(minutes=1))
                     for lead in (early, late, silent)])
    session.commit()

    def register(lead: int, day: int) -> None:
        session.add(Touchpoint(lead_id=lead, kind="registered", occurred_at=T0 + timedelta(days=day),
                               natural_key=f"reg-{lead}"))
        session.commit()

    def texts(wechat_id: str) -> list[str]:
        return [r["json"]["body"] for r in received.requests if r["json"]["to"] == wechat_id]

    for day in range(0, 61):
        now = T0 + timedelta(days=day, minutes=5)
        if day == 1:
            register(early, 1)
        if day == 10:
            register(late, 10)
        run_due(session=session, now=now)
        deliver_due(session=session, now=now)
        if day == 40:
            at_forty = groups_of(session, [early, late, silent])
            texts_at_forty = {lead: texts(f"wx_{i}") for i, lead in enumerate((early, late, silent))}

    assert at_forty[early] == {"新关注粉丝"} and at_forty[late] == {"新关注粉丝"}
    assert at_forty[silent] == {"新关注粉丝", "沉睡粉丝"}
    assert [t[:4] for t in texts_at_forty[early]] == ["完善信息", "感谢完善"]
    assert [t[:4] for t in texts_at_forty[late]] == ["完善信息", "完善信息", "感谢完善"]
    assert "领新人礼" in texts_at_forty[late][1]
    assert [t[:4] for t in texts_at_forty[silent]] == ["完善信息", "完善信息"]
    # Day 56: the silent fan went on to deep sleep and the flow ended for everyone.
    final = groups_of(session, [early, late, silent])
    assert final[silent] == {"新关注粉丝", "深度沉睡粉丝"}
    assert set(session.scalars(select(Enrollment.status))) == {"completed"}
    counts = step_counts(session=session, workflow_id=workflow.id).set_index("step_id")
    assert counts.loc["send_gift", "done"] == 2 and counts.loc["to_deep_sleep", "done"] == 1
    assert counts.loc["check_first", "entered"] == 3 and counts.loc["check_second", "entered"] == 2


def test_email_lifecycle_sends_b_to_openers_and_c_to_the_rest(session, smtp_server):
    host, port, received = smtp_server
    set_setting(session, "smtp", {"host": host, "port": port, "security": "none"})
    leads = [Lead(name=f"客户{i}", email=f"c{i}@example.cn", company="华东制造") for i in range(4)]
    session.add_all(leads)
    session.commit()
    ids = [int(x.id) for x in leads]
    workflow = create_from_template(session=session, actor=SYSTEM, now=T0, key="email_lifecycle")
    activate_workflow(session=session, actor=SYSTEM, now=T0, workflow_id=workflow.id)
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=workflow.id, lead_ids=ids)
    session.commit()
    run_due(session=session, now=T0)
    deliver_due(session=session, now=T0)
    assert len(received.messages) == 4 and received.messages[0]["subject"].startswith("客户")
    for lead in ids[:1]:
        session.add(Touchpoint(lead_id=lead, kind="email_open", occurred_at=T0 + timedelta(hours=5),
                               natural_key=f"open-{lead}"))
    session.commit()
    later = T0 + timedelta(days=3, minutes=1)
    run_due(session=session, now=later)
    deliver_due(session=session, now=later)
    second = {m["to"][0]: m["subject"] for m in received.messages[4:]}
    assert second["c0@example.cn"].startswith("案例")
    assert all(second[f"c{i}@example.cn"].startswith("免费领取") for i in (1, 2, 3))
