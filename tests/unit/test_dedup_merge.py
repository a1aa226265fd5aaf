"""Merge and unmerge: every referencing row moves to the survivor, survivorship per field, and undo restores the
database exactly (a Hypothesis property over random leads and their rows), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import Session, SQLModel

from core import normalize
from core.auth import SYSTEM
from core.dedup import lead_merges, merge, unmerge
from core.errors import MergeConflict, PermissionDenied
from db.models import (
    Assignment,
    DuplicateCandidate,
    Enrollment,
    Group,
    GroupMember,
    Lead,
    LeadStatus,
    LeadTag,
    MergeRecord,
    Message,
    ScoreEvent,
    StageChange,
    Tag,
    Touchpoint,
    Workflow,
)

NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
_counter = {"n": 0}


def _key() -> str:
    _counter["n"] += 1
    return f"k{_counter['n']}"


def add_lead(session: Session, **fields: Any) -> Lead:
    values = {"name": "张伟", "created_at": NOW - timedelta(days=30), "updated_at": NOW - timedelta(days=30), **fields}
    keys = normalize.lead_keys(pd.DataFrame([{k: values.get(k) for k in ("name", "phone", "email", "company",
                                                                         "wechat_id")}]))
    lead = Lead(**values, name_key=keys.at[0, "name_key"], company_key=keys.at[0, "company_key"],
                search_text=keys.at[0, "search_text"])
    session.add(lead)
    session.flush()
    return lead


def add_history(session: Session, lead: Lead, *, touches: int = 2, tags: tuple[int, ...] = (),
                groups: tuple[int, ...] = (), workflow_id: int | None = None, points: float = 10) -> None:
    for k in range(touches):
        session.add(Touchpoint(lead_id=lead.id, kind="page_view", occurred_at=NOW - timedelta(days=k + 1),
                               natural_key=_key()))
    for tag_id in tags:
        session.add(LeadTag(lead_id=lead.id, tag_id=tag_id, created_at=NOW))
    for group_id in groups:
        session.add(GroupMember(group_id=group_id, lead_id=lead.id, added_at=NOW))
    session.add(ScoreEvent(lead_id=lead.id, component="engagement", points=points, occurred_at=NOW))
    session.add(ScoreEvent(lead_id=lead.id, component="fit", points=points / 2, occurred_at=NOW))
    session.add(StageChange(lead_id=lead.id, from_stage="new", to_stage="new", at=NOW))
    session.add(Message(channel="email", lead_id=lead.id, idempotency_key=_key(), created_at=NOW))
    if workflow_id is not None:
        session.add(Enrollment(workflow_id=workflow_id, lead_id=lead.id, status="active", entered_at=NOW))
    session.flush()


def dump(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table except the merge and audit trail, in a stable order."""
    out = {}
    for table in SQLModel.metadata.sorted_tables:
        if table.name in ("mergerecord", "auditlog"):
            continue
        rows = session.execute(select(table)).all()
        out[table.name] = sorted(tuple(repr(v) for v in row) for row in rows)
    return out


@pytest.fixture
def world(session):
    tags = [Tag(name=f"tag{k}") for k in range(3)]
    groups = [Group(name=f"group{k}") for k in range(2)]
    workflow = Workflow(name="nurture")
    session.add_all([*tags, *groups, workflow])
    session.commit()
    return {"tags": [t.id for t in tags], "groups": [g.id for g in groups], "workflow": workflow.id}


