"""Editing and running workflows: save, activate (a new WorkflowVersion), pause/resume, manual enrollment, counts.

Versions: ``Workflow.definition`` is what the editor shows; activating publishes it as ``WorkflowVersion`` n+1.
Enrollments run on their own version. When a new version is published, waiting enrollments move to it when the
step they stand on still exists with the same type (the natural case: a text or a duration was edited); the
others finish on their old version, so an edit never strands a lead.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select, update
from sqlmodel import Session

from core import audit, display_names
from core.auth import Actor, require
from core.clock import ensure_utc
from core.errors import NotFound, ValidationError
from core.workflows.checks import matching
from core.workflows.definition import WAITS, check_workflow, successors, wait_seconds
from core.workflows.engine import split_side, window_start
from core.workflows.templates import TEMPLATES, template
from core.workflows.triggers import enroll, init_marks
from db.models import (
    Enrollment,
    EnrollmentStatus,
    Lead,
    Message,
    MessageStatus,
    StepRun,
    Workflow,
    WorkflowStatus,
    WorkflowVersion,
)


def _get(session: Session, workflow_id: int) -> Workflow:
    workflow = session.get(Workflow, workflow_id)
    if workflow is None:
        raise NotFound(f"Workflow {workflow_id} not found.", key="workflows.not_found", id=workflow_id)
    return workflow


def get_workflow(*, session: Session, workflow_id: int) -> dict[str, Any]:
    w = _get(session, workflow_id)
    return {"id": w.id, "name": w.name, "description": w.description, "trigger": dict(w.trigger or {}),
            "definition": dict(w.definition or {}), "status": w.status, "reentry": w.reentry,
            "reentry_days": w.reentry_days, "version": w.version, "is_template": w.is_template}


def create_workflow(*, session: Session, actor: Actor, now: datetime, name: str, trigger: dict[str, Any] | None = None,
                    definition: dict[str, Any] | None = None, description: str = "", reentry: str = "never",
                    reentry_days: int | None = None) -> Workflow:
    """A new draft (a draft may be incomplete; activation checks it)."""
    require(actor, "workflows")
    if not name.strip():
        raise ValidationError("A workflow needs a name.", key="workflows.name_required")
    workflow = Workflow(name=name.strip()[:128], description=description, trigger=trigger or {"type": "manual"},
                        definition=definition or {"start": "end", "steps": {"end": {"type": "end"}}},
                        status=WorkflowStatus.DRAFT, reentry=reentry, reentry_days=reentry_days, version=0,
                        created_by_id=actor.id or None, created_at=now, updated_at=now)
    session.add(workflow)
    session.flush()
    audit.record(session, actor_id=actor.id or None, action="workflow.create", entity="workflow",
                 entity_id=workflow.id, detail={"name": workflow.name}, now=now)
    return workflow


def create_from_template(*, session: Session, actor: Actor, now: datetime, key: str,
                         name: str | None = None) -> Workflow:
    if key not in TEMPLATES:
        raise NotFound(f"No template {key}.", key="workflows.not_found", id=key)
    shipped = template(key)
    return create_workflow(session=session, actor=actor, now=now, name=name or shipped["name"],
                           trigger=shipped["trigger"], definition=shipped["definition"],
                           reentry=shipped.get("reentry", "never"), reentry_days=shipped.get("reentry_days"))


def save_workflow(*, session: Session, actor: Actor, now: datetime, workflow_id: int,
                  name: str | None = None, description: str | None = None, trigger: dict[str, Any] | None = None,
                  definition: dict[str, Any] | None = None, reentry: str | None = None,
                  reentry_days: int | None = None) -> Workflow:
    """Save edits. An active workflow is checked and published at once (its leads continue sensibly)."""
    require(actor, "workflows")
    workflow = _get(session, workflow_id)
    if name is not None:
        if not name.strip():
            raise ValidationError("A workflow needs a name.", key="workflows.name_required")
        display_names.rename(session, "workflow", workflow.name, name.strip()[:128])
        workflow.name = name.strip()[:128]
    if description is not None:
        workflow.description = description
    if trigger is not None:
        workflow.trigger = dict(trigger)
    if definition is not None:
        workflow.definition = dict(definition)
    if reentry is not None:
        workflow.reentry = reentry
        workflow.reentry_days = reentry_days
    if workflow.status == WorkflowStatus.ACTIVE:
        check_workflow(workflow.trigger, workflow.definition, workflow.reentry, workflow.reentry_days)
        _publish(session, workflow, actor, now)
    workflow.updated_at = now
    session.add(workflow)
    audit.record(session, actor_id=actor.id or None, action="workflow.save", entity="workflow",
                 entity_id=workflow.id, detail={"name": workflow.name, "version": workflow.version}, now=now)
    session.flush()
    return workflow


def _publish(session: Session, workflow: Workflow, actor: Actor, now: datetime) -> None:
    """Make the current definition a WorkflowVersion (unless it is the latest one already)."""
    latest = session.scalars(select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow.id)
                             .order_by(WorkflowVersion.version.desc()).limit(1)).first()
    if latest is not None and latest.definition == workflow.definition and latest.trigger == workflow.trigger:
        workflow.version = latest.version
        return
    number = (latest.version if latest else 0) + 1
    session.add(WorkflowVersion(workflow_id=workflow.id, version=number, trigger=dict(workflow.trigger),
                                definition=dict(workflow.definition), author_id=actor.id or None, created_at=now))
    workflow.version = number
    if latest is None:
        return
    steps = workflow.definition.get("steps") or {}
    for old, definition in session.execute(select(WorkflowVersion.version, WorkflowVersion.definition)
                                           .where(WorkflowVersion.workflow_id == workflow.id)).all():
        old_steps = (definition or {}).get("steps") or {}
        same = [sid for sid, step in old_steps.items()
                if sid in steps and isinstance(step, dict) and steps[sid].get("type") == step.get("type")]
        if old == number or not same:
            continue
        session.execute(
            update(Enrollment)
            .where(Enrollment.workflow_id == workflow.id, Enrollment.workflow_version == old,
                   Enrollment.status == EnrollmentStatus.ACTIVE, Enrollment.current_step.in_(same))
            .values(workflow_version=number).execution_options(synchronize_session=False)
        )


def activate_workflow(*, session: Session, actor: Actor, now: datetime, workflow_id: int) -> Workflow:
    """Check, publish and start a workflow; its trigger watches events from now on."""
    require(actor, "workflows")
    workflow = _get(session, workflow_id)
    check_workflow(workflow.trigger, workflow.definition, workflow.reentry, workflow.reentry_days)
    _publish(session, workflow, actor, now)
    workflow.status = WorkflowStatus.ACTIVE
    workflow.updated_at = now
    session.add(workflow)
    session.flush()
    init_marks(session, workflow)
    audit.record(session, actor_id=actor.id or None, action="workflow.activate", entity="workflow",
                 entity_id=workflow.id, detail={"version": workflow.version}, now=now)
    return workflow


def pause_workflow(*, session: Session, actor: Actor, now: datetime, workflow_id: int) -> Workflow:
    """Stop triggers and steps; waiting leads stay where they are until resumed."""
    require(actor, "workflows")
    workflow = _get(session, workflow_id)
    if workflow.status != WorkflowStatus.ACTIVE:
        raise ValidationError("Only an active workflow can be paused.", key="workflows.not_active")
    workflow.status = WorkflowStatus.PAUSED
    workflow.updated_at = now
    session.add(workflow)
    audit.record(session, actor_id=actor.id or None, action="workflow.pause", entity="workflow",
                 entity_id=workflow.id, now=now)
    return workflow


def resume_workflow(*, session: Session, actor: Actor, now: datetime, workflow_id: int) -> Workflow:
    """Run again: steps that fell due during the pause run on the next tick; events during the pause are not
    replayed as triggers (the watermark restarts now)."""
    require(actor, "workflows")
    workflow = _get(session, workflow_id)
    if workflow.status != WorkflowStatus.PAUSED:
        raise ValidationError("Only a paused workflow can be resumed.", key="workflows.not_paused")
    return activate_workflow(session=session, actor=actor, now=now, workflow_id=workflow_id)


def enroll_leads(*, session: Session, actor: Actor, now: datetime, workflow_id: int, lead_ids: list[int]) -> int:
    """Manual enrollment (any trigger type); the re-entry policy still applies."""
    require(actor, "workflows")
    workflow = _get(session, workflow_id)
    if workflow.status != WorkflowStatus.ACTIVE:
        raise ValidationError("Activate the workflow before enrolling leads.", key="workflows.not_active")
    count = enroll(session=session, workflow=workflow, lead_ids=lead_ids, now=now)
    audit.record(session, actor_id=actor.id or None, action="workflow.enroll", entity="workflow",
                 entity_id=workflow.id, detail={"requested": len(lead_ids), "enrolled": count}, now=now)
    return count


STEP_COUNT_COLUMNS = ["step_id", "type", "entered", "waiting", "done", "failed"]


def step_counts(*, session: Session, workflow_id: int) -> pd.DataFrame:
    """Per step of the current definition: enrollments that reached it, wait there now, passed it, failed there."""
    workflow = _get(session, workflow_id)
    steps = (workflow.definition or {}).get("steps") or {}
    runs = session.execute(
        select(StepRun.step_id, StepRun.status, func.count(func.distinct(StepRun.enrollment_id)))
        .join(Enrollment, Enrollment.id == StepRun.enrollment_id)
        .where(Enrollment.workflow_id == workflow_id)
        .group_by(StepRun.step_id, StepRun.status)
    ).all()
    standing = session.execute(
        select(Enrollment.current_step, Enrollment.status, func.count())
        .where(Enrollment.workflow_id == workflow_id,
               Enrollment.status.in_([EnrollmentStatus.ACTIVE, EnrollmentStatus.RUNNING, EnrollmentStatus.FAILED]))
        .group_by(Enrollment.current_step, Enrollment.status)
    ).all()
    counts = {sid: {"entered": 0, "waiting": 0, "done": 0, "failed": 0} for sid in steps}
    any_run = {sid: 0 for sid in steps}
    failed_runs = {sid: 0 for sid in steps}
    for sid, status, n in runs:
        if sid not in counts:
            continue
        if status == "failed":
            counts[sid]["failed"] += n
            failed_runs[sid] += n
        elif status != "retry":
            any_run[sid] += n
            if status != "waiting":
                counts[sid]["done"] += n
    for sid, status, n in standing:
        if sid in counts and status != EnrollmentStatus.FAILED:
            counts[sid]["waiting"] += n
    # Messages the outbox gave up on count as failures of the step that queued them (key wf:<e>:<step>:<t>:msg).
    failed_keys = session.scalars(
        select(Message.idempotency_key).join(Enrollment, Enrollment.id == Message.enrollment_id)
        .where(Enrollment.workflow_id == workflow_id, Message.status == MessageStatus.FAILED)
    ).all()
    for key in failed_keys:
        parts = key.split(":")
        if len(parts) >= 4 and parts[0] == "wf" and parts[2] in counts:
            counts[parts[2]]["failed"] += 1
            counts[parts[2]]["done"] = max(counts[parts[2]]["done"] - 1, 0)
    for sid, values in counts.items():
        if steps[sid].get("type") in WAITS:
            # A wait's StepRun is written when it ends (older data: when it began, status "waiting").
            values["entered"] = max(any_run[sid], values["done"] + values["waiting"])
            values["done"] = values["entered"] - values["waiting"]
        else:
            # Passed it (done, or its message failed later), failed at it, or retrying there now.
            values["entered"] = any_run[sid] + failed_runs[sid] + values["waiting"]
    frame = pd.DataFrame([{"step_id": sid, "type": steps[sid].get("type"), **values} for sid, values in counts.items()],
                         columns=STEP_COUNT_COLUMNS)
    return frame


def enrollments(*, session: Session, workflow_id: int, limit: int = 200, problems_only: bool = False) -> pd.DataFrame:
    """The newest enrollments of a workflow with the lead's name, step, status and last error (``problems_only``:
    those failed or retrying)."""
    rows = session.execute(
        select(Enrollment.id, Enrollment.lead_id, Lead.name, Lead.company, Enrollment.workflow_version,
               Enrollment.current_step, Enrollment.status, Enrollment.next_run_at, Enrollment.attempts,
               Enrollment.last_error, Enrollment.entered_at)
        .join(Lead, Lead.id == Enrollment.lead_id)
        .where(Enrollment.workflow_id == workflow_id,
               Enrollment.last_error.is_not(None) if problems_only else Enrollment.id.is_not(None))
        .order_by(Enrollment.id.desc()).limit(limit)
    ).all()
    return pd.DataFrame([r._asdict() for r in rows],
                        columns=["id", "lead_id", "name", "company", "workflow_version", "current_step", "status",
                                 "next_run_at", "attempts", "last_error", "entered_at"])


# ---------------------------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------------------------
SIMULATION_COLUMNS = ["workflow_id", "workflow", "state", "at", "step_id", "type", "detail"]


def simulate(*, session: Session, lead_id: int, now: datetime, max_steps: int = 40) -> pd.DataFrame:
    """What each active workflow would do to one lead and when, without changing anything.

    An enrolled lead is followed from where it stands; a lead not enrolled is followed as if its trigger fired
    now (``state`` says which, or that the re-entry policy keeps it out). Conditions are judged on the lead as it
    is now; waits move the simulated clock.
    """
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFound(f"Lead {lead_id} not found.", key="workflows.lead_not_found", id=lead_id)
    workflows = session.scalars(select(Workflow).where(Workflow.status == WorkflowStatus.ACTIVE,
                                                       Workflow.is_template.is_(False)).order_by(Workflow.id)).all()
    out: list[dict[str, Any]] = []
    for workflow in workflows:
        current = session.scalars(select(Enrollment).where(
            Enrollment.workflow_id == workflow.id, Enrollment.lead_id == lead_id,
            Enrollment.status.in_([EnrollmentStatus.ACTIVE, EnrollmentStatus.RUNNING]))
            .order_by(Enrollment.id.desc()).limit(1)).first()
        definition = workflow.definition or {}
        base = {"workflow_id": workflow.id, "workflow": workflow.name}
        if current is not None:
            version = session.scalar(select(WorkflowVersion.definition).where(
                WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.version == current.workflow_version))
            definition = version or definition
            steps = definition.get("steps") or {}
            at = max(now, current.next_run_at or now)
            step_id = current.current_step
            if step_id is None:
                step_id = definition.get("start")
            elif steps.get(step_id, {}).get("type") in WAITS:
                out.append({**base, "state": "enrolled", "at": at, "step_id": step_id,
                            "type": steps[step_id]["type"], "detail": "wait_over"})
                step_id = steps[step_id].get("next")
            state, eid, entered = "enrolled", int(current.id), current.entered_at
        else:
            seen = session.scalar(select(func.max(Enrollment.entered_at)).where(
                Enrollment.workflow_id == workflow.id, Enrollment.lead_id == lead_id))
            blocked = seen is not None and (workflow.reentry == "never" or (
                workflow.reentry == "after_days"
                and pd.Timestamp(seen) > pd.Timestamp(now) - timedelta(days=int(workflow.reentry_days or 0))))
            if blocked:
                out.append({**base, "state": "blocked", "at": now, "step_id": "", "type": "",
                            "detail": "reentry"})
                continue
            state, eid, entered, at = "if_triggered", 0, now, now
            step_id = definition.get("start")
        steps = definition.get("steps") or {}
        for _ in range(max_steps):
            step = steps.get(step_id or "")
            if step is None:
                break
            kind = step.get("type")
            row = {**base, "state": state, "at": at, "step_id": step_id, "type": kind, "detail": ""}
            if kind == "wait":
                at = at + timedelta(seconds=wait_seconds(step))
                row["detail"] = f"until {at.isoformat()}"
            elif kind == "wait_until":
                at = max(at, ensure_utc(datetime.fromisoformat(str(step["at"]))))
                row["detail"] = f"until {at.isoformat()}"
            elif kind == "wait_window":
                at = window_start(at, int(step.get("start_hour", 9)), int(step.get("end_hour", 18)),
                                  [int(d) for d in step.get("weekdays", [0, 1, 2, 3, 4])])
                row["detail"] = f"until {at.isoformat()}"
            elif kind == "condition":
                frame = pd.DataFrame([{"id": eid, "lead_id": lead_id, "entered_at": entered}])
                side = "yes" if eid in matching(session, step["check"], frame, now=now) else "no"
                row["detail"] = side
            elif kind == "split":
                side = split_side(eid, step_id, float(step.get("percent", 50))) if eid else "a"
                row["detail"] = side
            else:
                row["detail"] = str(step.get("subject") or step.get("text") or step.get("tag") or step.get("group")
                                    or step.get("to") or step.get("stage") or step.get("points") or "")
            out.append(row)
            if kind == "end":
                break
            nexts = successors(step)
            step_id = step.get(row["detail"]) if kind in ("condition", "split") else (nexts[0] if nexts else None)
    return pd.DataFrame(out, columns=SIMULATION_COLUMNS)
