from datetime import timedelta

import pytest
from sqlmodel import select

from core.auth import SYSTEM, authenticate, create_user, require, set_password, update_user
from core.clock import utcnow
from core.errors import AuthenticationFailed, PermissionDenied, ValidationError
from db.models import AuditLog, User


def test_login_succeeds_and_records_audit(session, make_actor):
    make_actor("marketer", username="mia")
    actor = authenticate(session, username="mia", password="Passw0rd!x")
    assert actor.role == "marketer"
    assert len(session.exec(select(AuditLog).where(AuditLog.action == "login")).all()) == 1


def test_wrong_password_and_unknown_user_give_the_same_message(session, make_actor):
    make_actor("sales", username="rep")
    with pytest.raises(AuthenticationFailed) as wrong:
        authenticate(session, username="rep", password="nope12345")
    with pytest.raises(AuthenticationFailed) as unknown:
        authenticate(session, username="nobody", password="nope12345")
    assert str(wrong.value) == str(unknown.value)
    assert wrong.value.localized("zh") == unknown.value.localized("zh") == "用户名或密码不正确。"


def test_deactivated_user_is_refused(session, make_actor):
    rep = make_actor("sales", username="gone")
    update_user(session, actor=SYSTEM, user_id=rep.id, active=False)
    session.commit()
    with pytest.raises(AuthenticationFailed, match="deactivated"):
        authenticate(session, username="gone", password="Passw0rd!x")


def test_lockout_with_backoff_and_admin_reset(session, make_actor):
    make_actor("marketer", username="lock")
    now = utcnow()
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            authenticate(session, username="lock", password="bad-pass1", now=now)
    # Locked now, even with the right password.
    with pytest.raises(AuthenticationFailed, match="Too many failed attempts"):
        authenticate(session, username="lock", password="Passw0rd!x", now=now)
    # After the backoff it works again.
    assert authenticate(session, username="lock", password="Passw0rd!x", now=now + timedelta(minutes=2))
    user = session.exec(select(User).where(User.username == "lock")).one()
    assert user.failed_logins == 0
    set_password(session, actor=SYSTEM, user_id=user.id, new_password="NewPassw0rd")
    session.commit()
    assert authenticate(session, username="lock", password="NewPassw0rd")


def test_password_is_argon2_and_policy_enforced(session, make_actor):
    make_actor("marketer", username="pw")
    user = session.exec(select(User).where(User.username == "pw")).one()
    assert user.password_hash.startswith("$argon2")
    with pytest.raises(ValidationError):
        create_user(session, actor=SYSTEM, username="short", password="abc1", role="sales")
    with pytest.raises(ValidationError):
        create_user(session, actor=SYSTEM, username="digits", password="12345678", role="sales")


def test_roles_gate_actions(session, make_actor):
    rep = make_actor("sales")
    with pytest.raises(PermissionDenied):
        require(rep, "rules")
    with pytest.raises(PermissionDenied):
        create_user(session, actor=rep, username="x1", password="Passw0rd!x", role="admin")
    require(rep, "inbox")
