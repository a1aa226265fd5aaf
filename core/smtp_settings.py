"""SMTP settings for Admin → Messaging: read without the password, save (an empty password keeps the stored one),
and a test email sent at once through the same SMTP code the outbox uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from core import audit
from core.auth import Actor, require
from core.errors import ValidationError
from core.messaging import PermanentFailure, _SmtpPool, message_id_header
from core.settings import get_setting, set_setting
from db.models import Message

SECURITY = ("none", "starttls", "ssl")


def smtp_settings(*, session: Session, actor: Actor) -> dict[str, Any]:
    """The SMTP settings for the form: the password is never returned, only whether one is stored."""
    require(actor, "manage_settings")
    value = get_setting(session, "smtp")
    return {**{k: v for k, v in value.items() if k != "password"}, "has_password": bool(value.get("password")),
            "unsubscribe_text": get_setting(session, "workflows").get("unsubscribe_text", ""),
            "base_url": get_setting(session, "workflows").get("base_url", "")}


def save_smtp_settings(*, session: Session, actor: Actor, now: datetime, host: str, port: int, security: str,
                       username: str = "", password: str | None = None, sender: str = "",
                       unsubscribe_text: str | None = None, base_url: str | None = None) -> None:
    require(actor, "manage_settings")
    if security not in SECURITY:
        raise ValidationError(f"Unknown security {security}.", key="smtp.security_invalid")
    if host.strip() and not (0 < int(port) < 65536):
        raise ValidationError("The port must be between 1 and 65535.", key="smtp.port_invalid")
    if sender.strip() and "@" not in sender:
        raise ValidationError("The sender must be an email address.", key="smtp.sender_invalid")
    value: dict[str, Any] = {"host": host.strip(), "port": int(port), "security": security,
                             "username": username.strip(), "sender": sender.strip()}
    if password:  # empty: keep the stored password
        value["password"] = password
    set_setting(session, "smtp", value, actor_id=actor.id or None)
    extra = {k: v for k, v in (("unsubscribe_text", unsubscribe_text), ("base_url", base_url)) if v is not None}
    if extra:
        set_setting(session, "workflows", extra, actor_id=actor.id or None)
    audit.record(session, actor_id=actor.id or None, action="settings.smtp", entity="setting", entity_id="smtp",
                 detail={k: v for k, v in value.items() if k != "password"}, now=now)


def send_test_email(*, session: Session, actor: Actor, now: datetime, to: str) -> str:
    """Send one email now with the stored settings; returns its Message-ID, raises a readable error on failure."""
    require(actor, "manage_settings")
    if "@" not in to:
        raise ValidationError("Enter an email address.", key="smtp.to_invalid")
    key = f"smtp-test:{to}:{now.isoformat()}"
    message = Message(channel="email", to_address=to.strip(), subject="LeadLoop SMTP test",
                      body="This is a test email from LeadLoop. 这是一封来自 LeadLoop 的测试邮件。",
                      idempotency_key=key, payload={})
    try:
        with _SmtpPool(get_setting(session, "smtp")) as smtp:
            smtp.send(message)
    except PermanentFailure as error:
        raise ValidationError(str(error), key="smtp.test_failed", detail=str(error)) from error
    except Exception as error:  # noqa: BLE001 - any SMTP/network failure becomes a message, never a traceback
        detail = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        raise ValidationError(detail, key="smtp.test_failed", detail=detail) from error
    audit.record(session, actor_id=actor.id or None, action="settings.smtp_test", entity="setting",
                 entity_id="smtp", detail={"to": to}, now=now)
    return message_id_header(key)
