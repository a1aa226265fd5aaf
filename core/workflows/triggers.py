"""Who enters a workflow: triggers found set-based since the last tick, re-entry policy, exit goals.

Each active workflow keeps a watermark in the ``Setting`` row ``workflow_trigger:<id>``: the highest event id (or
time, for tables without an id) it has already looked at, and for "crossing" and "leaving" triggers the set of
leads that were on the far side of the line last time, so that the next tick enrolls exactly the leads that
crossed since. Activating (or resuming) a workflow starts the watermark at the present: history does not flood
in; manual enrollment is there for existing leads.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import case, func, insert, select, update
from sqlmodel import Session

from core.errors import LeadLoopError
from core.workflows.checks import matching, rule_matches
from db.models import (
    Assignment,
    AssignmentStatus,
    Channel,
    Enrollment,
    EnrollmentStatus,
    Group,
    GroupMember,
    Lead,
    LeadStatus,
    LeadTag,
    Setting,
    StageChange,
    StepRun,
    Tag,
    Touchpoint,
    Workflow,
    WorkflowStatus,
    WorkflowVersion,
)

log = logging.getLogger("leadloop.workflows")
_ROWS = 500
GRADE_ORDER = {"A": 4, "B": 3, "C": 2, "D": 1}
_SNAPSHOT = ("group_leave", "score_crosses", "grade_crosses")


def _key(workflow_id: int) -> str:
    return f"workflow_trigger:{workflow_id}"


def _iso(value: Any) -> str | None:
    return None if value is None else pd.Timestamp(value).isoformat()


# ---------------------------------------------------------------------------------------------------------------
# Reading events since the watermark
# ---------------------------------------------------------------------------------------------------------------
def _current_side(session: Session, trigger: dict[str, Any]) -> set[int]:
    """For snapshot triggers: the leads currently on the far side of the line (in the group, above the line)."""
    kind = trigger["type"]
    if kind == "group_leave":
        return set(session.scalars(select(GroupMember.lead_id).join(Group, Group.id == GroupMember.group_id)
                                   .where(Group.name == str(trigger["group"]))))
    if kind == "score_crosses":
        column = Lead.fit_score if trigger.get("component") == "fit" else Lead.engagement_score
        return set(session.scalars(select(Lead.id).where(column >= float(trigger["threshold"]),
                                                         Lead.status == LeadStatus.VALID)))
    wanted = [g for g, rank in GRADE_ORDER.items() if rank >= GRADE_ORDER.get(str(trigger["grade"]), 5)]
    return set(session.scalars(select(Lead.id).where(Lead.grade.in_(wanted), Lead.status == LeadStatus.VALID)))


def _marks(session: Session, trigger: dict[str, Any]) -> dict[str, Any]:
    """The watermark for a trigger as of now (what "nothing new yet" looks like)."""
    kind = trigger.get("type")
    if kind in _SNAPSHOT:
        return {"side": sorted(_current_side(session, trigger))}
    if kind == "group_enter":
        return {"at": _iso(session.scalar(select(func.max(GroupMember.added_at))))}
    if kind == "tag_added":
        return {"at": _iso(session.scalar(select(func.max(LeadTag.created_at))))}
    if kind == "stage_becomes":
        return {"id": session.scalar(select(func.max(StageChange.id))) or 0}
    if kind == "touchpoint":
        return {"id": session.scalar(select(func.max(Touchpoint.id))) or 0}
    if kind == "imported":
        return {"id": session.scalar(select(func.max(Lead.id))) or 0}
    if kind == "rejected":
        return {"at": _iso(session.scalar(select(func.max(Assignment.decided_at))))}
    return {}


def _new_leads(session: Session, trigger: dict[str, Any], marks: dict[str, Any]) -> tuple[set[int], dict[str, Any]]:
    """Leads the trigger fired for since ``marks``, and the new marks."""
    kind = trigger.get("type")
    if kind in _SNAPSHOT:
        now_side = _current_side(session, trigger)
        before = set(marks.get("side") or [])
        fired = (before - now_side) if kind == "group_leave" else (now_side - before)
        return fired, {"side": sorted(now_side)}
    if kind in ("group_enter", "tag_added", "rejected"):
        since = pd.Timestamp(marks["at"]).to_pydatetime() if marks.get("at") else None
        if kind == "group_enter":
            query = (select(GroupMember.lead_id, GroupMember.added_at).join(Group, Group.id == GroupMember.group_id)
                     .where(Group.name == str(trigger["group"])))
            column = GroupMember.added_at
        elif kind == "tag_added":
            query = (select(LeadTag.lead_id, LeadTag.created_at).join(Tag, Tag.id == LeadTag.tag_id)
                     .where(Tag.name == str(trigger["tag"])))
            column = LeadTag.created_at
        else:
            query = select(Assignment.lead_id, Assignment.decided_at).where(
                Assignment.status == AssignmentStatus.REJECTED)
            if trigger.get("reasons"):
                query = query.where(Assignment.reason.in_(list(trigger["reasons"])))
            column = Assignment.decided_at
        if since is not None:
            query = query.where(column > since)
        rows = session.execute(query).all()
        # The mark moves to the newest event of the whole table (not only matching ones) for a cheap next scan.
        newest = _marks(session, trigger)
        return {int(r[0]) for r in rows}, newest if newest.get("at") else marks
    last = int(marks.get("id") or 0)
    if kind == "stage_becomes":
        query = select(StageChange.lead_id, StageChange.id).where(StageChange.id > last,
                                                                  StageChange.to_stage == str(trigger["stage"]))
        top = select(func.max(StageChange.id))
    elif kind == "touchpoint":
        query = select(Touchpoint.lead_id, Touchpoint.id).where(Touchpoint.id > last)
        if trigger.get("kind"):
            query = query.where(Touchpoint.kind == str(trigger["kind"]))
        if trigger.get("campaign"):
            query = query.where(Touchpoint.campaign_id == int(trigger["campaign"]))
        top = select(func.max(Touchpoint.id))
    elif kind == "imported":
        channel = trigger.get("channel")
        channel_id = channel if isinstance(channel, int) or str(channel).isdigit() else session.scalar(
            select(Channel.id).where(Channel.name == str(channel)))
        query = select(Lead.id, Lead.id).where(Lead.id > last, Lead.source_channel_id == int(channel_id or 0))
        top = select(func.max(Lead.id))
    else:
        return set(), marks
    rows = session.execute(query).all()
    return {int(r[0]) for r in rows}, {"id": max(last, int(session.scalar(top) or 0))}


def init_marks(session: Session, workflow: Workflow) -> None:
    """Start the trigger's watermark at the present (activation, resume)."""
    marks = _marks(session, workflow.trigger or {})
    row = session.get(Setting, _key(int(workflow.id)))
    if row is None:
        session.add(Setting(key=_key(int(workflow.id)), value=marks))
    else:
        row.value = marks
        session.add(row)


