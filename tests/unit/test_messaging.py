"""The outbox against real receivers: an SMTP server and an HTTP server on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from core.messaging import MAX_ATTEMPTS, claim_due, deliver_due, enqueue, message_id_header
from core.settings import set_setting
from db.models import Message, MessageStatus

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def _configure_smtp(session, host: str, port: int) -> None:
    set_setting(session, "smtp", {"host": host, "port": port, "security": "none", "sender": "mkt@example.cn",
                                  "username": "", "password": ""})
    session.commit()


def test_emails_are_delivered_once_with_a_stable_message_id(session, smtp_server):
    host, port, smtp = smtp_server
    _configure_smtp(session, host, port)
    for n in range(3):
        enqueue(session=session, channel="email", idempotency_key=f"wf:1:lead:{n}:step:a", now=NOW,
                to_address=f"lead{n}@example.cn", subject="完善信息，赢福利", body=f"您好 {n}")
    # Deciding the same send again queues nothing new.
    enqueue(session=session, channel="email", idempotency_key="wf:1:lead:0:step:a", now=NOW,
            to_address="lead0@example.cn", subject="完善信息，赢福利", body="您好 0")
    session.commit()
    report = deliver_due(session=session, now=NOW)
    assert (report.sent, report.failed) == (3, 0)
    assert sorted(m["to"][0] for m in smtp.messages) == ["lead0@example.cn", "lead1@example.cn", "lead2@example.cn"]
    assert smtp.messages[0]["subject"] == "完善信息，赢福利"
    assert smtp.messages[0]["message_id"] == message_id_header("wf:1:lead:0:step:a")
    # A second run finds nothing to send.
    assert deliver_due(session=session, now=NOW + timedelta(hours=1)).claimed == 0
    assert len(smtp.messages) == 3


def test_a_refused_address_fails_for_good_and_says_why(session, smtp_server):
    host, port, smtp = smtp_server
    smtp.refuse.add("nobody@example.cn")
    _configure_smtp(session, host, port)
    enqueue(session=session, channel="email", idempotency_key="k1", now=NOW, to_address="nobody@example.cn",
            subject="hi", body="x")
    session.commit()
    report = deliver_due(session=session, now=NOW)
    message = session.exec(select(Message)).one()
    assert report.failed == 1 and message.status == MessageStatus.FAILED
    assert "550" in message.last_error


def test_an_unreachable_server_is_retried_with_backoff_then_fails(session):
    from tests.conftest import free_port

    _configure_smtp(session, "127.0.0.1", free_port())  # nothing listens there
    enqueue(session=session, channel="email", idempotency_key="k2", now=NOW, to_address="a@example.cn",
            subject="s", body="b")
    session.commit()
    clock = NOW
    for attempt in range(1, MAX_ATTEMPTS + 1):
        report = deliver_due(session=session, now=clock)
        assert report.claimed == 1, attempt
        message = session.exec(select(Message)).one()
        session.refresh(message)
        if attempt < MAX_ATTEMPTS:
            assert message.status == MessageStatus.QUEUED and message.next_attempt_at > clock
            # Not due again before its backoff has passed.
            assert deliver_due(session=session, now=clock).claimed == 0
            clock = message.next_attempt_at
        else:
            assert message.status == MessageStatus.FAILED
            assert "Connection" in message.last_error or "refused" in message.last_error.lower()


def test_webhooks_reach_a_real_http_server_in_each_robot_format(session, http_receiver):
    base, http = http_receiver
    set_setting(session, "webhooks", {"wecom": {"url": f"{base}/wecom"}, "feishu": {"url": f"{base}/feishu"},
                                      "sms": {"url": f"{base}/sms", "token": "t0ken"}})
    enqueue(session=session, channel="wecom", idempotency_key="w1", now=NOW, subject="SLA 即将超时",
            body="张伟 还有 2 小时")
    enqueue(session=session, channel="feishu", idempotency_key="f1", now=NOW, body="升级提醒")
    enqueue(session=session, channel="sms", idempotency_key="s1", now=NOW, to_address="+8613800138001",
            body="验证码")
    enqueue(session=session, channel="webhook", idempotency_key="h1", now=NOW, to_address=f"{base}/crm",
            payload={"lead_id": 7})
    session.commit()
    report = deliver_due(session=session, now=NOW)
    assert report.sent == 4, report.errors
    by_path = {r["path"]: r for r in http.requests}
    assert by_path["/wecom"]["json"] == {"msgtype": "text", "text": {"content": "SLA 即将超时\n张伟 还有 2 小时"}}
    assert by_path["/feishu"]["json"] == {"msg_type": "text", "content": {"text": "升级提醒"}}
    assert by_path["/sms"]["json"]["to"] == "+8613800138001"
    assert by_path["/sms"]["headers"]["Authorization"] == "Bearer t0ken"
    assert by_path["/crm"]["json"]["payload"] == {"lead_id": 7}
    assert by_path["/crm"]["headers"]["Idempotency-Key"] == "h1"


def test_a_webhook_answering_400_fails_without_retry(session, http_receiver):
    base, http = http_receiver
    http.status = 400
    enqueue(session=session, channel="webhook", idempotency_key="h2", now=NOW, to_address=f"{base}/x")
    session.commit()
    deliver_due(session=session, now=NOW)
    message = session.exec(select(Message)).one()
    assert message.status == MessageStatus.FAILED and "400" in message.last_error


def test_two_senders_never_claim_the_same_message(engine):
    from sqlmodel import Session

    with Session(engine) as first, Session(engine) as second:
        for n in range(20):
            enqueue(session=first, channel="notify", idempotency_key=f"n{n}", now=NOW, user_id=None)
        first.commit()
        a = claim_due(session=first, now=NOW, limit=15)
        b = claim_due(session=second, now=NOW, limit=15)
    assert len(a) == 15 and len(b) == 5 and not set(a) & set(b)


def test_a_message_abandoned_by_a_killed_sender_is_sent_after_the_lease(session):
    enqueue(session=session, channel="notify", idempotency_key="n1", now=NOW)
    session.commit()
    assert claim_due(session=session, now=NOW) != []  # the sender dies here, before sending
    assert deliver_due(session=session, now=NOW + timedelta(minutes=1)).claimed == 0
    report = deliver_due(session=session, now=NOW + timedelta(minutes=6))
    assert report.sent == 1