def test_merge_moves_every_row_and_keeps_scores_as_ledger_sums(session, world, make_actor):
    marketer = make_actor("marketer")
    rep = make_actor("sales")
    a = add_lead(session, phone="+8613800138000", company="上海云杉科技有限公司", stage="sal", owner_id=rep.id,
                 updated_at=NOW - timedelta(days=20))
    b = add_lead(session, name="Zhang Wei", email="zw@yunshan.com", title="CTO", company="云杉科技",
                 updated_at=NOW - timedelta(days=1))
    t1, t2, t3 = world["tags"]
    add_history(session, a, tags=(t1, t2), groups=(world["groups"][0],), workflow_id=world["workflow"], points=10)
    add_history(session, b, tags=(t2, t3), groups=(world["groups"][0], world["groups"][1]),
                workflow_id=world["workflow"], points=30)
    session.add(Assignment(lead_id=b.id, rep_id=rep.id, assigned_at=NOW))
    session.commit()

    record = merge(session=session, actor=marketer, survivor_id=a.id, merged_id=b.id, now=NOW)
    session.commit()
    survivor = session.get(Lead, a.id)
    merged = session.get(Lead, b.id)
    session.refresh(survivor)
    session.refresh(merged)
    assert merged.status == LeadStatus.MERGED and merged.merged_into_id == a.id
    # Every referencing row is on the survivor now; the tag both had is there once.
    for model in (Touchpoint, ScoreEvent, StageChange, Message, Assignment, Enrollment):
        assert session.scalar(select(model.id).where(model.lead_id == b.id)) is None, model.__name__
    assert sorted(session.scalars(select(LeadTag.tag_id).where(LeadTag.lead_id == a.id))) == [t1, t2, t3]
    assert len(session.scalars(select(GroupMember.group_id).where(GroupMember.lead_id == a.id)).all()) == 2
    # The merged lead's run of a workflow the survivor is already in has ended.
    statuses = sorted(session.scalars(select(Enrollment.status).where(Enrollment.lead_id == a.id)))
    assert statuses == ["active", "exited"]
    # Survivorship: newer non-empty values, older values where the newer lead has none; stage and owner of
    # the most advanced lead; scores are the ledger sums (never the cached columns added up).
    assert survivor.name == "Zhang Wei" and survivor.email == "zw@yunshan.com" and survivor.title == "CTO"
    assert survivor.phone == "+8613800138000"
    assert survivor.stage == "sal" and survivor.owner_id == rep.id
    assert survivor.engagement_score == 40 and survivor.fit_score == 20
    assert survivor.name_key == "zhangwei" and "zw@yunshan.com" in survivor.search_text
    assert record.snapshot["survivor"]["id"] == a.id


def test_user_choices_override_survivorship(session, world, make_actor):
    marketer = make_actor("marketer")
    a = add_lead(session, title="销售总监", updated_at=NOW - timedelta(days=10))
    b = add_lead(session, title="市场经理", updated_at=NOW)
    merge(session=session, actor=marketer, survivor_id=a.id, merged_id=b.id, now=NOW, choices={"title": a.id})
    session.commit()
    assert session.scalar(select(Lead.title).where(Lead.id == a.id)) == "销售总监"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.fixed_dictionaries({
        "name": st.sampled_from(["张伟", "Zhang Wei", None, "李娜"]),
        "phone": st.sampled_from(["+8613800138000", None, "+8613912345678"]),
        "email": st.sampled_from(["a@x.com", None]),
        "stage": st.sampled_from(["new", "mql", "sql", "won"]),
        "days": st.integers(0, 60),
    }),
    second=st.fixed_dictionaries({
        "name": st.sampled_from(["张伟", None, "王芳"]),
        "phone": st.sampled_from(["+8613800138001", None]),
        "email": st.sampled_from(["b@y.cn", None]),
        "stage": st.sampled_from(["new", "sal", "recycled"]),
        "days": st.integers(0, 60),
    }),
    tags=st.tuples(st.lists(st.integers(0, 2), unique=True), st.lists(st.integers(0, 2), unique=True)),
    touches=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    enrolled=st.tuples(st.booleans(), st.booleans()),
    candidate=st.booleans(),
)
def test_merge_then_unmerge_restores_the_database_exactly(session, world, first, second, tags, touches,
                                                           enrolled, candidate):
    leads = []
    for k, spec in enumerate((first, second)):
        when = NOW - timedelta(days=spec["days"])
        lead = add_lead(session, name=spec["name"], phone=spec["phone"], email=spec["email"], stage=spec["stage"],
                        updated_at=when, created_at=when - timedelta(days=1), attributes={"k": k})
        add_history(session, lead, touches=touches[k], tags=tuple(world["tags"][t] for t in tags[k]),
                    groups=(world["groups"][k],), workflow_id=world["workflow"] if enrolled[k] else None)
        leads.append(lead)
    third = add_lead(session, name="路人")
    if candidate:  # open review pairs of the merged lead: one with the survivor, one with a third lead
        session.add(DuplicateCandidate(left_id=leads[0].id, right_id=leads[1].id, score=0.8, reasons=["x"]))
        session.add(DuplicateCandidate(left_id=leads[1].id, right_id=third.id, score=0.7, reasons=["y"]))
    leads[1].followup_lead_id = leads[0].id
    third.followup_lead_id = leads[1].id
    session.add_all([leads[1], third])
    session.commit()
    before = dump(session)
    record = merge(session=session, actor=SYSTEM, survivor_id=leads[0].id, merged_id=leads[1].id,
                   now=NOW + timedelta(hours=1))
    session.commit()
    assert dump(session) != before
    unmerge(session=session, actor=SYSTEM, merge_id=record.id, now=NOW + timedelta(hours=2))
    session.commit()
    session.expire_all()
    assert dump(session) == before