def scan_triggers(*, session: Session, now: datetime) -> int:
    """Enroll the leads whose trigger fired since the last scan, for every active workflow. Returns enrollments."""
    enrolled = 0
    workflows = session.scalars(select(Workflow).where(Workflow.status == WorkflowStatus.ACTIVE,
                                                       Workflow.is_template.is_(False))).all()
    for workflow in workflows:
        trigger = workflow.trigger or {}
        if trigger.get("type", "manual") == "manual":
            continue
        row = session.get(Setting, _key(int(workflow.id)))
        if row is None:
            init_marks(session, workflow)
            continue
        fired, marks = _new_leads(session, trigger, row.value or {})
        if fired and trigger.get("condition"):
            try:
                fired &= rule_matches(session, str(trigger["condition"]), sorted(fired), now=now)
            except LeadLoopError as error:
                # The watermark stays: the same events are looked at again once the condition can run.
                log.warning("workflow %s: trigger condition cannot run: %s", workflow.id, error)
                continue
        row.value = marks
        session.add(row)
        if fired:
            enrolled += enroll(session=session, workflow=workflow, lead_ids=fired, now=now)
    return enrolled


# ---------------------------------------------------------------------------------------------------------------
# Enrollment and re-entry
# ---------------------------------------------------------------------------------------------------------------
def enroll(*, session: Session, workflow: Workflow, lead_ids: Any, now: datetime) -> int:
    """Insert enrollments for the valid leads the re-entry policy lets in; the first step runs on the next tick.

    never: a lead enters once; after_days: again when its last entry is that old; always: whenever it is not
    in the workflow right now. A lead already in the workflow is never enrolled twice at once.
    """
    ids = sorted({int(i) for i in lead_ids})
    if not ids:
        return 0
    valid: set[int] = set()
    history: dict[int, tuple[datetime | None, bool]] = {}
    for start in range(0, len(ids), _ROWS):
        chunk = ids[start : start + _ROWS]
        valid.update(session.scalars(select(Lead.id).where(Lead.id.in_(chunk), Lead.status == LeadStatus.VALID)))
        in_progress = func.max(case(
            (Enrollment.status.in_([EnrollmentStatus.ACTIVE, EnrollmentStatus.RUNNING]), 1), else_=0))
        for lead, last, busy in session.execute(
            select(Enrollment.lead_id, func.max(Enrollment.entered_at), in_progress)
            .where(Enrollment.workflow_id == workflow.id, Enrollment.lead_id.in_(chunk))
            .group_by(Enrollment.lead_id)
        ).all():
            history[int(lead)] = (last, bool(busy))
    allowed = []
    for lead in ids:
        if lead not in valid:
            continue
        if lead in history:
            last, busy = history[lead]
            if busy or workflow.reentry == "never":
                continue
            if workflow.reentry == "after_days" and last is not None and \
                    pd.Timestamp(last) > pd.Timestamp(now) - timedelta(days=int(workflow.reentry_days or 0)):
                continue
        allowed.append(lead)
    if not allowed:
        return 0
    session.connection().execute(insert(Enrollment.__table__), [
        {"workflow_id": workflow.id, "lead_id": lead, "workflow_version": workflow.version, "current_step": None,
         "status": EnrollmentStatus.ACTIVE, "next_run_at": now, "attempts": 0, "entered_at": now}
        for lead in allowed])
    return len(allowed)


