"""Handing accepted leads to the CRM: a JSON webhook through the outbox, or an export for CRMs without one.

When a rep accepts an MQL, ``push_accepted`` queues one ``webhook`` message to the URL in the "crm" setting
(``core.messaging.deliver_due`` posts it, with retries). The JSON body is the outbox's generic envelope; its
``payload`` holds ``{"event": "lead.accepted", "lead": {…}, "assignment": {…}, "rep": {…}}``. Without a
URL the assignment is marked ``export`` and the lead appears in ``accepted_export`` (CSV / Excel through
``core.export``). ``sync_crm_status`` copies the delivery outcome back onto the assignments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import bindparam, select, update
from sqlmodel import Session

from core.auth import Actor, assignment_scope, require
from core.messaging import enqueue
from core.settings import get_setting
from db.models import (
    Account,
    Assignment,
    AssignmentStatus,
    Campaign,
    Channel,
    Lead,
    Message,
    MessageStatus,
    User,
)

CRM_STATUS_QUEUED = "queued"
CRM_STATUS_SENT = "sent"
CRM_STATUS_EXPORT = "export"  # no webhook configured: the export is the hand-over
CRM_STATUS_FAILED = "failed"

EXPORT_COLUMNS = ["assignment_id", "lead_id", "name", "company", "title", "phone", "email", "wechat_id",
                  "province", "city", "industry", "company_size", "product_interest", "grade", "fit_score",
                  "engagement_score", "channel", "campaign", "account", "rep", "employee_code", "routed_by",
                  "decided_at", "crm_status"]


def crm_key(assignment_id: int) -> str:
    return f"crm:{assignment_id}"


def _export_query():  # noqa: ANN202 - a SQLAlchemy Select
    return (
        select(Assignment.id.label("assignment_id"), Lead.id.label("lead_id"), Lead.name, Lead.company, Lead.title,
               Lead.phone, Lead.email, Lead.wechat_id, Lead.province, Lead.city, Lead.industry, Lead.company_size,
               Lead.product_interest, Lead.grade, Lead.fit_score, Lead.engagement_score,
               Channel.name.label("channel"), Campaign.name.label("campaign"), Account.name.label("account"),
               User.display_name.label("rep"), User.employee_code, User.email.label("rep_email"),
               Assignment.routed_by, Assignment.decided_at, Assignment.crm_status)
        .join(Lead, Lead.id == Assignment.lead_id)
        .join(User, User.id == Assignment.rep_id)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .join(Campaign, Campaign.id == Lead.source_campaign_id, isouter=True)
        .join(Account, Account.id == Lead.account_id, isouter=True)
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value


def push_accepted(*, session: Session, assignment_id: int, now: datetime) -> str:
    """Queue the CRM webhook for one accepted assignment (or mark it for export). Returns the CRM status."""
    url = str(get_setting(session, "crm").get("webhook_url") or "").strip()
    assignments = Assignment.__table__
    if not url:
        session.execute(update(assignments).where(assignments.c.id == assignment_id)
                        .values(crm_status=CRM_STATUS_EXPORT))
        return CRM_STATUS_EXPORT
    row = session.execute(_export_query().where(Assignment.id == assignment_id)).one()._asdict()
    payload = {
        "event": "lead.accepted",
        "lead": {name: _jsonable(row[name]) for name in
                 ("lead_id", "name", "company", "title", "phone", "email", "wechat_id", "province", "city",
                  "industry", "company_size", "product_interest", "grade", "fit_score", "engagement_score",
                  "channel", "campaign", "account")},
        "assignment": {"id": assignment_id, "routed_by": row["routed_by"], "accepted_at": now.isoformat()},
        "rep": {"name": row["rep"], "employee_code": row["employee_code"], "email": row["rep_email"]},
    }
    enqueue(session=session, channel="webhook", idempotency_key=crm_key(assignment_id), now=now, to_address=url,
            subject="lead.accepted", payload=payload, lead_id=row["lead_id"])
    session.execute(update(assignments).where(assignments.c.id == assignment_id)
                    .values(crm_status=CRM_STATUS_QUEUED))
    return CRM_STATUS_QUEUED


def sync_crm_status(*, session: Session) -> int:
    """Copy the outcome of queued CRM webhooks onto their assignments (sent → ``crm_pushed_at``). Set-based."""
    waiting = session.execute(
        select(Assignment.id).where(Assignment.crm_status == CRM_STATUS_QUEUED)
    ).scalars().all()
    if not waiting:
        return 0
    keys = {crm_key(i): i for i in waiting}
    messages = session.execute(
        select(Message.idempotency_key, Message.status, Message.sent_at, Message.last_error)
        .where(Message.idempotency_key.in_(list(keys)),
               Message.status.in_([MessageStatus.SENT, MessageStatus.FAILED]))
    ).all()
    if not messages:
        return 0
    table = Assignment.__table__
    session.connection().execute(
        update(table).where(table.c.id == bindparam("b_id"))
        .values(crm_status=bindparam("b_status"), crm_pushed_at=bindparam("b_at")),
        [
            {"b_id": keys[m.idempotency_key],
             "b_status": CRM_STATUS_SENT if m.status == MessageStatus.SENT
             else f"{CRM_STATUS_FAILED}: {m.last_error or ''}"[:256],
             "b_at": m.sent_at if m.status == MessageStatus.SENT else None}
            for m in messages
        ],
    )
    return len(messages)


def accepted_export(
    *, session: Session, actor: Actor, since: datetime | None = None, until: datetime | None = None,
    only_without_webhook: bool = False, limit: int = 50_000,
) -> pd.DataFrame:
    """Accepted leads for a CRM import (a manager: their team's; admin: all), newest first."""
    require(actor, "team_inbox")
    require(actor, "export")
    statement = _export_query().where(Assignment.status == AssignmentStatus.ACCEPTED, assignment_scope(actor))
    if since is not None:
        statement = statement.where(Assignment.decided_at >= since)
    if until is not None:
        statement = statement.where(Assignment.decided_at < until)
    if only_without_webhook:
        statement = statement.where(Assignment.crm_status == CRM_STATUS_EXPORT)
    rows = session.execute(statement.order_by(Assignment.decided_at.desc(), Assignment.id.desc()).limit(limit)).all()
    frame = pd.DataFrame([r._asdict() for r in rows])
    if frame.empty:
        return pd.DataFrame(columns=EXPORT_COLUMNS)
    return frame[EXPORT_COLUMNS]