def test_merges_are_undone_newest_first(session, world, make_actor):
    marketer = make_actor("marketer")
    a, b, c = (add_lead(session, name=n) for n in ("甲", "乙", "丙"))
    first = merge(session=session, actor=marketer, survivor_id=a.id, merged_id=b.id, now=NOW)
    second = merge(session=session, actor=marketer, survivor_id=a.id, merged_id=c.id, now=NOW)
    session.commit()
    history = lead_merges(session=session, actor=marketer, lead_id=a.id)
    assert list(history["merge_id"]) == [second.id, first.id]
    assert list(history["can_undo"]) == [True, False]
    with pytest.raises(MergeConflict):
        unmerge(session=session, actor=marketer, merge_id=first.id, now=NOW)
    session.rollback()
    unmerge(session=session, actor=marketer, merge_id=second.id, now=NOW)
    unmerge(session=session, actor=marketer, merge_id=first.id, now=NOW)
    session.commit()
    assert set(session.scalars(select(Lead.status).where(Lead.id.in_((a.id, b.id, c.id))))) == {"valid"}
    with pytest.raises(MergeConflict):
        unmerge(session=session, actor=marketer, merge_id=first.id, now=NOW)


def test_a_merged_lead_cannot_be_merged_again_and_sales_may_not_merge(session, world, make_actor):
    marketer, rep = make_actor("marketer"), make_actor("sales")
    a, b, c = (add_lead(session, name=n) for n in ("甲", "乙", "丙"))
    with pytest.raises(PermissionDenied):
        merge(session=session, actor=rep, survivor_id=a.id, merged_id=b.id, now=NOW)
    merge(session=session, actor=marketer, survivor_id=a.id, merged_id=b.id, now=NOW)
    with pytest.raises(MergeConflict):
        merge(session=session, actor=marketer, survivor_id=c.id, merged_id=b.id, now=NOW)
    assert session.scalar(select(MergeRecord.id).where(MergeRecord.merged_id == c.id)) is None


def test_many_merges_at_once_equal_merges_one_by_one(session, world):
    """``merge_many`` (the automatic merges of a scan) ends in the same database as ``merge`` pair by pair, and
    its snapshots undo the same way."""
    from core.dedup.bulk import merge_many

    def build(offset: int) -> list[Lead]:
        leads = []
        for k, (name, stage, tags, enrolled) in enumerate([("张伟", "mql", (0, 1), True), ("Zhang Wei", "new", (1,), True),
                                                           (None, "sql", (1, 2), False), ("张玮", "new", (2,), True)]):
            when = NOW - timedelta(days=10 - k)
            lead = add_lead(session, name=name, stage=stage, phone=f"+86138{offset:04d}{k:04d}", updated_at=when,
                            created_at=when, email=None if k % 2 else f"u{offset}{k}@x.cn")
            add_history(session, lead, touches=k, tags=tuple(world["tags"][t] for t in tags),
                        groups=(world["groups"][k % 2],), workflow_id=world["workflow"] if enrolled else None,
                        points=k + 1)
            leads.append(lead)
        session.add(DuplicateCandidate(left_id=leads[0].id, right_id=leads[1].id, score=0.8, reasons=[]))
        session.add(DuplicateCandidate(left_id=leads[1].id, right_id=leads[2].id, score=0.7, reasons=[]))
        leads[3].followup_lead_id = leads[1].id
        session.add(leads[3])
        session.commit()
        return leads

    one, many = build(1), build(2)
    before = dump(session)
    for merged in one[1:]:
        merge(session=session, actor=SYSTEM, survivor_id=one[0].id, merged_id=merged.id, now=NOW, automatic=True)
    merge_many(session=session, actor=SYSTEM, merges=[(many[0].id, m.id, None) for m in many[1:]], now=NOW)
    session.commit()
    session.expire_all()
    columns = [c for c in Lead.__table__.columns.keys() if c not in ("id", "phone", "email", "search_text",
                                                                     "merged_into_id", "followup_lead_id")]
    for a, b in zip(one, many, strict=True):
        row_a = session.execute(select(*[Lead.__table__.c[c] for c in columns]).where(Lead.id == a.id)).one()
        row_b = session.execute(select(*[Lead.__table__.c[c] for c in columns]).where(Lead.id == b.id)).one()
        assert row_a == row_b, (a.id, b.id)
    for model in (Touchpoint, ScoreEvent, Enrollment, Message, StageChange):
        count_a = len(session.scalars(select(model.id).where(model.lead_id == one[0].id)).all())
        count_b = len(session.scalars(select(model.id).where(model.lead_id == many[0].id)).all())
        assert count_a == count_b, model.__name__
    assert sorted(session.scalars(select(LeadTag.tag_id).where(LeadTag.lead_id == one[0].id))) == sorted(
        session.scalars(select(LeadTag.tag_id).where(LeadTag.lead_id == many[0].id)))
    snapshots_a = [r.snapshot for r in session.scalars(select(MergeRecord).where(
        MergeRecord.survivor_id == one[0].id).order_by(MergeRecord.id))]
    snapshots_b = [r.snapshot for r in session.scalars(select(MergeRecord).where(
        MergeRecord.survivor_id == many[0].id).order_by(MergeRecord.id))]
    assert [sorted(s["moved"]) for s in snapshots_a] == [sorted(s["moved"]) for s in snapshots_b]
    assert [s["survivor"]["version"] for s in snapshots_a] == [s["survivor"]["version"] for s in snapshots_b]
    for record_id in sorted(session.scalars(select(MergeRecord.id)), reverse=True):
        unmerge(session=session, actor=SYSTEM, merge_id=record_id, now=NOW)
    session.commit()
    session.expire_all()
    assert dump(session) == before


