"""Unsubscribe links: signed per lead, honoured without a login.

Each installation signs links with its own random secret (kept in a setting, made on first use), so nobody can
unsubscribe someone else by guessing a URL; the HMAC covers the lead id. Following a valid link sets
``Lead.unsubscribed``, which every workflow send step respects, and leaves an audit entry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session

from core import audit
from core.settings import get_setting, set_setting
from db.models import Lead

_SETTING = "unsubscribe"


def signing_secret(session: Session) -> str:
    """This installation's secret, created (and saved in the caller's transaction) the first time it is needed."""
    current = str(get_setting(session, _SETTING).get("secret") or "")
    if not current:
        current = secrets.token_hex(32)
        set_setting(session, _SETTING, {"secret": current})
    return current


def _signature(secret: str, lead_id: int) -> str:
    return hmac.new(secret.encode(), f"unsubscribe:{lead_id}".encode(), hashlib.sha256).hexdigest()[:32]


def token_for(secret: str, lead_id: int) -> str:
    return f"{lead_id}.{_signature(secret, lead_id)}"


def unsubscribe_url(base_url: str, secret: str, lead_id: int) -> str:
    base = (base_url or "http://localhost:8501").rstrip("/")
    return f"{base}/?unsubscribe={token_for(secret, lead_id)}"


def unsubscribe(*, session: Session, token: str, now: datetime) -> bool:
    """Honour a link's token: True when it was genuine (the lead is now unsubscribed), False otherwise.

    A forged, truncated or unknown token changes nothing and says nothing about which leads exist. Following the
    same link twice is fine. The caller commits.
    """
    lead_part, _, signature = (token or "").strip().partition(".")
    if not lead_part.isdigit() or not signature:
        return False
    lead_id = int(lead_part)
    secret = str(get_setting(session, _SETTING).get("secret") or "")
    if not secret or not hmac.compare_digest(signature, _signature(secret, lead_id)):
        return False
    changed = session.execute(update(Lead).where(Lead.id == lead_id, Lead.unsubscribed.is_(False))
                              .values(unsubscribed=True, updated_at=now).execution_options(synchronize_session=False))
    if changed.rowcount:
        audit.record(session, actor_id=None, action="lead.unsubscribe", entity="lead", entity_id=lead_id, now=now)
    return True
