"""Tell reps when their leads do something that matters: a pricing-page visit, a webinar attended, a demo
request, a jump in engagement score.

``alert_reps(session=…, now=…)`` is a heartbeat job (``check_sla`` runs it too). It looks at what arrived in
the last ``alert_lookback_hours`` (setting "handoff") for leads a rep owns while sales holds them (MQL, SAL,
SQL, opportunity): touchpoints of the ``alert_kinds`` and engagement points summing to at least
``score_jump``. One in-app note per event (idempotency key per touchpoint, and per lead and day for score
jumps, so overlapping windows never repeat one) and, when SMTP is set up, one email per rep per run.
Two statements for the whole team, whatever the number of leads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core.clock import to_local
from core.routing import notify
from core.settings import get_setting
from db.models import Lead, LeadStatus, Message, ScoreEvent, Stage, Touchpoint

WATCHED_STAGES = (Stage.MQL, Stage.SAL, Stage.SQL, Stage.OPPORTUNITY)
# Activity that happened long before it was imported (a backfilled file) is history, not news.
MAX_EVENT_AGE = timedelta(days=7)


@dataclass
class AlertReport:
    events: int = 0  # touchpoints and score jumps found
    notes: int = 0  # new in-app notes (repeats are not counted)
    emails: int = 0


def _touchpoints(session: Session, kinds: list[str], since: datetime, now: datetime) -> pd.DataFrame:
    rows = session.execute(
        select(Touchpoint.id, Touchpoint.lead_id, Touchpoint.kind, Touchpoint.occurred_at, Lead.owner_id,
               Lead.name, Lead.company)
        .join(Lead, Lead.id == Touchpoint.lead_id)
        .where(Touchpoint.kind.in_(kinds), Touchpoint.created_at > since, Touchpoint.created_at <= now,
               Touchpoint.occurred_at > now - MAX_EVENT_AGE, Lead.owner_id.is_not(None),
               Lead.stage.in_(WATCHED_STAGES), Lead.status == LeadStatus.VALID)
        .order_by(Touchpoint.occurred_at)
    ).all()
    return pd.DataFrame([r._asdict() for r in rows],
                        columns=["id", "lead_id", "kind", "occurred_at", "owner_id", "name", "company"])


def _score_jumps(session: Session, jump: float, since: datetime, now: datetime) -> pd.DataFrame:
    gained = (
        select(ScoreEvent.lead_id, func.sum(ScoreEvent.points).label("points"))
        .where(ScoreEvent.component == "engagement", ScoreEvent.created_at > since, ScoreEvent.created_at <= now)
        .group_by(ScoreEvent.lead_id)
        .having(func.sum(ScoreEvent.points) >= jump)
        .subquery()
    )
    rows = session.execute(
        select(Lead.id.label("lead_id"), gained.c.points, Lead.engagement_score, Lead.owner_id, Lead.name,
               Lead.company)
        .join(gained, gained.c.lead_id == Lead.id)
        .where(Lead.owner_id.is_not(None), Lead.stage.in_(WATCHED_STAGES), Lead.status == LeadStatus.VALID)
    ).all()
    return pd.DataFrame([r._asdict() for r in rows],
                        columns=["lead_id", "points", "engagement_score", "owner_id", "name", "company"])


def alert_reps(*, session: Session, now: datetime) -> AlertReport:
    """Queue the notes for what reps' leads did since the last look (see the module docstring)."""
    settings = get_setting(session, "handoff")
    kinds = [str(k) for k in settings.get("alert_kinds") or []]
    jump = float(settings.get("score_jump") or 0)
    since = now - timedelta(hours=float(settings.get("alert_lookback_hours") or 24))
    touches = _touchpoints(session, kinds, since, now) if kinds else pd.DataFrame()
    jumps = _score_jumps(session, jump, since, now) if jump > 0 else pd.DataFrame()
    report = AlertReport(events=len(touches) + len(jumps))
    if not report.events:
        return report
    owners = set(touches.get("owner_id", pd.Series(dtype=int)).astype(int)) | set(
        jumps.get("owner_id", pd.Series(dtype=int)).astype(int))
    people = notify.people(session, owners)
    day = to_local(now).date().isoformat()  # type: ignore[union-attr]
    notes: list[dict[str, Any]] = []
    for r in touches.itertuples(index=False):
        person = people.get(int(r.owner_id))
        who = notify.lead_label(r.name, r.company)
        what = notify.tr(person, f"touchpoint.{r.kind}")
        notes.append(notify.message(
            channel="notify", key=f"alert:tp:{r.id}", now=now, user_id=int(r.owner_id), lead_id=int(r.lead_id),
            subject=notify.tr(person, "routing.msg.alert_subject", lead=who, what=what),
            body=notify.tr(person, "routing.msg.alert_touch_body", lead=who, what=what,
                           at=pd.Timestamp(to_local(r.occurred_at)).strftime("%m-%d %H:%M")),
            payload={"kind": "lead_alert", "event": r.kind, "touchpoint_id": int(r.id)}))
    for r in jumps.itertuples(index=False):
        person = people.get(int(r.owner_id))
        who = notify.lead_label(r.name, r.company)
        what = notify.tr(person, "routing.msg.alert_score_what", points=int(round(r.points)))
        notes.append(notify.message(
            channel="notify", key=f"alert:score:{r.lead_id}:{day}", now=now, user_id=int(r.owner_id),
            lead_id=int(r.lead_id), subject=notify.tr(person, "routing.msg.alert_subject", lead=who, what=what),
            body=notify.tr(person, "routing.msg.alert_score_body", lead=who, points=int(round(r.points)),
                           score=int(round(r.engagement_score or 0))),
            payload={"kind": "lead_alert", "event": "score_jump", "points": float(r.points)}))
    new_notes = _new_only(session, notes)
    report.notes = len(new_notes)
    emails: list[dict[str, Any]] = []
    if new_notes and notify.email_enabled(session):
        by_owner: dict[int, list[dict[str, Any]]] = {}
        for note in new_notes:
            by_owner.setdefault(int(note["user_id"]), []).append(note)
        for owner, items in by_owner.items():
            person = people.get(owner)
            if person is None or not person.email:
                continue
            keys = ",".join(sorted(n["idempotency_key"] for n in items))
            emails.append(notify.message(
                channel="email", key=f"alert-email:{owner}:{hashlib.sha256(keys.encode()).hexdigest()[:24]}",
                now=now, to_address=person.email, user_id=owner,
                subject=notify.tr(person, "routing.msg.alert_email_subject", n=len(items)),
                body="\n".join(f"- {n['body']}" for n in items)))
    report.emails = len(emails)
    notify.enqueue_many(session, new_notes + emails)
    return report


def _new_only(session: Session, notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The notes not queued by an earlier run (so the email lists only news)."""
    keys = [n["idempotency_key"] for n in notes]
    known: set[str] = set()
    for start in range(0, len(keys), 500):
        known |= set(session.execute(
            select(Message.idempotency_key).where(Message.idempotency_key.in_(keys[start : start + 500]))
        ).scalars().all())
    return [n for n in notes if n["idempotency_key"] not in known]
