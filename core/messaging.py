"""The outbox: every email, SMS, WeChat/WeCom message, webhook and in-app notification is a Message row first.

Writers only ``enqueue``; a sender picks queued rows up, so a crash between deciding to send and sending
loses nothing, and the unique ``idempotency_key`` makes a repeated decision a no-op instead of a second send.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from core.errors import ValidationError
from db.models import Message, MessageStatus

CHANNELS = ("email", "sms", "wechat", "wecom", "dingtalk", "feishu", "webhook", "notify")


def enqueue(
    *,
    session: Session,
    channel: str,
    idempotency_key: str,
    now: datetime,
    to_address: str = "",
    subject: str = "",
    body: str = "",
    payload: dict[str, Any] | None = None,
    lead_id: int | None = None,
    user_id: int | None = None,
    enrollment_id: int | None = None,
    send_at: datetime | None = None,
) -> Message:
    """Queue one message; queuing the same ``idempotency_key`` again returns the first row unchanged."""
    if channel not in CHANNELS:
        raise ValidationError(f"Unknown message channel: {channel}.", key="messaging.channel_invalid",
                              channel=channel)
    values = {
        "channel": channel, "idempotency_key": idempotency_key, "to_address": to_address, "subject": subject,
        "body": body, "payload": payload or {}, "lead_id": lead_id, "user_id": user_id,
        "enrollment_id": enrollment_id, "status": MessageStatus.QUEUED, "attempts": 0,
        "next_attempt_at": send_at or now, "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # ON CONFLICT DO NOTHING: two processes deciding the same send at once still queue it once.
    session.execute(insert(Message).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"]))
    return session.scalars(select(Message).where(Message.idempotency_key == idempotency_key)).one()
