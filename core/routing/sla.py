"""The SLA clock on every pending MQL: a reminder before it runs out, escalation to the manager after.

``check_sla(session=…, now=…)`` is the scheduler's heartbeat job for the handoff. Each run, in one
transaction (the caller commits):

1. **Reminders**: pending assignments with at most ``remind_before_hours`` *working* hours left and no
   reminder yet → the rep gets an in-app note and an email; the sales group robots (WeCom / DingTalk / Feishu)
   get one digest.
2. **Escalations**: pending assignments past their due time and not escalated yet → marked ``breached``; the
   rep's manager gets an in-app note and an email, the robots a digest, the rep an "overdue" note.
3. "Not now" leads whose date has come return to their rep (``core.lifecycle.return_due``).
4. MQLs no rep could take (everyone full or away) are routed again.
5. CRM webhook outcomes are copied onto the assignments.
6. Reps hear what their leads just did (``core.routing.alerts.alert_reps``).

Each reminder and escalation is claimed with ``UPDATE … WHERE reminded_at IS NULL … RETURNING id``, so two
scheduler processes never send the same one twice; messages carry idempotency keys as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select, update
from sqlmodel import Session

from core.i18n import DEFAULT_LANGUAGE, t
from core.lifecycle import return_due
from core.routing import notify
from core.routing.alerts import alert_reps
from core.routing.crm import sync_crm_status
from core.routing.engine import calendar_text, route_leads, sla_calendar
from core.settings import get_setting
from db.models import Assignment, AssignmentStatus, Lead, LeadStatus, Stage, User


@dataclass
class SlaReport:
    reminded: list[int] = field(default_factory=list)  # assignment ids
    escalated: list[int] = field(default_factory=list)
    returned: list[int] = field(default_factory=list)  # "not now" leads back as MQLs
    rerouted: int = 0
    still_unrouted: int = 0
    crm_synced: int = 0
    alerts: int = 0
    messages: int = 0

    def summary(self) -> dict[str, Any]:
        """Counts for the scheduler's JobRun row."""
        return {"reminded": len(self.reminded), "escalated": len(self.escalated), "returned": len(self.returned),
                "rerouted": self.rerouted, "still_unrouted": self.still_unrouted, "crm_synced": self.crm_synced,
                "alerts": self.alerts, "messages": self.messages}


def _pending(session: Session) -> pd.DataFrame:
    rows = session.execute(
        select(Assignment.id, Assignment.lead_id, Assignment.rep_id, Assignment.sla_due_at, Assignment.reminded_at,
               Assignment.escalated_at, Lead.name, Lead.company, User.display_name.label("rep"),
               User.manager_id)
        .join(Lead, Lead.id == Assignment.lead_id)
        .join(User, User.id == Assignment.rep_id)
        .where(Assignment.status == AssignmentStatus.PENDING, Assignment.sla_due_at.is_not(None),
               Assignment.escalated_at.is_(None))
    ).all()
    return pd.DataFrame([r._asdict() for r in rows],
                        columns=["id", "lead_id", "rep_id", "sla_due_at", "reminded_at", "escalated_at", "name",
                                 "company", "rep", "manager_id"])


def _claim(session: Session, ids: list[int], column: str, now: datetime, **extra: Any) -> list[int]:
    """Set ``column`` = now on the rows still without it; returns the ids this run won."""
    if not ids:
        return []
    table = Assignment.__table__
    won: list[int] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        won += list(session.execute(
            update(table)
            .where(table.c.id.in_(chunk), table.c[column].is_(None), table.c.status == AssignmentStatus.PENDING)
            .values({column: now, **extra})
            .returning(table.c.id)
        ).scalars().all())
    return sorted(won)


def _robots(session: Session, *, kind: str, rows: pd.DataFrame, now: datetime, calendar: Any) -> list[dict[str, Any]]:
    """One digest per group robot per run (the team's language)."""
    if rows.empty:
        return []
    lines = [
        t(f"routing.msg.robot_line_{kind}", DEFAULT_LANGUAGE, lead=notify.lead_label(r.name, r.company), rep=r.rep,
          due=calendar_text(r.sla_due_at, calendar))
        for r in rows.head(30).itertuples(index=False)
    ]
    subject = t(f"routing.msg.robot_{kind}", DEFAULT_LANGUAGE, n=len(rows))
    body = "\n".join(lines) + ("\n…" if len(rows) > 30 else "")
    ids = ",".join(str(i) for i in sorted(rows["id"].astype(int)))
    return [
        notify.message(channel=channel, key=f"sla-{kind}-{channel}:{_digest(ids)}", now=now, subject=subject,
                       body=body, payload={"url": url, "kind": f"sla_{kind}"})
        for channel, url in notify.robot_targets(session)
    ]


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _reminders(session: Session, rows: pd.DataFrame, *, now: datetime, calendar: Any) -> list[dict[str, Any]]:
    people = notify.people(session, rows["rep_id"].astype(int).tolist())
    email = notify.email_enabled(session)
    messages: list[dict[str, Any]] = []
    hours_left: dict[Any, float] = {}
    for r in rows.itertuples(index=False):
        person = people.get(int(r.rep_id))
        who = notify.lead_label(r.name, r.company)
        if r.sla_due_at not in hours_left:
            hours_left[r.sla_due_at] = round(calendar.between(now, r.sla_due_at), 1)
        left = hours_left[r.sla_due_at]
        subject = notify.tr(person, "routing.msg.remind_subject", lead=who)
        body = notify.tr(person, "routing.msg.remind_body", lead=who, hours=left,
                         due=calendar_text(r.sla_due_at, calendar))
        messages.append(notify.message(channel="notify", key=f"sla-remind:{r.id}", now=now, user_id=int(r.rep_id),
                                       lead_id=int(r.lead_id), subject=subject, body=body,
                                       payload={"kind": "sla_reminder", "assignment_id": int(r.id)}))
        if email and person is not None and person.email:
            messages.append(notify.message(channel="email", key=f"sla-remind-email:{r.id}", now=now,
                                           to_address=person.email, user_id=person.id, lead_id=int(r.lead_id),
                                           subject=subject, body=body))
    return messages + _robots(session, kind="remind", rows=rows, now=now, calendar=calendar)