# ---------------------------------------------------------------------------------------------------------------
# Exit goals
# ---------------------------------------------------------------------------------------------------------------
def apply_goals(*, session: Session, now: datetime) -> int:
    """Enrollments whose lead reached one of its workflow version's goals leave (status ``exited``)."""
    versions = session.execute(
        select(WorkflowVersion.workflow_id, WorkflowVersion.version, WorkflowVersion.definition)
        .join(Workflow, Workflow.id == WorkflowVersion.workflow_id)
        .where(Workflow.status == WorkflowStatus.ACTIVE)
    ).all()
    exited = 0
    for wf, ver, definition in versions:
        goals = (definition or {}).get("goals") or []
        if not goals:
            continue
        rows = session.execute(
            select(Enrollment.id, Enrollment.lead_id, Enrollment.entered_at)
            .where(Enrollment.workflow_id == wf, Enrollment.workflow_version == ver,
                   Enrollment.status == EnrollmentStatus.ACTIVE)
        ).all()
        frame = pd.DataFrame([r._asdict() for r in rows], columns=["id", "lead_id", "entered_at"])
        reached: set[int] = set()
        for goal in goals:
            reached |= matching(session, goal, frame[~frame["id"].isin(reached)], now=now)
        ids = sorted(reached)
        for start in range(0, len(ids), _ROWS):
            chunk = ids[start : start + _ROWS]
            won = session.scalars(
                update(Enrollment).where(Enrollment.id.in_(chunk), Enrollment.status == EnrollmentStatus.ACTIVE)
                .values(status=EnrollmentStatus.EXITED, finished_at=now, next_run_at=None, last_error=None)
                .returning(Enrollment.id).execution_options(synchronize_session=False)
            ).all()
            if won:
                session.connection().execute(insert(StepRun.__table__), [
                    {"enrollment_id": eid, "step_id": "goal", "step_type": "goal", "status": "exited",
                     "idempotency_key": f"wf:{eid}:goal", "result": {}, "error": None, "at": now} for eid in won])
            exited += len(won)
    return exited
