"""Today's figures for the home page: a handful of aggregate queries, each one statement."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core.auth import Actor, assignment_scope, lead_scope
from core.clock import TEAM_TIMEZONE, ensure_utc
from core.importer import list_batches
from db.models import (
    Assignment,
    AssignmentStatus,
    JobRun,
    Lead,
    LeadStatus,
    SchedulerLease,
)

SCHEDULER_LEASE = "scheduler"


@dataclass
class SchedulerStatus:
    leader: str | None
    lease_expires_at: datetime | None
    alive: bool
    last_runs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HomeFigures:
    new_leads_today: int
    new_leads_7d: int
    mqls_waiting: int
    sla_breaches: int
    leads_total: int
    invalid_total: int
    recent_imports: pd.DataFrame
    scheduler: SchedulerStatus


def start_of_local_day(now: datetime) -> datetime:
    """Midnight of ``now``'s day in the team's time zone, as aware UTC ("today" means the team's today)."""
    local = ensure_utc(now).astimezone(TEAM_TIMEZONE)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(ensure_utc(now).tzinfo)


def home_figures(*, session: Session, actor: Actor, now: datetime) -> HomeFigures:
    """The home page's figures, limited to what ``actor`` may see (a rep sees their own MQLs)."""
    today = start_of_local_day(now)
    visible = lead_scope(actor)
    lead_counts = session.execute(
        select(
            func.count().filter(Lead.created_at >= today),
            func.count().filter(Lead.created_at >= now - timedelta(days=7)),
            func.count().filter(Lead.status == LeadStatus.VALID),
            func.count().filter(Lead.status == LeadStatus.INVALID),
        ).where(Lead.status != LeadStatus.MERGED, visible)
    ).one()
    pending = assignment_scope(actor) & (Assignment.status == AssignmentStatus.PENDING)
    inbox = session.execute(
        select(
            func.count(),
            func.count().filter((Assignment.sla_due_at < now) | Assignment.breached.is_(True)),
        ).where(pending)
    ).one()
    return HomeFigures(
        new_leads_today=lead_counts[0],
        new_leads_7d=lead_counts[1],
        leads_total=lead_counts[2],
        invalid_total=lead_counts[3],
        mqls_waiting=inbox[0],
        sla_breaches=inbox[1],
        recent_imports=list_batches(session=session, limit=5) if actor.can("import") else pd.DataFrame(),
        scheduler=scheduler_status(session=session, now=now),
    )


def scheduler_status(*, session: Session, now: datetime) -> SchedulerStatus:
    """Who leads the scheduler and what its heartbeat jobs did last (read from the lease and JobRun rows)."""
    lease = session.get(SchedulerLease, SCHEDULER_LEASE)
    latest = (
        select(JobRun.job, func.max(JobRun.id).label("id")).group_by(JobRun.job).subquery()
    )
    runs = session.execute(
        select(JobRun.job, JobRun.started_at, JobRun.finished_at, JobRun.ok, JobRun.error, JobRun.summary)
        .join(latest, latest.c.id == JobRun.id)
        .order_by(JobRun.job)
    ).all()
    expires = ensure_utc(lease.expires_at) if lease else None
    return SchedulerStatus(
        leader=lease.holder if lease else None,
        lease_expires_at=expires,
        alive=bool(expires and expires > now),
        last_runs=[dict(row._mapping) for row in runs],
    )
