"""The audit log: who changed what, written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from core.clock import utcnow
from db.models import AuditLog, User

if TYPE_CHECKING:
    from core.auth import Actor


def record(
    session: Session,
    *,
    actor_id: int | None,
    action: str,
    entity: str = "",
    entity_id: Any = None,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditLog:
    entry = AuditLog(
        at=now or utcnow(),
        user_id=actor_id,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        detail=_without_secrets(detail or {}),
    )
    session.add(entry)
    return entry


_SECRET_WORDS = ("password", "secret", "token", "api_key")


def _without_secrets(detail: dict[str, Any]) -> dict[str, Any]:
    """Secrets never reach the audit log, even when a caller passes a whole settings dict."""
    clean: dict[str, Any] = {}
    for key, value in detail.items():
        if any(word in key.lower() for word in _SECRET_WORDS):
            clean[key] = "***"
        elif isinstance(value, dict):
            clean[key] = _without_secrets(value)
        else:
            clean[key] = value
    return clean


def list_entries(session: Session, *, actor: Actor, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
    """The newest audit entries with the acting user's name; only roles with the ``audit`` permission."""
    from core.auth import require  # core.auth writes to the audit log, so it is imported here, not at the top

    require(actor, "audit")
    rows = session.exec(
        select(AuditLog.at, User.display_name, AuditLog.action, AuditLog.entity, AuditLog.entity_id,
               AuditLog.detail)
        .join(User, User.id == AuditLog.user_id, isouter=True)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [
        {"at": at, "user": name or "system", "action": action, "entity": entity, "entity_id": entity_id,
         "detail": detail}
        for at, name, action, entity, entity_id, detail in rows
    ]
