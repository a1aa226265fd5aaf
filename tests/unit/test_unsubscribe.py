"""Unsubscribe links: signed with the installation's own secret, honoured once, forgeries change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel import Session

from core.unsubscribe import signing_secret, token_for, unsubscribe, unsubscribe_url
from db.models import AuditLog, Lead

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _lead(session: Session) -> int:
    lead = Lead(name="张伟", email="zw@example.cn")
    session.add(lead)
    session.commit()
    return int(lead.id)  # type: ignore[arg-type]


def test_a_genuine_link_unsubscribes_the_lead_once(session):
    lead_id = _lead(session)
    secret = signing_secret(session)
    session.commit()
    assert signing_secret(session) == secret, "made once, then kept"
    url = unsubscribe_url("https://leadloop.example.cn/", secret, lead_id)
    assert url.startswith("https://leadloop.example.cn/?unsubscribe=")
    token = url.split("=", 1)[1]
    assert unsubscribe(session=session, token=token, now=NOW)
    session.commit()
    assert session.get(Lead, lead_id).unsubscribed
    assert unsubscribe(session=session, token=token, now=NOW), "following the link again is fine"
    session.commit()
    entries = session.scalars(select(AuditLog.action).where(AuditLog.entity_id == lead_id)).all()
    assert entries.count("lead.unsubscribe") == 1


def test_forged_or_broken_tokens_change_nothing(session):
    lead_id = _lead(session)
    other = _lead(session)
    secret = signing_secret(session)
    session.commit()
    genuine = token_for(secret, lead_id)
    forged = [
        "", "abc", f"{other}", f"{other}.", genuine.replace(str(lead_id), str(other), 1),  # someone else's id
        token_for("leadloop", other),  # signed with a guessed secret
        genuine[:-1], f"{other}.{'0' * 32}", "1 OR 1=1.x", f"{lead_id}.{genuine.split('.')[1].upper()}",
    ]
    for token in forged:
        assert not unsubscribe(session=session, token=token, now=NOW), token
    session.commit()
    assert not session.get(Lead, lead_id).unsubscribed and not session.get(Lead, other).unsubscribed
