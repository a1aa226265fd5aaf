"""The engine: ``run_due(session=…, now=…)`` advances every enrollment whose step is due.

State lives in tables. A tick

1. enrolls the leads whose trigger fired since the last tick (``core.workflows.triggers``) and lets enrollments
   that reached an exit goal leave;
2. claims due enrollments atomically in chunks (``UPDATE … SET status='running' WHERE status='active' AND
   next_run_at <= now … RETURNING id``; the candidates are locked ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and
   commits the claim, so two workers never take the same enrollment;
3. executes the chunk step by step *in bulk*: all enrollments standing on the same step of the same workflow
   version are one group, one handler call, a few statements;
4. commits the chunk's StepRuns, messages, lead changes and new enrollment positions in one transaction.

Every step execution has an idempotency key ``wf:<enrollment>:<step>:<due epoch>`` (the enrollment's claimed
``next_run_at`` does not change until the chunk commits). The StepRun insert uses it with ON CONFLICT DO
NOTHING and side effects are applied only for the rows it inserted; messages carry ``<key>:msg`` in the outbox.
So a worker killed mid-tick leaves its claimed enrollments ``running`` with nothing committed; after
``CLAIM_LEASE`` another tick reclaims them and does the work once. The outbox (``core.messaging.deliver_due``)
sends afterwards and has its own claims.

Failures (a routing error, a merge field that cannot be filled, a rule that cannot run) retry with backoff
(``BACKOFF_MINUTES``) and end with the enrollment ``failed``, its ``last_error`` and a failed StepRun saying why.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from core.clock import TEAM_TIMEZONE, ensure_utc
from core.errors import LeadLoopError, ValidationError
from core.settings import get_setting
from core.unsubscribe import signing_secret, unsubscribe_url
from core.workflows.checks import matching
from core.workflows.definition import WAITS, wait_seconds
from db.models import (
    Assignment,
    AssignmentStatus,
    Enrollment,
    EnrollmentStatus,
    Group,
    GroupMember,
    Lead,
    LeadStatus,
    LeadTag,
    MessageStatus,
    ScoreEvent,
    StepRun,
    Tag,
    User,
    Workflow,
    WorkflowStatus,
    WorkflowVersion,
)

CHUNK = 5000
# A claimed enrollment whose worker vanished (killed mid-tick) may be claimed again after this long.
CLAIM_LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 4
# Minutes before attempt n+1 after attempt n failed.
BACKOFF_MINUTES = (1, 10, 60)
# A chain within one tick is bounded by the definition (validation forbids loops without a wait); this is a guard.
MAX_CHAIN = 200
_ROWS = 500

LEAD_FIELDS = ("id", "name", "email", "phone", "wechat_id", "company", "title", "industry", "province", "city",
               "owner_id", "stage", "status", "unsubscribed")
MERGE_FIELDS = ("name", "company", "title", "industry", "province", "city", "email", "phone", "owner",
                "unsubscribe_url")


@dataclass
class TickReport:
    enrolled: int = 0
    goals: int = 0
    claimed: int = 0
    steps: int = 0
    messages: int = 0
    waiting: int = 0
    completed: int = 0
    exited: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts for the scheduler's JobRun row and the CLI."""
        return {"enrolled": self.enrolled, "goals": self.goals, "claimed": self.claimed, "steps": self.steps,
                "messages": self.messages, "waiting": self.waiting, "completed": self.completed,
                "exited": self.exited, "retrying": self.retrying, "failed": self.failed,
                "errors": self.errors[:20]}


@dataclass
class Outcome:
    """What one step did to one enrollment: continue to ``go``, wait ``until``, end, or fail with ``error``."""

    status: str  # done | branched | waiting | skipped | exited | failed
    go: str | None = None
    until: datetime | None = None
    end: bool = False
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


def _insert(session: Session):  # noqa: ANN202 - the dialect's INSERT construct
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def step_key(enrollment_id: int, step_id: str, due: datetime) -> str:
    stamp = int(due.timestamp()) if due.tzinfo is not None else int(ensure_utc(due).timestamp())
    return f"wf:{enrollment_id}:{step_id}:{stamp}"[:120]


# ---------------------------------------------------------------------------------------------------------------
# Claiming
# ---------------------------------------------------------------------------------------------------------------
def _due_clause(now: datetime):  # noqa: ANN202 - a SQLAlchemy condition
    return or_(
        and_(Enrollment.status == EnrollmentStatus.ACTIVE, Enrollment.next_run_at <= now),
        and_(Enrollment.status == EnrollmentStatus.RUNNING, Enrollment.claimed_at < now - CLAIM_LEASE),
    )


