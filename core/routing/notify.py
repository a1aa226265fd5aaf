"""Notifications of the handoff: in-app notes, emails and group-robot posts, all queued in the outbox.

Everything goes through the ``Message`` outbox (``core.messaging``): this module only decides who hears what,
in the recipient's own language, with an idempotency key per decision so a repeated run never sends twice.
Many messages at once are queued with one multi-row INSERT … ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from core.i18n import normalize_language, t
from core.settings import get_setting
from db.models import Message, MessageStatus, User

ROBOTS = ("wecom", "dingtalk", "feishu")
_CHUNK = 500


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    email: str | None
    language: str
    manager_id: int | None


def people(session: Session, user_ids: Iterable[int]) -> dict[int, Person]:
    ids = sorted({int(i) for i in user_ids if i})
    if not ids:
        return {}
    rows = session.execute(
        select(User.id, User.display_name, User.username, User.email, User.language, User.manager_id)
        .where(User.id.in_(ids))
    ).all()
    return {
        r.id: Person(r.id, r.display_name or r.username, r.email or None, normalize_language(r.language),
                     r.manager_id)
        for r in rows
    }


def email_enabled(session: Session) -> bool:
    """Emails are queued only when SMTP is configured and the SLA setting does not turn them off."""
    return bool(get_setting(session, "smtp").get("host")) and bool(get_setting(session, "sla").get("email", True))


def robot_targets(session: Session) -> list[tuple[str, str]]:
    """(channel, url) of each group robot that should hear about SLA events: the sales team's own robot from
    the "sla" setting, else the team-wide one from "webhooks"."""
    own = get_setting(session, "sla").get("robots") or {}
    shared = get_setting(session, "webhooks")
    targets = []
    for channel in ROBOTS:
        url = str(own.get(channel) or (shared.get(channel) or {}).get("url") or "").strip()
        if url.startswith(("http://", "https://")):
            targets.append((channel, url))
    return targets


def message(
    *, channel: str, key: str, now: datetime, to_address: str = "", subject: str = "", body: str = "",
    payload: dict[str, Any] | None = None, lead_id: int | None = None, user_id: int | None = None,
) -> dict[str, Any]:
    return {
        "channel": channel, "idempotency_key": key[:128], "to_address": to_address, "subject": subject,
        "body": body, "payload": payload or {}, "lead_id": lead_id, "user_id": user_id, "enrollment_id": None,
        "status": MessageStatus.QUEUED, "attempts": 0, "next_attempt_at": now, "created_at": now,
    }


def enqueue_many(session: Session, rows: list[dict[str, Any]]) -> int:
    """Queue many messages; rows whose idempotency key is queued already are left alone. Returns rows given.

    One executemany of a cached INSERT … ON CONFLICT DO NOTHING (SQLAlchemy batches it into multi-row
    statements), rather than a freshly compiled VALUES list per chunk."""
    if not rows:
        return 0
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(Message.__table__).on_conflict_do_nothing(index_elements=["idempotency_key"])
    connection = session.connection()
    for start in range(0, len(rows), _CHUNK * 10):
        connection.execute(statement, rows[start : start + _CHUNK * 10])
    return len(rows)


def tr(person: Person | None, key: str, **params: Any) -> str:
    return t(key, person.language if person else None, **params)


def lead_label(name: object, company: object) -> str:
    parts = [str(p) for p in (name, company) if p not in (None, "") and str(p) != "nan"]
    return " · ".join(parts) or "—"
