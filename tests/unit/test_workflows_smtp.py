"""Admin → Messaging: SMTP settings keep the password out of reads and logs; the test email reaches a real server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from core.errors import PermissionDenied, ValidationError
from core.settings import get_setting
from core.smtp_settings import save_smtp_settings, send_test_email, smtp_settings
from db.models import AuditLog
from tests.conftest import free_port

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def test_password_is_kept_and_never_shown_or_logged(session, make_actor):
    admin = make_actor("admin")
    save_smtp_settings(session=session, actor=admin, now=NOW, host="smtp.example.cn", port=465, security="ssl",
                       username="mkt", password="s3cret-pw", sender="mkt@example.cn")
    save_smtp_settings(session=session, actor=admin, now=NOW, host="smtp.example.cn", port=465, security="ssl",
                       username="mkt", password=None, sender="mkt@example.cn")
    session.commit()
    assert get_setting(session, "smtp")["password"] == "s3cret-pw"
    shown = smtp_settings(session=session, actor=admin)
    assert "password" not in shown and shown["has_password"]
    details = [str(d) for d in session.scalars(select(AuditLog.detail))]
    assert details and not any("s3cret" in d for d in details)
    with pytest.raises(PermissionDenied):
        smtp_settings(session=session, actor=make_actor("marketer"))


def test_test_email_reaches_the_server_or_says_why(session, make_actor, smtp_server):
    host, port, received = smtp_server
    admin = make_actor("admin")
    save_smtp_settings(session=session, actor=admin, now=NOW, host=host, port=port, security="none",
                       sender="mkt@example.cn")
    send_test_email(session=session, actor=admin, now=NOW, to="me@example.cn")
    assert received.messages[0]["to"] == ["me@example.cn"]
    save_smtp_settings(session=session, actor=admin, now=NOW, host="127.0.0.1", port=free_port(), security="none")
    with pytest.raises(ValidationError) as caught:
        send_test_email(session=session, actor=admin, now=NOW, to="me@example.cn")
    assert "ConnectionRefusedError" in caught.value.localized("en")