def claim_due(*, session: Session, now: datetime, limit: int, holder: str) -> list[int]:
    """Mark up to ``limit`` due enrollments of active workflows as this worker's and commit; returns their ids."""
    candidates = (select(Enrollment.id).join(Workflow, Workflow.id == Enrollment.workflow_id)
                  .where(Workflow.status == WorkflowStatus.ACTIVE, _due_clause(now))
                  .order_by(Enrollment.next_run_at, Enrollment.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True, of=Enrollment)
    ids = list(session.scalars(candidates))
    if not ids:
        session.commit()
        return []
    claimed = session.scalars(
        update(Enrollment).where(Enrollment.id.in_(ids), _due_clause(now))
        .values(status=EnrollmentStatus.RUNNING, claimed_by=holder[:64], claimed_at=now)
        .returning(Enrollment.id).execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted(claimed)


# ---------------------------------------------------------------------------------------------------------------
# The tick
# ---------------------------------------------------------------------------------------------------------------
def run_due(*, session: Session, now: datetime, limit: int = 50_000, holder: str | None = None,
            scan_triggers: bool = True) -> TickReport:
    """Enroll triggered leads, apply exit goals, then advance up to ``limit`` due enrollments. Commits per chunk."""
    from core.workflows.triggers import apply_goals
    from core.workflows.triggers import scan_triggers as scan

    now = ensure_utc(now)
    holder = holder or f"tick-{uuid.uuid4().hex[:12]}"
    report = TickReport()
    if scan_triggers:
        report.enrolled = scan(session=session, now=now)
        report.goals = apply_goals(session=session, now=now)
        report.exited += report.goals
        session.commit()
    versions = _Versions(session)
    while report.claimed < limit:
        ids = claim_due(session=session, now=now, limit=min(CHUNK, limit - report.claimed), holder=holder)
        if not ids:
            break
        report.claimed += len(ids)
        try:
            _run_chunk(session, now, versions, report, ids)
        except Exception:  # noqa: BLE001 - one bad enrollment must not stall the others: go one by one
            session.rollback()
            for eid in ids:
                try:
                    _run_chunk(session, now, versions, report, [eid])
                except Exception as error:  # noqa: BLE001 - recorded on the enrollment, retried with backoff
                    session.rollback()
                    _crashed(session, eid, now, error, report)
                    session.commit()
    return report


def _run_chunk(session: Session, now: datetime, versions: _Versions, report: TickReport, ids: list[int]) -> None:
    """Run and commit one chunk; its counts join ``report`` only once it committed."""
    partial = TickReport()
    _Chunk(session, now, versions, partial).run(ids)
    session.commit()
    for name in ("steps", "messages", "waiting", "completed", "exited", "retrying", "failed"):
        setattr(report, name, getattr(report, name) + getattr(partial, name))
    report.errors.extend(partial.errors)


def _crashed(session: Session, eid: int, now: datetime, error: BaseException, report: TickReport) -> None:
    """An enrollment whose step raised something unexpected: back off like a failed step, fail after the last try."""
    row = session.execute(select(Enrollment.attempts, Enrollment.current_step).where(Enrollment.id == eid)).one()
    attempts = int(row.attempts) + 1
    reason = (error.localized("en") if isinstance(error, LeadLoopError) else f"{type(error).__name__}: {error}")[:500]
    give_up = attempts >= MAX_ATTEMPTS
    values: dict[str, Any] = {"attempts": attempts, "last_error": reason, "claimed_by": None, "claimed_at": None}
    if give_up:
        values.update(status=EnrollmentStatus.FAILED, next_run_at=None, finished_at=now)
        report.failed += 1
    else:
        values.update(status=EnrollmentStatus.ACTIVE,
                      next_run_at=now + timedelta(minutes=BACKOFF_MINUTES[min(attempts, len(BACKOFF_MINUTES)) - 1]))
        report.retrying += 1
    session.execute(update(Enrollment).where(Enrollment.id == eid, Enrollment.status == EnrollmentStatus.RUNNING)
                    .values(**values).execution_options(synchronize_session=False))
    session.execute(_insert(session)(StepRun.__table__).values(
        enrollment_id=eid, step_id=row.current_step or "start", step_type="error",
        status="failed" if give_up else "retry", idempotency_key=f"wf:{eid}:error:{int(now.timestamp())}:{attempts}",
        result={"attempt": attempts}, error=reason, at=now).on_conflict_do_nothing())
    report.errors.append(f"enrollment {eid}: {reason[:200]}")


class _Versions:
    """Definitions by (workflow, version), read once per tick."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cache: dict[tuple[int, int], dict[str, Any]] = {}

    def load(self, pairs: set[tuple[int, int]]) -> None:
        missing = {wf for wf, ver in pairs if (wf, ver) not in self.cache}
        if not missing:
            return
        for wf, ver, definition in self.session.execute(
            select(WorkflowVersion.workflow_id, WorkflowVersion.version, WorkflowVersion.definition)
            .where(WorkflowVersion.workflow_id.in_(missing))
        ).all():
            self.cache[(wf, ver)] = definition or {}
        # A workflow activated before versions were kept runs on its current definition.
        for wf, ver in pairs:
            if (wf, ver) not in self.cache:
                row = self.session.get(Workflow, wf)
                self.cache[(wf, ver)] = (row.definition if row else {}) or {}

    def get(self, wf: int, ver: int) -> dict[str, Any]:
        return self.cache.get((wf, ver), {})


class _Chunk:
    def __init__(self, session: Session, now: datetime, versions: _Versions, report: TickReport) -> None:
        self.session = session
        self.now = now
        self.versions = versions
        self.report = report
        self.final: dict[int, dict[str, Any]] = {}
        self.steprows: list[dict[str, Any]] = []

    # -- loading -------------------------------------------------------------------------------------------------
    def run(self, ids: list[int]) -> None:
        rows = self.session.execute(
            select(Enrollment.id, Enrollment.workflow_id, Enrollment.lead_id, Enrollment.workflow_version,
                   Enrollment.current_step, Enrollment.next_run_at, Enrollment.attempts, Enrollment.entered_at)
            .where(Enrollment.id.in_(ids))
        ).all()
        self.enr: dict[int, dict[str, Any]] = {int(r.id): r._asdict() for r in rows}
        self.versions.load({(int(r.workflow_id), int(r.workflow_version)) for r in rows})
        self.leads = self._leads(sorted({int(r.lead_id) for r in rows}))
        pending: dict[int, str] = {}
        waits_over: dict[tuple[str, str], dict[int, Outcome]] = defaultdict(dict)
        for r in rows:
            definition = self.versions.get(r.workflow_id, r.workflow_version)
            steps = definition.get("steps") or {}
            lead = self.leads.get(int(r.lead_id))
            if lead is None or lead["status"] != LeadStatus.VALID:
                self._finish(r.id, EnrollmentStatus.EXITED, r.current_step, reason="lead_not_valid")
            elif r.current_step is None:
                if definition.get("start") in steps:
                    pending[r.id] = definition["start"]
                else:
                    self._fail_now(r.id, r.current_step, "workflows.error.no_start")
            elif r.current_step not in steps:
                self._fail_now(r.id, r.current_step, "workflows.error.step_missing")
            elif steps[r.current_step].get("type") in WAITS:
                # Standing on a wait means the wait was entered and is now over; its StepRun is written now, so
                # entering a wait costs one row update and no insert.
                pending[r.id] = steps[r.current_step].get("next")
                waits_over[(r.current_step, steps[r.current_step]["type"])][r.id] = Outcome("done")
            else:
                pending[r.id] = r.current_step  # a retry of a step that failed
        for (step_id, kind), outcomes in waits_over.items():
            self._record(step_id, kind, outcomes,
                         {eid: step_key(eid, step_id, self.enr[eid]["next_run_at"]) for eid in outcomes})
        self._advance(pending)
        self._write()

    def _leads(self, lead_ids: list[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        columns = [getattr(Lead, name) for name in LEAD_FIELDS]
        for start in range(0, len(lead_ids), _ROWS):
            chunk = lead_ids[start : start + _ROWS]
            for row in self.session.execute(select(*columns).where(Lead.id.in_(chunk))).all():
                out[int(row.id)] = row._asdict()
        owners = {lead["owner_id"] for lead in out.values() if lead["owner_id"]}
        names = dict(self.session.execute(select(User.id, User.display_name).where(User.id.in_(owners))).all()) \
            if owners else {}
        for lead in out.values():
            lead["owner"] = names.get(lead["owner_id"], "")
        return out

    # -- walking ------------------------------------------------------------------------------------------------
    def _advance(self, pending: dict[int, str | None]) -> None:
        for _ in range(MAX_CHAIN):
            if not pending:
                return
            groups: dict[tuple[int, int, str], list[int]] = defaultdict(list)
            for eid, step_id in pending.items():
                row = self.enr[eid]
                definition = self.versions.get(int(row["workflow_id"]), int(row["workflow_version"]))
                if not step_id or step_id not in (definition.get("steps") or {}):
                    self._fail_now(eid, step_id, "workflows.error.step_missing")
                    continue
                groups[(int(row["workflow_id"]), int(row["workflow_version"]), step_id)].append(eid)
            pending = {}
            for (wf, ver, step_id), eids in groups.items():
                step = self.versions.get(wf, ver)["steps"][step_id]
                pending.update(self._execute(wf, step_id, step, eids))
        for eid, step_id in pending.items():
            self._fail_now(eid, step_id, "workflows.error.chain")

    def _execute(self, wf: int, step_id: str, step: dict[str, Any], eids: list[int]) -> dict[int, str]:
        """Run one step for a group of enrollments; returns where each goes next within this tick."""
        kind = step["type"]
        handler = HANDLERS[kind]
        keys = {eid: step_key(eid, step_id, self.enr[eid]["next_run_at"]) for eid in eids}
        try:
            outcomes, write = handler(self, wf, step_id, step, eids, keys)
        except (LeadLoopError, ValueError, KeyError, TypeError) as error:
            reason = error.localized("en") if isinstance(error, LeadLoopError) else f"{type(error).__name__}: {error}"
            for eid in eids:
                self._retry(eid, step_id, kind, keys[eid], reason)
            return {}
        # A wait being entered lives on the enrollment (current step, next_run_at); its StepRun is written when
        # it ends.
        fresh = self._record(step_id, kind, {e: o for e, o in outcomes.items() if o.status != "waiting"}, keys)
        if write is not None:
            done = {eid for eid in fresh if outcomes[eid].status == "done"}
            if done:
                write(done)
        self.report.steps += len(eids)
        nxt: dict[int, str] = {}
        for eid, outcome in outcomes.items():
            if outcome.end:
                self._finish(eid, EnrollmentStatus.COMPLETED, step_id)
            elif outcome.until is not None:
                self.final[eid] = {"status": EnrollmentStatus.ACTIVE, "current_step": step_id,
                                   "next_run_at": outcome.until, "attempts": 0, "last_error": None}
                self.report.waiting += 1
            elif outcome.go:
                nxt[eid] = outcome.go
        return nxt

    def _record(self, step_id: str, kind: str, outcomes: dict[int, Outcome], keys: dict[int, str]) -> set[int]:
        """Insert the StepRuns; returns the enrollments whose StepRun is new (the ones whose effects apply)."""
        rows = [{"enrollment_id": eid, "step_id": step_id, "step_type": kind, "status": o.status,
                 "idempotency_key": keys[eid], "result": o.result, "error": o.error, "at": self.now}
                for eid, o in outcomes.items()]
        # One cached statement executed for all rows (SQLAlchemy batches it as "insertmanyvalues"): only the rows
        # actually inserted come back.
        statement = (_insert(self.session)(StepRun.__table__)
                     .on_conflict_do_nothing(index_elements=["idempotency_key"])
                     .returning(StepRun.__table__.c.enrollment_id))
        if not rows:
            return set()
        return set(self.session.connection().execute(statement, rows).scalars())

    # -- endings ------------------------------------------------------------------------------------------------
    def _finish(self, eid: int, status: str, step_id: str | None, reason: str | None = None) -> None:
        self.final[eid] = {"status": status, "current_step": step_id, "next_run_at": None, "attempts": 0,
                           "last_error": reason, "finished_at": self.now}
        if status == EnrollmentStatus.COMPLETED:
            self.report.completed += 1
        else:
            self.report.exited += 1

    def _fail_now(self, eid: int, step_id: str | None, key: str) -> None:
        from core.i18n import t

        reason = t(key, "en", step=step_id or "")
        self.final[eid] = {"status": EnrollmentStatus.FAILED, "current_step": step_id, "next_run_at": None,
                           "attempts": int(self.enr[eid]["attempts"]) + 1, "last_error": reason,
                           "finished_at": self.now}
        self.report.failed += 1
        self.report.errors.append(f"enrollment {eid}: {reason}")

    def _retry(self, eid: int, step_id: str, kind: str, key: str, reason: str) -> None:
        attempts = int(self.enr[eid]["attempts"]) + 1
        give_up = attempts >= MAX_ATTEMPTS
        self.steprows.append({"enrollment_id": eid, "step_id": step_id, "step_type": kind,
                              "status": "failed" if give_up else "retry",
                              "idempotency_key": f"{key}:try{attempts}"[:128], "result": {"attempt": attempts},
                              "error": reason[:500], "at": self.now})
        if give_up:
            self.final[eid] = {"status": EnrollmentStatus.FAILED, "current_step": step_id, "next_run_at": None,
                               "attempts": attempts, "last_error": reason[:500], "finished_at": self.now}
            self.report.failed += 1
        else:
            wait = BACKOFF_MINUTES[min(attempts, len(BACKOFF_MINUTES)) - 1]
            self.final[eid] = {"status": EnrollmentStatus.ACTIVE, "current_step": step_id,
                               "next_run_at": self.now + timedelta(minutes=wait), "attempts": attempts,
                               "last_error": reason[:500]}
            self.report.retrying += 1
        self.report.errors.append(f"enrollment {eid} at {step_id}: {reason[:200]}")

    def _write(self) -> None:
        if self.steprows:
            statement = _insert(self.session)(StepRun.__table__).on_conflict_do_nothing(
                index_elements=["idempotency_key"])
            self.session.connection().execute(statement, self.steprows)
        # One executemany per shape of change (finished or not), keyed by id; ``status='running'`` keeps a
        # late worker whose claim was taken over from overwriting the newer state.
        table = Enrollment.__table__
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for eid, values in self.final.items():
            shapes[tuple(sorted(values))].append({"b_id": int(eid), **{f"b_{k}": v for k, v in values.items()}})
        from sqlalchemy import bindparam

        for shape, params in shapes.items():
            statement = (update(table)
                         .where(table.c.id == bindparam("b_id"), table.c.status == EnrollmentStatus.RUNNING)
                         .values(**{k: bindparam(f"b_{k}") for k in shape}, claimed_by=None, claimed_at=None))
            self.session.connection().execute(statement, params)

    # -- helpers for handlers ------------------------------------------------------------------------------------
    def lead_of(self, eid: int) -> dict[str, Any]:
        return self.leads[int(self.enr[eid]["lead_id"])]

    def frame(self, eids: list[int]) -> pd.DataFrame:
        return pd.DataFrame([{k: self.enr[eid][k] for k in ("id", "lead_id", "entered_at")} for eid in eids],
                            columns=["id", "lead_id", "entered_at"])


# ---------------------------------------------------------------------------------------------------------------
# Merge fields
# ---------------------------------------------------------------------------------------------------------------
class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return ""


def merge_values(lead: dict[str, Any], extra: dict[str, Any] | None = None) -> _Fields:
    values = _Fields({k: ("" if lead.get(k) is None else lead.get(k)) for k in MERGE_FIELDS})
    values.update(extra or {})
    return values


def render(text: str, lead: dict[str, Any] | _Fields, extra: dict[str, Any] | None = None) -> str:
    """Fill ``{name}``, ``{company}``… from the lead; unknown fields become empty, braces typed by mistake fail."""
    values = lead if isinstance(lead, _Fields) else merge_values(lead, extra)
    try:
        return (text or "").format_map(values)
    except (ValueError, IndexError, AttributeError, KeyError, TypeError) as error:
        raise ValidationError(f"A merge field in the text cannot be filled: {error}.",
                              key="workflows.error.merge_field", detail=str(error)) from error




# ---------------------------------------------------------------------------------------------------------------
# Step handlers: (chunk, workflow id, step id, step, enrollment ids, keys) -> (outcomes, write(fresh ids))
# ---------------------------------------------------------------------------------------------------------------
Handler = Callable[[_Chunk, int, str, dict[str, Any], list[int], dict[int, str]],
                   tuple[dict[int, Outcome], Callable[[set[int]], None] | None]]

_ADDRESS = {"send_email": ("email", "email"), "send_sms": ("sms", "phone"), "send_wechat": ("wechat", "wechat_id"),
            "send_wecom": ("wecom", None)}


def _send(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
          keys: dict[int, str]) -> tuple[dict[int, Outcome], Callable[[set[int]], None] | None]:
    channel, address_field = _ADDRESS[step["type"]]
    settings = get_setting(chunk.session, "workflows") if channel == "email" else {}
    footer = str(settings.get("unsubscribe_text") or "") if channel == "email" else ""
    # Links signed with this installation's secret (core.unsubscribe), honoured on the login page without a login.
    secret = signing_secret(chunk.session) if channel == "email" else ""
    outcomes: dict[int, Outcome] = {}
    messages: dict[int, dict[str, Any]] = {}
    for eid in eids:
        lead = chunk.lead_of(eid)
        address = str(lead.get(address_field) or "") if address_field else str(lead.get("wechat_id") or "")
        if address_field and not address:
            outcomes[eid] = Outcome("skipped", go=step.get("next"), result={"reason": f"no_{address_field}"})
            continue
        if lead.get("unsubscribed") and channel in ("email", "sms", "wechat"):
            outcomes[eid] = Outcome("skipped", go=step.get("next"), result={"reason": "unsubscribed"})
            continue
        extra: dict[str, Any] = {}
        payload: dict[str, Any] = {"workflow_id": wf, "step": step_id}
        if channel == "email":
            extra["unsubscribe_url"] = payload["unsubscribe_url"] = unsubscribe_url(
                str(settings.get("base_url") or ""), secret, int(lead["id"]))
        values = merge_values(lead, extra)
        body = render(step.get("body") or step.get("text") or "", values)
        if channel == "email" and footer:
            body = f"{body}\n\n--\n{footer} {extra['unsubscribe_url']}"
        messages[eid] = {
            "channel": channel, "idempotency_key": f"{keys[eid]}:msg", "to_address": address,
            "subject": render(step.get("subject") or "", values), "body": body, "payload": payload,
            "lead_id": int(lead["id"]), "user_id": None, "enrollment_id": eid, "status": MessageStatus.QUEUED,
            "attempts": 0, "next_attempt_at": chunk.now, "created_at": chunk.now,
        }
        outcomes[eid] = Outcome("done", go=step.get("next"), result={"message": messages[eid]["idempotency_key"]})

    def write(fresh: set[int]) -> None:
        chunk.report.messages += _enqueue(chunk.session, [messages[eid] for eid in sorted(fresh) if eid in messages])

    return outcomes, write


def _enqueue(session: Session, rows: list[dict[str, Any]]) -> int:
    from core.routing.notify import enqueue_many

    return enqueue_many(session, rows)


def _named(session: Session, model: Any, name: str) -> int:
    """The id of the tag or group called ``name``, created when missing (a workflow may name a new one)."""
    found = session.scalar(select(model.id).where(model.name == name))
    if found is None:
        session.execute(_insert(session)(model.__table__).values(name=name).on_conflict_do_nothing())
        found = session.scalar(select(model.id).where(model.name == name))
    return int(found)


def _lead_ids(chunk: _Chunk, eids: set[int]) -> list[int]:
    return sorted({int(chunk.enr[eid]["lead_id"]) for eid in eids})


def _simple(step: dict[str, Any], eids: list[int]) -> dict[int, Outcome]:
    return {eid: Outcome("done", go=step.get("next")) for eid in eids}


def _tag(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
         keys: dict[int, str]) -> tuple[dict[int, Outcome], Callable[[set[int]], None]]:
    def write(fresh: set[int]) -> None:
        tag_id = _named(chunk.session, Tag, str(step["tag"]))
        leads = _lead_ids(chunk, fresh)
        if step["type"] == "add_tag":
            rows = [{"lead_id": lead, "tag_id": tag_id, "source": "workflow", "created_at": chunk.now}
                    for lead in leads]
            chunk.session.connection().execute(
                _insert(chunk.session)(LeadTag.__table__).on_conflict_do_nothing(), rows)
        else:
            for start in range(0, len(leads), _ROWS):
                chunk.session.execute(delete(LeadTag).where(LeadTag.tag_id == tag_id,
                                                            LeadTag.lead_id.in_(leads[start : start + _ROWS])))

    return _simple(step, eids), write


def _group_rows(session: Session, group: str, leads: list[int], now: datetime, add: bool) -> None:
    group_id = _named(session, Group, group)
    if add:
        rows = [{"group_id": group_id, "lead_id": lead, "source": "workflow", "added_at": now} for lead in leads]
        session.connection().execute(_insert(session)(GroupMember.__table__).on_conflict_do_nothing(), rows)
    else:
        for start in range(0, len(leads), _ROWS):
            session.execute(delete(GroupMember).where(GroupMember.group_id == group_id,
                                                      GroupMember.lead_id.in_(leads[start : start + _ROWS])))


def _group(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
           keys: dict[int, str]) -> tuple[dict[int, Outcome], Callable[[set[int]], None]]:
    def write(fresh: set[int]) -> None:
        leads = _lead_ids(chunk, fresh)
        if step["type"] == "move_group":
            _group_rows(chunk.session, str(step["from"]), leads, chunk.now, add=False)
            _group_rows(chunk.session, str(step["to"]), leads, chunk.now, add=True)
        else:
            _group_rows(chunk.session, str(step["group"]), leads, chunk.now, add=step["type"] == "add_group")

    return _simple(step, eids), write


def _stage(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
           keys: dict[int, str]) -> tuple[dict[int, Outcome], Callable[[set[int]], None]]:
    from core.lifecycle import change_stages

    def write(fresh: set[int]) -> None:
        # Leads for which the move is not allowed (e.g. already won) stay where they are.
        change_stages(session=chunk.session, lead_ids=_lead_ids(chunk, fresh), to_stage=str(step["stage"]),
                      now=chunk.now, by_rule=f"workflow:{wf}", reason=step_id)

    return _simple(step, eids), write


def _score(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
           keys: dict[int, str]) -> tuple[dict[int, Outcome], Callable[[set[int]], None]]:
    points = float(step["points"])
    component = "fit" if step.get("component") == "fit" else "engagement"

    def write(fresh: set[int]) -> None:
        leads = _lead_ids(chunk, fresh)
        chunk.session.connection().execute(insert(ScoreEvent.__table__), [
            {"lead_id": lead, "component": component, "points": points, "kind": "manual",
             "reason": f"workflow {wf} · {step_id}", "occurred_at": chunk.now, "created_at": chunk.now}
            for lead in leads])
        column = Lead.fit_score if component == "fit" else Lead.engagement_score
        for start in range(0, len(leads), _ROWS):
            chunk.session.execute(update(Lead).where(Lead.id.in_(leads[start : start + _ROWS]))
                                  .values({column: column + points, Lead.updated_at: chunk.now})
                                  .execution_options(synchronize_session=False))

    return _simple(step, eids), write


def _assign(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
            keys: dict[int, str]) -> tuple[dict[int, Outcome], Callable[[set[int]], None]]:
    from core.routing.engine import route_leads

    def write(fresh: set[int]) -> None:
        leads = _lead_ids(chunk, fresh)
        # A lead already waiting for a rep keeps that assignment.
        busy = set(chunk.session.scalars(select(Assignment.lead_id).where(
            Assignment.lead_id.in_(leads), Assignment.status == AssignmentStatus.PENDING)))
        todo = [lead for lead in leads if lead not in busy]
        rep = step.get("rep_id")
        preferred = {lead: int(rep) for lead in todo} if rep else None
        route_leads(session=chunk.session, lead_ids=todo, now=chunk.now, preferred=preferred)

    return _simple(step, eids), write


def _notify(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
            keys: dict[int, str]) -> tuple[dict[int, Outcome], Callable[[set[int]], None]]:
    target = step.get("to") or "owner"
    outcomes: dict[int, Outcome] = {}
    rows: dict[int, dict[str, Any]] = {}
    for eid in eids:
        lead = chunk.lead_of(eid)
        user_id = lead.get("owner_id") if target == "owner" else int(target)
        if not user_id:
            outcomes[eid] = Outcome("skipped", go=step.get("next"), result={"reason": "no_owner"})
            continue
        label = " · ".join(str(lead[k]) for k in ("name", "company") if lead.get(k)) or f"#{lead['id']}"
        rows[eid] = {"channel": "notify", "idempotency_key": f"{keys[eid]}:msg", "to_address": "",
                     "subject": label, "body": render(str(step["text"]), lead), "payload": {"workflow_id": wf,
                                                                                          "step": step_id},
                     "lead_id": int(lead["id"]), "user_id": int(user_id), "enrollment_id": eid,
                     "status": MessageStatus.QUEUED, "attempts": 0, "next_attempt_at": chunk.now,
                     "created_at": chunk.now}
        outcomes[eid] = Outcome("done", go=step.get("next"), result={"user_id": int(user_id)})

    def write(fresh: set[int]) -> None:
        chunk.report.messages += _enqueue(chunk.session, [rows[eid] for eid in sorted(fresh) if eid in rows])

    return outcomes, write


def _webhook(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
             keys: dict[int, str]) -> tuple[dict[int, Outcome], Callable[[set[int]], None]]:
    rows: dict[int, dict[str, Any]] = {}
    for eid in eids:
        lead = chunk.lead_of(eid)
        public = {k: lead.get(k) for k in ("id", "name", "email", "phone", "company", "title", "stage")}
        rows[eid] = {"channel": "webhook", "idempotency_key": f"{keys[eid]}:msg", "to_address": str(step["url"]),
                     "subject": "", "body": render(str(step.get("body") or ""), lead),
                     "payload": {"workflow_id": wf, "step": step_id, "lead": public}, "lead_id": int(lead["id"]),
                     "user_id": None, "enrollment_id": eid, "status": MessageStatus.QUEUED, "attempts": 0,
                     "next_attempt_at": chunk.now, "created_at": chunk.now}

    def write(fresh: set[int]) -> None:
        chunk.report.messages += _enqueue(chunk.session, [rows[eid] for eid in sorted(fresh)])

    return {eid: Outcome("done", go=step.get("next"), result={"message": rows[eid]["idempotency_key"]})
            for eid in eids}, write


def window_start(now: datetime, start_hour: int, end_hour: int, weekdays: list[int]) -> datetime:
    """``now`` when it falls inside the sending window (team time zone), else the next opening."""
    local = ensure_utc(now).astimezone(TEAM_TIMEZONE)
    for day in range(0, 15):
        candidate = (local + timedelta(days=day)).replace(hour=0, minute=0, second=0, microsecond=0)
        if candidate.weekday() not in weekdays:
            continue
        opens = candidate.replace(hour=start_hour)
        closes = candidate + timedelta(hours=end_hour)
        if day == 0 and opens <= local < closes:
            return ensure_utc(now)
        if opens > local:
            return ensure_utc(opens)
    return ensure_utc(now)


def _wait(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
          keys: dict[int, str]) -> tuple[dict[int, Outcome], None]:
    kind = step["type"]
    if kind == "wait":
        until = chunk.now + timedelta(seconds=wait_seconds(step))
    elif kind == "wait_until":
        until = ensure_utc(datetime.fromisoformat(str(step["at"])))
    else:
        until = window_start(chunk.now, int(step.get("start_hour", 9)), int(step.get("end_hour", 18)),
                             [int(d) for d in step.get("weekdays", [0, 1, 2, 3, 4])])
    if until <= chunk.now:
        return {eid: Outcome("done", go=step.get("next")) for eid in eids}, None
    return {eid: Outcome("waiting", until=until, result={"until": until.isoformat()}) for eid in eids}, None


def _condition(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
               keys: dict[int, str]) -> tuple[dict[int, Outcome], None]:
    yes = matching(chunk.session, step["check"], chunk.frame(eids), now=chunk.now)
    return {eid: Outcome("branched", go=step["yes"] if eid in yes else step["no"],
                         result={"branch": "yes" if eid in yes else "no"}) for eid in eids}, None


def split_side(enrollment_id: int, step_id: str, percent: float) -> str:
    """A or B, the same every time for one enrollment (a retry or a rerun never flips it)."""
    bucket = int(hashlib.sha256(f"{enrollment_id}:{step_id}".encode()).hexdigest()[:8], 16) % 10_000
    return "a" if bucket < percent * 100 else "b"


def _split(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
           keys: dict[int, str]) -> tuple[dict[int, Outcome], None]:
    percent = float(step.get("percent", 50))
    outcomes = {}
    for eid in eids:
        side = split_side(eid, step_id, percent)
        outcomes[eid] = Outcome("branched", go=step[side], result={"branch": side})
    return outcomes, None


def _end(chunk: _Chunk, wf: int, step_id: str, step: dict[str, Any], eids: list[int],
         keys: dict[int, str]) -> tuple[dict[int, Outcome], None]:
    return {eid: Outcome("done", end=True) for eid in eids}, None


HANDLERS: dict[str, Handler] = {
    "send_email": _send, "send_sms": _send, "send_wechat": _send, "send_wecom": _send,
    "add_tag": _tag, "remove_tag": _tag, "add_group": _group, "remove_group": _group, "move_group": _group,
    "change_stage": _stage, "adjust_score": _score, "assign": _assign, "notify": _notify, "webhook": _webhook,
    "wait": _wait, "wait_until": _wait, "wait_window": _wait, "condition": _condition, "split": _split,
    "end": _end,
}