def _escalations(session: Session, rows: pd.DataFrame, *, now: datetime, calendar: Any) -> list[dict[str, Any]]:
    managers = rows["manager_id"].dropna().astype(int).tolist()
    people = notify.people(session, rows["rep_id"].astype(int).tolist() + managers)
    email = notify.email_enabled(session)
    messages: list[dict[str, Any]] = []
    for r in rows.itertuples(index=False):
        rep = people.get(int(r.rep_id))
        who = notify.lead_label(r.name, r.company)
        due = calendar_text(r.sla_due_at, calendar)
        messages.append(notify.message(
            channel="notify", key=f"sla-overdue:{r.id}", now=now, user_id=int(r.rep_id), lead_id=int(r.lead_id),
            subject=notify.tr(rep, "routing.msg.overdue_subject", lead=who),
            body=notify.tr(rep, "routing.msg.overdue_body", lead=who, due=due),
            payload={"kind": "sla_overdue", "assignment_id": int(r.id)}))
        manager_id = r.manager_id
        if manager_id is None or pd.isna(manager_id):
            continue
        manager = people.get(int(manager_id))
        subject = notify.tr(manager, "routing.msg.escalate_subject", lead=who, rep=r.rep)
        body = notify.tr(manager, "routing.msg.escalate_body", lead=who, rep=r.rep, due=due)
        messages.append(notify.message(
            channel="notify", key=f"sla-escalate:{r.id}", now=now, user_id=int(manager_id), lead_id=int(r.lead_id),
            subject=subject, body=body, payload={"kind": "sla_escalation", "assignment_id": int(r.id)}))
        if email and manager is not None and manager.email:
            messages.append(notify.message(channel="email", key=f"sla-escalate-email:{r.id}", now=now,
                                           to_address=manager.email, user_id=manager.id, lead_id=int(r.lead_id),
                                           subject=subject, body=body))
    return messages + _robots(session, kind="escalate", rows=rows, now=now, calendar=calendar)


def route_waiting(*, session: Session, now: datetime) -> tuple[int, int]:
    """Route again the MQLs no rep could take before (capacity freed, someone back from leave).

    Returns (routed, still waiting)."""
    pending = select(Assignment.id).where(Assignment.lead_id == Lead.id,
                                          Assignment.status == AssignmentStatus.PENDING).exists()
    ids = session.execute(
        select(Lead.id).where(Lead.stage == Stage.MQL, Lead.status == LeadStatus.VALID, Lead.owner_id.is_(None),
                              Lead.followup_owner_id.is_(None), ~pending)
        .order_by(Lead.stage_changed_at.asc().nulls_last(), Lead.id).limit(5000)
    ).scalars().all()
    if not ids:
        return 0, 0
    outcome = route_leads(session=session, lead_ids=ids, now=now)
    return outcome.routed, len(outcome.unrouted)


def check_sla(*, session: Session, now: datetime) -> SlaReport:
    """The handoff's heartbeat (see the module docstring). Set-based; the caller commits."""
    report = SlaReport()
    calendar, _ = sla_calendar(session)
    remind_before = float(get_setting(session, "sla").get("remind_before_hours", 2) or 0)
    frame = _pending(session)
    messages: list[dict[str, Any]] = []
    if not frame.empty:
        due = pd.to_datetime(frame["sla_due_at"], utc=True)
        overdue = due <= pd.Timestamp(now)
        escalate = frame[overdue]
        report.escalated = _claim(session, escalate["id"].astype(int).tolist(), "escalated_at", now, breached=True)
        won = frame[frame["id"].isin(report.escalated)]
        if not won.empty:
            messages += _escalations(session, won, now=now, calendar=calendar)
        if remind_before > 0:
            upcoming = frame[~overdue & frame["reminded_at"].isna()]
            # When to remind: ``remind_before`` working hours before the due time. Assignments routed together
            # share a due time, so each distinct one is computed once.
            remind_at = {due: calendar.subtract(due, remind_before) for due in set(upcoming["sla_due_at"])}
            due_soon = pd.Series([remind_at[due] <= now for due in upcoming["sla_due_at"]], index=upcoming.index,
                                 dtype=bool)
            remind = upcoming[due_soon]
            report.reminded = _claim(session, remind["id"].astype(int).tolist(), "reminded_at", now)
            won = frame[frame["id"].isin(report.reminded)]
            if not won.empty:
                messages += _reminders(session, won, now=now, calendar=calendar)
    report.messages = notify.enqueue_many(session, messages)
    report.returned = return_due(session=session, now=now).returned
    report.rerouted, report.still_unrouted = route_waiting(session=session, now=now)
    report.crm_synced = sync_crm_status(session=session)
    report.alerts = alert_reps(session=session, now=now).notes
    return report
