"""Workflows: validation, triggers, steps, waits, branches, retries, versions — with real SMTP and HTTP receivers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from core.auth import SYSTEM
from core.messaging import deliver_due
from core.settings import set_setting
from core.workflows import (
    WorkflowInvalid,
    activate_workflow,
    create_from_template,
    create_workflow,
    enroll_leads,
    pause_workflow,
    resume_workflow,
    run_due,
    save_workflow,
    simulate,
    step_counts,
    validate_definition,
)
from core.workflows.engine import split_side
from db.models import (
    Enrollment,
    Group,
    GroupMember,
    Lead,
    LeadTag,
    Message,
    ScoreEvent,
    StepRun,
    Tag,
    Touchpoint,
)

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Shanghai


def leads(session: Session, n: int, **fields: object) -> list[int]:
    rows = [Lead(name=f"客户{i}", email=f"c{i}@example.cn", phone=f"+8613800000{i:03d}", wechat_id=f"wx{i}",
                 company=f"公司{i}", **fields) for i in range(n)]
    session.add_all(rows)
    session.commit()
    return [int(r.id) for r in rows]


def smtp(session: Session, host: str, port: int) -> None:
    set_setting(session, "smtp", {"host": host, "port": port, "security": "none", "sender": "mkt@example.cn"})
    set_setting(session, "workflows", {"unsubscribe_text": "退订：", "base_url": "https://leadloop.example.cn"})
    session.commit()


def workflow(session: Session, definition: dict, trigger: dict | None = None, **kw: object) -> int:
    wf = create_workflow(session=session, actor=SYSTEM, now=T0, name="测试", trigger=trigger or {"type": "manual"},
                         definition=definition, **kw)
    activate_workflow(session=session, actor=SYSTEM, now=T0, workflow_id=wf.id)
    session.commit()
    return int(wf.id)


def tick(session: Session, now: datetime):  # noqa: ANN201
    report = run_due(session=session, now=now)
    deliver_due(session=session, now=now)
    return report


def test_validation_names_the_steps_at_fault():
    problems = validate_definition({"start": "a", "steps": {
        "a": {"type": "send_email", "subject": "s", "body": "b", "next": "b"},
        "b": {"type": "condition", "check": {"kind": "opened"}, "yes": "c"},  # no "no" path
        "c": {"type": "add_tag", "tag": "x", "next": "d"},
        "d": {"type": "add_tag", "tag": "y", "next": "c"},  # loop without a wait
        "orphan": {"type": "end"},
        "weird": {"type": "teleport"},
    }})
    found = {(p.step, p.key) for p in problems}
    assert ("b", "workflows.problem.branch_without_path") in found
    assert ("orphan", "workflows.problem.unreachable") in found
    assert ("weird", "workflows.problem.unknown_type") in found
    assert ("c", "workflows.problem.loop_without_wait") in found and ("d", "workflows.problem.loop_without_wait") in found
    # A loop through a wait is fine.
    assert not validate_definition({"start": "a", "steps": {
        "a": {"type": "add_tag", "tag": "x", "next": "w"}, "w": {"type": "wait", "days": 1, "next": "a"}}})


def test_activation_refuses_an_invalid_definition_with_a_readable_message(session):
    wf = create_workflow(session=session, actor=SYSTEM, now=T0, name="坏的",
                         definition={"start": "a", "steps": {"a": {"type": "wait", "days": 0, "next": "zz"}}})
    with pytest.raises(WorkflowInvalid) as caught:
        activate_workflow(session=session, actor=SYSTEM, now=T0, workflow_id=wf.id)
    text = caught.value.localized("zh")
    assert "a:" in text and "zz" in text
    assert caught.value.localized("en").startswith("The workflow cannot run")


def test_email_steps_fill_merge_fields_add_the_footer_and_reach_smtp_once(session, smtp_server):
    host, port, received = smtp_server
    smtp(session, host, port)
    ids = leads(session, 3)
    wf = workflow(session, {"start": "mail", "steps": {
        "mail": {"type": "send_email", "subject": "{name}，您好", "body": "给 {company} 的资料", "next": "end"},
        "end": {"type": "end"}}})
    assert enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids) == 3
    assert enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids) == 0  # re-entry never
    session.commit()
    report = tick(session, T0)
    assert report.completed == 3 and report.messages == 3
    assert sorted(m["subject"] for m in received.messages) == ["客户0，您好", "客户1，您好", "客户2，您好"]
    body = received.messages[0]["body"]
    assert "给 公司" in body and "退订：" in body and "unsubscribe=" in body
    assert str(received.messages[0]["headers"]["List-Unsubscribe"]).strip().startswith("<https://leadloop.example.cn/?unsubscribe=")
    # Running again at the same time, or later, sends nothing more.
    tick(session, T0)
    tick(session, T0 + timedelta(hours=1))
    assert len(received.messages) == 3


def test_waits_conditions_and_tags_over_time(session):
    ids = leads(session, 4)
    wf = workflow(session, {"start": "tag", "steps": {
        "tag": {"type": "add_tag", "tag": "培育中", "next": "wait"},
        "wait": {"type": "wait", "days": 3, "next": "check"},
        "check": {"type": "condition", "check": {"kind": "opened"}, "yes": "hot", "no": "cold"},
        "hot": {"type": "adjust_score", "points": 10, "next": "end"},
        "cold": {"type": "move_group", "from": "新粉丝", "to": "沉睡粉丝", "next": "end"},
        "end": {"type": "end"}}})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    session.commit()
    run_due(session=session, now=T0)
    tagged = session.scalar(select(func.count()).select_from(LeadTag).join(Tag).where(Tag.name == "培育中"))
    assert tagged == 4
    # Two leads open an email during the wait.
    for lead in ids[:2]:
        session.add(Touchpoint(lead_id=lead, kind="email_open", occurred_at=T0 + timedelta(days=1),
                               natural_key=f"open-{lead}"))
    session.commit()
    assert run_due(session=session, now=T0 + timedelta(days=2)).claimed == 0  # still waiting
    report = run_due(session=session, now=T0 + timedelta(days=3, minutes=1))
    assert report.completed == 4
    scores = dict(session.execute(select(Lead.id, Lead.engagement_score).where(Lead.id.in_(ids))).all())
    assert [scores[i] for i in ids] == [10, 10, 0, 0]
    assert session.scalar(select(func.count()).select_from(ScoreEvent).where(ScoreEvent.kind == "manual")) == 2
    sleeping = set(session.scalars(select(GroupMember.lead_id).join(Group).where(Group.name == "沉睡粉丝")))
    assert sleeping == set(ids[2:])
    counts = step_counts(session=session, workflow_id=wf).set_index("step_id")
    assert counts.loc["hot", "done"] == 2 and counts.loc["cold", "done"] == 2 and counts.loc["wait", "done"] == 4


def test_webhook_sms_and_notify_steps_go_through_the_outbox(session, http_receiver, make_actor):
    base, received = http_receiver
    set_setting(session, "webhooks", {"sms": {"url": f"{base}/sms", "token": "t0k"}})
    session.commit()
    owner = make_actor("sales")
    ids = leads(session, 2, owner_id=owner.id)
    wf = workflow(session, {"start": "sms", "steps": {
        "sms": {"type": "send_sms", "text": "{name}，直播两小时后开始", "next": "hook"},
        "hook": {"type": "webhook", "url": f"{base}/crm", "body": "lead {name}", "next": "tell"},
        "tell": {"type": "notify", "to": "owner", "text": "{name} 进入了培育流程", "next": "end"},
        "end": {"type": "end"}}})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    session.commit()
    tick(session, T0)
    paths = sorted(r["path"] for r in received.requests)
    assert paths == ["/crm", "/crm", "/sms", "/sms"]
    sms = [r for r in received.requests if r["path"] == "/sms"]
    assert sms[0]["headers"]["Authorization"] == "Bearer t0k" and "直播" in sms[0]["json"]["body"]
    notes = session.scalars(select(Message).where(Message.channel == "notify")).all()
    assert len(notes) == 2 and all(n.user_id == owner.id for n in notes)


def test_failed_steps_retry_with_backoff_then_fail_with_the_reason(session):
    ids = leads(session, 1)
    wf = workflow(session, {"start": "mail", "steps": {
        "mail": {"type": "send_email", "subject": "{name", "body": "x", "next": "end"}, "end": {"type": "end"}}})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    session.commit()
    now = T0
    for attempt in range(1, 5):
        report = run_due(session=session, now=now)
        enrollment = session.scalars(select(Enrollment).execution_options(populate_existing=True)).one()
        assert enrollment.attempts == attempt and enrollment.last_error
        if attempt < 4:
            assert report.retrying == 1 and enrollment.status == "active" and enrollment.next_run_at > now
            now = enrollment.next_run_at
        else:
            assert report.failed == 1 and enrollment.status == "failed"
    assert step_counts(session=session, workflow_id=wf).set_index("step_id").loc["mail", "failed"] == 1


def test_leads_waiting_when_the_workflow_is_edited_continue_sensibly(session):
    ids = leads(session, 2)
    wf = workflow(session, {"start": "w", "steps": {
        "w": {"type": "wait", "days": 2, "next": "old"},
        "old": {"type": "add_tag", "tag": "旧版", "next": "end"}, "end": {"type": "end"}}})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    session.commit()
    run_due(session=session, now=T0)
    # The wait stays; the step after it is replaced. Leads standing on "w" move to version 2.
    save_workflow(session=session, actor=SYSTEM, now=T0 + timedelta(days=1), workflow_id=wf, definition={
        "start": "w", "steps": {"w": {"type": "wait", "days": 2, "next": "new"},
                                "new": {"type": "add_tag", "tag": "新版", "next": "end"}, "end": {"type": "end"}}})
    session.commit()
    run_due(session=session, now=T0 + timedelta(days=2, minutes=1))
    tags = set(session.scalars(select(Tag.name).join(LeadTag)))
    assert tags == {"新版"}
    versions = set(session.scalars(select(Enrollment.workflow_version)))
    assert versions == {2}


def test_leads_on_a_removed_step_finish_on_their_version(session):
    ids = leads(session, 1)
    wf = workflow(session, {"start": "w", "steps": {
        "w": {"type": "wait", "days": 2, "next": "old"},
        "old": {"type": "add_tag", "tag": "旧版", "next": "end"}, "end": {"type": "end"}}})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    session.commit()
    run_due(session=session, now=T0)
    save_workflow(session=session, actor=SYSTEM, now=T0, workflow_id=wf, definition={
        "start": "tag", "steps": {"tag": {"type": "add_tag", "tag": "新版", "next": "end"}, "end": {"type": "end"}}})
    session.commit()
    report = run_due(session=session, now=T0 + timedelta(days=3))
    assert report.completed == 1
    assert set(session.scalars(select(Tag.name).join(LeadTag))) == {"旧版"}


def test_pause_holds_steps_and_resume_runs_them(session):
    ids = leads(session, 1)
    wf = workflow(session, {"start": "w", "steps": {"w": {"type": "wait", "hours": 1, "next": "end"},
                                                    "end": {"type": "end"}}})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    run_due(session=session, now=T0)
    pause_workflow(session=session, actor=SYSTEM, now=T0, workflow_id=wf)
    session.commit()
    assert run_due(session=session, now=T0 + timedelta(hours=2)).claimed == 0
    resume_workflow(session=session, actor=SYSTEM, now=T0 + timedelta(hours=2), workflow_id=wf)
    session.commit()
    assert run_due(session=session, now=T0 + timedelta(hours=2)).completed == 1


def test_triggers_enroll_set_based_since_the_last_tick(session):
    ids = leads(session, 5)
    tag_wf = workflow(session, {"start": "end", "steps": {"end": {"type": "end"}}},
                      trigger={"type": "tag_added", "tag": "决策人"})
    stage_wf = workflow(session, {"start": "end", "steps": {"end": {"type": "end"}}},
                        trigger={"type": "stage_becomes", "stage": "mql"})
    touch_wf = workflow(session, {"start": "end", "steps": {"end": {"type": "end"}}},
                        trigger={"type": "touchpoint", "kind": "webinar_registered"}, reentry="always")
    score_wf = workflow(session, {"start": "end", "steps": {"end": {"type": "end"}}},
                        trigger={"type": "score_crosses", "threshold": 50})
    leave_wf = workflow(session, {"start": "end", "steps": {"end": {"type": "end"}}},
                        trigger={"type": "group_leave", "group": "试用用户"})
    group = Group(name="试用用户")
    session.add(group)
    session.flush()
    session.add_all([GroupMember(group_id=group.id, lead_id=lead) for lead in ids[:2]])
    session.commit()
    run_due(session=session, now=T0)  # the first scan of the group snapshot after the members joined
    from core.lifecycle import change_stages

    tag = Tag(name="决策人")
    session.add(tag)
    session.flush()
    session.add_all([LeadTag(lead_id=ids[0], tag_id=tag.id, created_at=T0 + timedelta(seconds=1)),
                     LeadTag(lead_id=ids[1], tag_id=tag.id, created_at=T0 + timedelta(seconds=1))])
    change_stages(session=session, lead_ids=ids[2:4], to_stage="mql", now=T0)
    session.add(Touchpoint(lead_id=ids[4], kind="webinar_registered", occurred_at=T0, natural_key="w1"))
    session.execute(Lead.__table__.update().where(Lead.id == ids[0]).values(engagement_score=60))
    session.execute(GroupMember.__table__.delete().where(GroupMember.lead_id == ids[1]))
    session.commit()
    report = run_due(session=session, now=T0 + timedelta(minutes=1))
    assert report.enrolled == 2 + 2 + 1 + 1 + 1

    def enrolled(wf: int) -> list[int]:
        return sorted(session.scalars(select(Enrollment.lead_id).where(Enrollment.workflow_id == wf)))

    assert enrolled(tag_wf) == ids[:2] and enrolled(stage_wf) == ids[2:4] and enrolled(touch_wf) == [ids[4]]
    assert enrolled(score_wf) == [ids[0]] and enrolled(leave_wf) == [ids[1]]
    # Nothing new: nobody enrolled again.
    assert run_due(session=session, now=T0 + timedelta(minutes=2)).enrolled == 0
    # "always" re-entry: a second registration after the first run finished enrolls again.
    session.add(Touchpoint(lead_id=ids[4], kind="webinar_registered", occurred_at=T0, natural_key="w2"))
    session.commit()
    assert run_due(session=session, now=T0 + timedelta(minutes=3)).enrolled == 1


def test_ab_split_is_deterministic_and_roughly_even(session):
    sides = [split_side(i, "ab", 30) for i in range(2000)]
    assert sides == [split_side(i, "ab", 30) for i in range(2000)]
    assert 500 < sides.count("a") < 700


def test_exit_goal_takes_leads_out(session):
    ids = leads(session, 2)
    wf = workflow(session, {"start": "w", "goals": [{"kind": "has_tag", "tag": "已成交"}], "steps": {
        "w": {"type": "wait", "days": 5, "next": "end"}, "end": {"type": "end"}}})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    run_due(session=session, now=T0)
    tag = Tag(name="已成交")
    session.add(tag)
    session.flush()
    session.add(LeadTag(lead_id=ids[0], tag_id=tag.id))
    session.commit()
    assert run_due(session=session, now=T0 + timedelta(days=1)).goals == 1
    statuses = dict(session.execute(select(Enrollment.lead_id, Enrollment.status)).all())
    assert statuses == {ids[0]: "exited", ids[1]: "active"}


def test_sending_window_waits_for_working_hours(session):
    ids = leads(session, 1)
    wf = workflow(session, {"start": "win", "steps": {
        "win": {"type": "wait_window", "start_hour": 9, "end_hour": 18, "weekdays": [0, 1, 2, 3, 4], "next": "t"},
        "t": {"type": "add_tag", "tag": "已发送", "next": "end"}, "end": {"type": "end"}}})
    saturday_night = datetime(2026, 3, 7, 14, 0, tzinfo=UTC)  # 22:00 Saturday in Shanghai
    enroll_leads(session=session, actor=SYSTEM, now=saturday_night, workflow_id=wf, lead_ids=ids)
    run_due(session=session, now=saturday_night)
    enrollment = session.scalars(select(Enrollment)).one()
    assert enrollment.next_run_at == datetime(2026, 3, 9, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai


def test_simulate_shows_each_active_workflow_for_a_lead(session):
    ids = leads(session, 1)
    wf = create_from_template(session=session, actor=SYSTEM, now=T0, key="wechat_recall")
    activate_workflow(session=session, actor=SYSTEM, now=T0, workflow_id=wf.id)
    session.commit()
    plan = simulate(session=session, lead_id=ids[0], now=T0)
    assert plan["state"].eq("if_triggered").all()
    assert list(plan["step_id"])[:5] == ["add_group", "send_invite", "wait_first", "check_first", "wait_20"]
    assert plan.iloc[-1]["type"] == "end"
    assert plan["at"].max() == T0 + timedelta(days=3 + 20 + 3 + 30)
    assert session.scalar(select(func.count()).select_from(StepRun)) == 0  # nothing was done


def test_a_claim_abandoned_by_a_dead_worker_is_taken_over_after_the_lease(session, smtp_server):
    from core.workflows import claim_due
    from core.workflows.engine import CLAIM_LEASE

    host, port, received = smtp_server
    smtp(session, host, port)
    ids = leads(session, 5)
    wf = workflow(session, {"start": "mail", "steps": {
        "mail": {"type": "send_email", "subject": "s {name}", "body": "b", "next": "end"}, "end": {"type": "end"}}})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    session.commit()
    # A worker claims everything and dies before committing any step.
    assert len(claim_due(session=session, now=T0, limit=100, holder="dead-worker")) == 5
    assert run_due(session=session, now=T0 + CLAIM_LEASE / 2).claimed == 0
    report = tick(session, T0 + CLAIM_LEASE + timedelta(seconds=1))
    assert report.claimed == 5 and report.completed == 5
    assert len(received.messages) == 5 and len({m["message_id"] for m in received.messages}) == 5


def test_assign_step_hands_leads_to_the_named_rep(session, make_actor):
    rep = make_actor("sales")
    ids = leads(session, 2, stage="mql")
    wf = workflow(session, {"start": "give", "steps": {
        "give": {"type": "assign", "rep_id": rep.id, "next": "end"}, "end": {"type": "end"}}})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    session.commit()
    report = run_due(session=session, now=T0)
    assert report.completed == 2, report.errors
    from db.models import Assignment

    assert sorted(session.scalars(select(Assignment.lead_id).where(Assignment.rep_id == rep.id))) == ids


def test_a_message_the_outbox_gives_up_on_counts_as_a_failed_step(session, smtp_server):
    from core.workflows import enrollments

    host, port, received = smtp_server
    smtp(session, host, port)
    received.refuse.add("c1@example.cn")
    ids = leads(session, 2)
    wf = workflow(session, {"start": "mail", "steps": {
        "mail": {"type": "send_email", "subject": "s", "body": "b", "next": "end"}, "end": {"type": "end"}}})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    session.commit()
    tick(session, T0)
    counts = step_counts(session=session, workflow_id=wf).set_index("step_id")
    assert counts.loc["mail", "done"] == 1 and counts.loc["mail", "failed"] == 1
    assert session.scalar(select(Message.last_error).where(Message.to_address == "c1@example.cn"))
    assert enrollments(session=session, workflow_id=wf, problems_only=True).empty  # the step itself ran


def test_imported_and_grade_triggers(session):
    from db.models import Channel

    web = Channel(name="官网表单", kind="website")
    session.add(web)
    session.commit()
    imported = workflow(session, {"start": "end", "steps": {"end": {"type": "end"}}},
                        trigger={"type": "imported", "channel": "官网表单"})
    graded = workflow(session, {"start": "end", "steps": {"end": {"type": "end"}}},
                      trigger={"type": "grade_crosses", "grade": "B"})
    run_due(session=session, now=T0)
    new = leads(session, 3, source_channel_id=web.id)
    leads(session, 1)  # from no channel
    session.execute(Lead.__table__.update().where(Lead.id == new[0]).values(grade="A"))
    session.commit()
    run_due(session=session, now=T0 + timedelta(minutes=1))
    by_wf = {wf: sorted(session.scalars(select(Enrollment.lead_id).where(Enrollment.workflow_id == wf)))
             for wf in (imported, graded)}
    assert by_wf == {imported: new, graded: [new[0]]}


def test_editing_helpers_rewire_paths():
    from core.workflows.definition import to_dot, with_step, without_step

    flow = {"start": "a", "steps": {"a": {"type": "add_tag", "tag": "x", "next": "b"},
                                    "b": {"type": "wait", "days": 1, "next": "c"}, "c": {"type": "end"}}}
    renamed = with_step(flow, "wait_1d", {"type": "wait", "days": 1, "next": "c"}, old_id="b")
    assert renamed["steps"]["a"]["next"] == "wait_1d" and "b" not in renamed["steps"]
    removed = without_step(renamed, "wait_1d")
    assert removed["steps"]["a"]["next"] == "c" and not validate_definition(removed)
    with pytest.raises(Exception):  # noqa: B017 - a duplicate id is refused
        with_step(flow, "a", {"type": "end"})
    assert '"a" -> "b"' in to_dot(flow)


def test_rule_conditions_use_the_rule_language(session):
    ids = leads(session, 3)
    session.execute(Lead.__table__.update().where(Lead.id == ids[0]).values(industry="制造业", engagement_score=70))
    session.commit()
    wf = workflow(session, {"start": "check", "steps": {
        "check": {"type": "condition", "check": {"kind": "rule", "rule": 'industry = "制造业" and engagement >= 60'},
                  "yes": "hot", "no": "end"},
        "hot": {"type": "add_tag", "tag": "高意向", "next": "end"}, "end": {"type": "end"}}},
        trigger={"type": "manual"})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    session.commit()
    assert run_due(session=session, now=T0).completed == 3
    assert list(session.scalars(select(LeadTag.lead_id).join(Tag).where(Tag.name == "高意向"))) == [ids[0]]
    # A rule that does not parse is named at validation, with the step.
    problems = validate_definition({"start": "c", "steps": {
        "c": {"type": "condition", "check": {"kind": "rule", "rule": "industry = = 1"}, "yes": "e", "no": "e"},
        "e": {"type": "end"}}})
    assert [(p.step, p.key) for p in problems] == [("c", "workflows.problem.rule")]


def test_trigger_condition_filters_who_enters(session):
    wf = workflow(session, {"start": "end", "steps": {"end": {"type": "end"}}},
                  trigger={"type": "tag_added", "tag": "展会", "condition": 'province = "上海"'})
    run_due(session=session, now=T0)
    ids = leads(session, 2)
    session.execute(Lead.__table__.update().where(Lead.id == ids[0]).values(province="上海"))
    tag = Tag(name="展会")
    session.add(tag)
    session.flush()
    session.add_all([LeadTag(lead_id=lead, tag_id=tag.id) for lead in ids])
    session.commit()
    run_due(session=session, now=T0 + timedelta(minutes=1))
    assert list(session.scalars(select(Enrollment.lead_id).where(Enrollment.workflow_id == wf))) == [ids[0]]


def test_an_unexpected_error_in_one_enrollment_does_not_stall_the_others(session, monkeypatch):
    from core.workflows import engine

    ids = leads(session, 3)
    wf = workflow(session, {"start": "t", "steps": {"t": {"type": "add_tag", "tag": "x", "next": "end"},
                                                    "end": {"type": "end"}}})
    enroll_leads(session=session, actor=SYSTEM, now=T0, workflow_id=wf, lead_ids=ids)
    session.commit()
    bad = ids[1]
    real_tag = engine.HANDLERS["add_tag"]

    def exploding(chunk, wf_id, step_id, step, eids, keys):  # noqa: ANN001, ANN202
        outcomes, write = real_tag(chunk, wf_id, step_id, step, eids, keys)

        def guarded(fresh: set[int]) -> None:
            if any(chunk.enr[e]["lead_id"] == bad for e in fresh):
                raise RuntimeError("disk on fire")
            write(fresh)

        return outcomes, guarded

    monkeypatch.setitem(engine.HANDLERS, "add_tag", exploding)
    report = run_due(session=session, now=T0)
    assert report.completed == 2 and report.retrying == 1
    row = session.scalars(select(Enrollment).where(Enrollment.lead_id == bad)
                          .execution_options(populate_existing=True)).one()
    assert row.status == "active" and "disk on fire" in row.last_error and row.attempts == 1
    assert session.scalar(select(func.count()).select_from(LeadTag)) == 2
