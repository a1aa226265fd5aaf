"""The outbox: every email, SMS, WeChat/WeCom message, webhook and in-app notification is a Message row first.

Writers only ``enqueue``; a sender picks queued rows up, so a crash between deciding to send and sending
loses nothing, and the unique ``idempotency_key`` makes a repeated decision a no-op instead of a second send.
"""

from __future__ import annotations

import hashlib
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from core.errors import ValidationError
from core.settings import get_setting
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


# ---------------------------------------------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------------------------------------------
MAX_ATTEMPTS = 5
# Minutes to wait before attempt n+1 (after attempt n failed): 1, 5, 30, 120 minutes.
BACKOFF_MINUTES = (1, 5, 30, 120)
# A claimed message whose sender vanished (process killed) becomes claimable again after this lease.
CLAIM_LEASE = timedelta(minutes=5)


@dataclass
class DeliveryReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class PermanentFailure(Exception):
    """The receiver refused the message for good (bad address, 4xx webhook): no retry."""


def _due_clause(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(Message.status == MessageStatus.QUEUED, Message.next_attempt_at <= now),
        and_(Message.status == MessageStatus.SENDING, Message.next_attempt_at < now),
    )


def claim_due(*, session: Session, now: datetime, limit: int = 1000) -> list[int]:
    """Atomically mark up to ``limit`` due messages as being sent by this process and commit.

    ``UPDATE … RETURNING`` tells exactly which rows this process won, so two senders never take the same
    message; on PostgreSQL the candidate rows are also locked with SKIP LOCKED so senders do not wait for
    each other.
    """
    candidates = select(Message.id).where(_due_clause(now)).order_by(Message.next_attempt_at, Message.id)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list(session.scalars(candidates.limit(limit)))
    if not ids:
        session.commit()
        return []
    claimed = session.scalars(
        update(Message)
        .where(Message.id.in_(ids), _due_clause(now))
        .values(status=MessageStatus.SENDING, next_attempt_at=now + CLAIM_LEASE, attempts=Message.attempts + 1)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted(claimed)


def deliver_due(*, session: Session, now: datetime, limit: int = 1000) -> DeliveryReport:
    """Send every due message in the outbox.

    Each message's outcome is committed right after its send, so a crash can at most leave the one message
    in flight to be retried after ``CLAIM_LEASE``. Emails carry a Message-ID derived from the idempotency
    key, so even that retry is recognisable as the same message by the receiving side.
    """
    report = DeliveryReport()
    ids = claim_due(session=session, now=now, limit=limit)
    report.claimed = len(ids)
    if not ids:
        return report
    # populate_existing: the claim was a bulk UPDATE, so rows already in this session must be re-read.
    messages = session.scalars(
        select(Message).where(Message.id.in_(ids)).order_by(Message.id).execution_options(populate_existing=True)
    ).all()
    smtp_settings = get_setting(session, "smtp")
    webhook_settings = get_setting(session, "webhooks")
    with _SmtpPool(smtp_settings) as smtp:
        for message in messages:
            try:
                if message.channel == "email":
                    smtp.send(message)
                elif message.channel == "notify":
                    pass  # shown in the app; nothing leaves the building
                else:
                    _post_webhook(message, webhook_settings)
            except PermanentFailure as error:
                _record_failure(message, str(error), now=now, permanent=True, report=report)
            except (OSError, smtplib.SMTPException, ValueError) as error:
                permanent = isinstance(error, smtplib.SMTPRecipientsRefused)
                _record_failure(message, _describe(error), now=now, permanent=permanent, report=report)
            else:
                message.status = MessageStatus.SENT
                message.sent_at = now
                message.last_error = None
                report.sent += 1
            session.add(message)
            session.commit()
    return report


def _record_failure(message: Message, error: str, *, now: datetime, permanent: bool,
                    report: DeliveryReport) -> None:
    message.last_error = error[:500]
    if permanent or message.attempts >= MAX_ATTEMPTS:
        message.status = MessageStatus.FAILED
        report.failed += 1
    else:
        wait = BACKOFF_MINUTES[min(message.attempts, len(BACKOFF_MINUTES)) - 1]
        message.status = MessageStatus.QUEUED
        message.next_attempt_at = now + timedelta(minutes=wait)
        report.retrying += 1
    report.errors.append(f"#{message.id}: {message.last_error}")


def _describe(error: BaseException) -> str:
    """One line about a failed send, without credentials."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def message_id_header(idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@leadloop>"


class _SmtpPool:
    """One SMTP connection for a whole delivery run, opened on the first email."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.connection: smtplib.SMTP | None = None

    def __enter__(self) -> _SmtpPool:
        return self

    def __exit__(self, *_: object) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (OSError, smtplib.SMTPException):
                pass

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if not s.get("host"):
            raise PermanentFailure("SMTP is not configured (Admin → Messaging).")
        timeout = float(s.get("timeout") or 10)
        if s.get("security") == "ssl":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(s["host"], int(s["port"]), timeout=timeout,
                                                        context=ssl.create_default_context())
        else:
            connection = smtplib.SMTP(s["host"], int(s["port"]), timeout=timeout)
            if s.get("security") == "starttls":
                connection.starttls(context=ssl.create_default_context())
        if s.get("username"):
            connection.login(s["username"], s.get("password") or "")
        return connection

    def send(self, message: Message) -> None:
        if not message.to_address or "@" not in message.to_address:
            raise PermanentFailure(f"No valid email address: {message.to_address!r}.")
        if self.connection is None:
            self.connection = self._connect()
        email = EmailMessage()
        email["From"] = self.settings.get("sender") or self.settings.get("username") or "leadloop@localhost"
        email["To"] = message.to_address
        email["Subject"] = message.subject
        email["Message-ID"] = message_id_header(message.idempotency_key)
        unsubscribe = (message.payload or {}).get("unsubscribe_url")
        if unsubscribe:
            email["List-Unsubscribe"] = f"<{unsubscribe}>"
        html = (message.payload or {}).get("html")
        email.set_content(message.body or "")
        if html:
            email.add_alternative(html, subtype="html")
        self.connection.send_message(email)


# The JSON each group-robot webhook expects (WeCom, DingTalk and Feishu document these "text" formats).
def _robot_payload(channel: str, text: str) -> dict[str, Any]:
    if channel in ("wecom", "dingtalk"):
        return {"msgtype": "text", "text": {"content": text}}
    if channel == "feishu":
        return {"msg_type": "text", "content": {"text": text}}
    return {}


def _post_webhook(message: Message, settings: dict[str, Any]) -> None:
    """POST the message as JSON: group robots get their own format, SMS/WeChat/webhooks a generic envelope."""
    adapter = settings.get(message.channel) or {}
    url = message.to_address if message.channel == "webhook" else (message.payload or {}).get("url") or adapter.get(
        "url", "")
    if not url or not url.startswith(("http://", "https://")):
        raise PermanentFailure(f"No webhook address configured for {message.channel}.")
    text = "\n".join(part for part in (message.subject, message.body) if part)
    body = _robot_payload(message.channel, text) or {
        "channel": message.channel,
        "to": message.to_address,
        "subject": message.subject,
        "body": message.body,
        "payload": message.payload or {},
        "idempotency_key": message.idempotency_key,
    }
    headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": message.idempotency_key}
    if adapter.get("token"):
        headers["Authorization"] = f"Bearer {adapter['token']}"
    request = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False, default=str).encode("utf-8"),
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=float(adapter.get("timeout") or 10)) as response:
            answer = response.read(65536)
    except urllib.error.HTTPError as error:
        if 400 <= error.code < 500 and error.code not in (408, 429):
            raise PermanentFailure(f"The webhook refused the message (HTTP {error.code}).") from error
        raise OSError(f"HTTP {error.code}") from error
    message.provider_message_id = answer[:256].decode("utf-8", "replace") or None
