"""MQL routing and the sales inbox: who gets which MQL, and the SLA clock on each assignment."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from core.auth import Actor, assignment_scope, require
from db.models import Assignment, AssignmentStatus, Channel, Lead, User

INBOX_COLUMNS = ["assignment_id", "lead_id", "name", "company", "title", "phone", "email", "grade",
                 "fit_score", "engagement_score", "channel", "rep", "routed_by", "status", "assigned_at",
                 "sla_due_at", "sla_hours_left", "breached", "version"]


def inbox(
    *, session: Session, actor: Actor, now: datetime, status: str | None = AssignmentStatus.PENDING,
    limit: int = 100, offset: int = 0,
) -> pd.DataFrame:
    """The MQLs routed to ``actor`` (a manager: their team; admin: everyone), most urgent first."""
    require(actor, "inbox")
    statement = (
        select(Assignment.id.label("assignment_id"), Lead.id.label("lead_id"), Lead.name, Lead.company,
               Lead.title, Lead.phone, Lead.email, Lead.grade, Lead.fit_score, Lead.engagement_score,
               Channel.name.label("channel"), User.display_name.label("rep"), Assignment.routed_by,
               Assignment.status, Assignment.assigned_at, Assignment.sla_due_at, Assignment.breached,
               Lead.version)
        .join(Lead, Lead.id == Assignment.lead_id)
        .join(User, User.id == Assignment.rep_id)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .where(assignment_scope(actor))
        .order_by(Assignment.sla_due_at.asc().nulls_last(), Assignment.assigned_at.desc())
        .limit(limit)
        .offset(offset)
    )
    if status:
        statement = statement.where(Assignment.status == status)
    frame = pd.DataFrame([r._asdict() for r in session.execute(statement).all()])
    if frame.empty:
        return pd.DataFrame(columns=INBOX_COLUMNS)
    due = pd.to_datetime(frame["sla_due_at"], utc=True)
    frame["sla_hours_left"] = ((due - pd.Timestamp(now)).dt.total_seconds() / 3600).round(1)
    return frame[INBOX_COLUMNS]