def _pairs_with_history(session: Session, world: dict[str, Any], count: int, offset: int) -> list[int]:
    """``count`` pairs of the same person with touchpoints, tags, groups and enrollments, each pending review;
    the last three leads form a chain (A=B, B=C). Returns the candidate ids."""
    ids = []
    leads = []
    for k in range(count * 2 + 1):
        when = NOW - timedelta(days=40 - k % 30)
        lead = add_lead(session, name="王芳" if k % 2 else "Wang Fang", phone=f"+86139{offset:03d}{k:05d}",
                        stage=("new", "mql", "sal")[k % 3], updated_at=when, created_at=when, attributes={"k": k})
        add_history(session, lead, touches=k % 3, tags=tuple(world["tags"][t] for t in range(k % 3)),
                    groups=(world["groups"][k % 2],), workflow_id=world["workflow"] if k % 2 else None)
        leads.append(lead)
    for k in range(count):
        left, right = leads[2 * k], leads[2 * k + 1]
        candidate = DuplicateCandidate(left_id=left.id, right_id=right.id, score=0.9 - k / 1000, reasons=["x"])
        session.add(candidate)
        session.flush()
        ids.append(candidate.id)
    # The best pair first: B absorbs C, then B goes into A (a second round).
    chain = DuplicateCandidate(left_id=leads[-2].id, right_id=leads[-1].id, score=0.95, reasons=["y"])
    session.add(chain)
    session.commit()
    return [*ids, chain.id]


def test_bulk_merge_writes_a_few_statements_whatever_the_number_of_pairs_and_undoes_exactly(session, world,
                                                                                           make_actor):
    from sqlalchemy import event

    from core.dedup import bulk_merge

    marketer = make_actor("marketer")
    # The leads' histories repeat every six leads: both sets hold the same kinds of rows to move.
    small = _pairs_with_history(session, world, 6, 1)
    large = _pairs_with_history(session, world, 24, 2)
    before = dump(session)
    counts = []
    for ids in (small, large):
        statements: list[str] = []
        listener = lambda *args, seen=statements: seen.append(args[2])  # noqa: E731
        event.listen(session.get_bind(), "before_cursor_execute", listener)
        try:
            done = bulk_merge(session=session, actor=marketer, candidate_ids=ids, now=NOW + timedelta(hours=1))
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", listener)
        session.commit()
        assert done == len(ids)
        counts.append(len(statements))
    assert counts[0] == counts[1], counts  # set-based: 25 merges cost what 7 do
    # The chain merged into one lead; every merged lead points at its survivor; the pairs are decided by the user.
    merged = session.scalars(select(Lead).where(Lead.status == LeadStatus.MERGED)).all()
    assert len(merged) == len(small) + len(large)
    assert all(lead.merged_into_id is not None for lead in merged)
    decided = session.scalars(select(DuplicateCandidate).where(DuplicateCandidate.id.in_(small + large))).all()
    assert {c.status for c in decided} == {"merged"} and {c.decided_by_id for c in decided} == {marketer.id}
    assert session.scalar(select(Touchpoint.id).where(Touchpoint.lead_id.in_([m.id for m in merged]))) is None
    for record_id in sorted(session.scalars(select(MergeRecord.id)), reverse=True):
        unmerge(session=session, actor=marketer, merge_id=record_id, now=NOW + timedelta(hours=2))
    session.commit()
    session.expire_all()
    assert dump(session) == before
