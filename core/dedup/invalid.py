"""Invalid leads: the ones the import set aside (no way to reach them, test entries, blocklisted), with their
reasons; restore them, or delete them for good (confirmed, audited, with every row that belonged to them)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pandas as pd
from sqlalchemy import Table, delete, func, select, update
from sqlmodel import Session, SQLModel

from core import audit
from core.auth import Actor, require
from core.dedup.queue import check_new_leads
from core.errors import ValidationError
from db.models import Channel, Enrollment, Lead, LeadStatus, Message, StepRun

INVALID_COLUMNS = ["id", "name", "company", "phone", "email", "wechat_id", "invalid_reason", "channel",
                   "created_at"]
_CHUNK = 500


def count_invalid(*, session: Session, actor: Actor) -> int:
    require(actor, "dedup")
    return session.scalar(select(func.count()).where(Lead.status == LeadStatus.INVALID)) or 0


def list_invalid(*, session: Session, actor: Actor, limit: int = 100, offset: int = 0) -> pd.DataFrame:
    """Invalid leads with the reason, newest first (one page)."""
    require(actor, "dedup")
    rows = session.execute(
        select(Lead.id, Lead.name, Lead.company, Lead.phone, Lead.email, Lead.wechat_id, Lead.invalid_reason,
               Channel.name.label("channel"), Lead.created_at)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .where(Lead.status == LeadStatus.INVALID)
        .order_by(Lead.created_at.desc(), Lead.id.desc()).limit(limit).offset(offset)
    ).all()
    return pd.DataFrame([r._asdict() for r in rows], columns=INVALID_COLUMNS)


def _invalid_ids(session: Session, lead_ids: Iterable[int]) -> list[int]:
    wanted = sorted({int(i) for i in lead_ids})
    found: list[int] = []
    for start in range(0, len(wanted), _CHUNK):
        found += list(session.scalars(select(Lead.id).where(Lead.id.in_(wanted[start:start + _CHUNK]),
                                                            Lead.status == LeadStatus.INVALID)))
    return sorted(found)


def restore_invalid(*, session: Session, actor: Actor, lead_ids: Iterable[int], now: datetime) -> dict[str, int]:
    """Make invalid leads valid again; they are then checked for duplicates like newly imported leads."""
    require(actor, "dedup")
    ids = _invalid_ids(session, lead_ids)
    for start in range(0, len(ids), _CHUNK):
        session.execute(update(Lead).where(Lead.id.in_(ids[start:start + _CHUNK]))
                        .values(status=LeadStatus.VALID, invalid_reason=None, updated_at=now,
                                version=Lead.version + 1).execution_options(synchronize_session=False))
    audit.record(session, actor_id=actor.id or None, action="dedup.restore_invalid", entity="lead",
                 entity_id=",".join(map(str, ids))[:64], detail={"lead_ids": ids}, now=now)
    summary = {"restored": len(ids)}
    if ids:
        summary.update(check_new_leads(session=session, lead_ids=ids, now=now, actor=actor))
    return summary


def _lead_references() -> list[tuple[Table, str, bool]]:
    found = []
    for table in SQLModel.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name == "lead":
                found.append((table, fk.parent.name, bool(fk.parent.nullable)))
    return found


def delete_invalid(*, session: Session, actor: Actor, lead_ids: Iterable[int], confirm_count: int,
                   now: datetime) -> int:
    """Delete invalid leads for good, with their touchpoints, tags, scores and every other row of theirs
    (import rows and messages keep their history with the lead left empty). ``confirm_count`` must equal the
    number of leads that will go — what the person confirmed — or nothing happens."""
    require(actor, "dedup")
    ids = _invalid_ids(session, lead_ids)
    if not ids:
        return 0
    if int(confirm_count) != len(ids):
        raise ValidationError(f"Confirm the deletion of {len(ids)} leads.", key="dedup.confirm_delete",
                              count=len(ids))
    details = [dict(r._mapping) for r in session.execute(
        select(Lead.id, Lead.name, Lead.phone, Lead.email, Lead.invalid_reason).where(Lead.id.in_(ids)))]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        enrollments = select(Enrollment.id).where(Enrollment.lead_id.in_(chunk)).scalar_subquery()
        session.execute(delete(StepRun).where(StepRun.enrollment_id.in_(enrollments)))
        session.execute(update(Message).where(Message.enrollment_id.in_(enrollments)).values(enrollment_id=None)
                        .execution_options(synchronize_session=False))
        for table, column, nullable in _lead_references():
            condition = table.c[column].in_(chunk)
            if table.name == "lead" or nullable:
                session.execute(update(table).where(condition).values({column: None}))
            else:
                session.execute(delete(table).where(condition))
        session.execute(delete(Lead).where(Lead.id.in_(chunk)).execution_options(synchronize_session=False))
    audit.record(session, actor_id=actor.id or None, action="dedup.delete_invalid", entity="lead",
                 entity_id=",".join(map(str, ids))[:64],
                 detail={"count": len(ids), "leads": [{k: v for k, v in d.items()} for d in details]}, now=now)
    return len(ids)
