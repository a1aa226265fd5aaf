"""Users, passwords (argon2), lockout, roles and the permission check every command uses.

Pages decide what to show from ``allowed_pages``; core functions call ``require`` themselves, so a sales rep who
calls a core function directly is refused just as the page would refuse them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import ColumnElement, false, func, true
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from core import audit
from core.clock import ensure_utc, utcnow
from core.errors import AuthenticationFailed, NotFound, PermissionDenied, ValidationError
from db.busy import is_busy, patience, write_later
from db.models import Assignment, Lead, Role, User

_hasher = PasswordHasher()

# What each role may do. Page visibility and core checks both read this one table.
PERMISSIONS: dict[str, frozenset[str]] = {
    Role.ADMIN: frozenset(
        {
            "home", "import", "dedup", "rules", "workflows", "journeys", "accounts", "reports", "inbox",
            "team_inbox", "admin", "manage_users", "manage_settings", "manage_channels", "manage_costs",
            "audit", "export", "promote_mql", "edit_mql",
        }
    ),
    Role.MARKETER: frozenset(
        {"home", "import", "dedup", "rules", "workflows", "journeys", "accounts", "reports", "manage_channels",
         "manage_costs", "export", "admin", "promote_mql", "edit_mql"}
    ),
    Role.MANAGER: frozenset(
        {"home", "journeys", "accounts", "reports", "inbox", "team_inbox", "manage_routing", "export", "dedup_view",
         "manage_costs", "admin", "edit_mql"}
    ),
    Role.SALES: frozenset({"home", "inbox", "journeys"}),
}
# The admin also manages routing rules.
PERMISSIONS[Role.ADMIN] = PERMISSIONS[Role.ADMIN] | {"manage_routing"}

MIN_PASSWORD_LENGTH = 8
LOCKOUT_AFTER = 5
LOCKOUT_MAX_MINUTES = 60


@dataclass(frozen=True)
class Actor:
    """Who is acting: kept in the UI session instead of an ORM object."""

    id: int
    username: str
    role: str
    display_name: str = ""
    language: str = "zh"
    team_ids: tuple[int, ...] = field(default_factory=tuple)

    def can(self, action: str) -> bool:
        return action in PERMISSIONS.get(self.role, frozenset())

    @classmethod
    def of(cls, user: User, team_ids: tuple[int, ...] = ()) -> Actor:
        assert user.id is not None
        return cls(
            id=user.id,
            username=user.username,
            role=user.role,
            display_name=user.display_name or user.username,
            language=user.language or "zh",
            team_ids=team_ids,
        )


SYSTEM = Actor(id=0, username="system", role=Role.ADMIN, display_name="LeadLoop")


def require(actor: Actor, action: str) -> None:
    """Raise ``PermissionDenied`` unless ``actor``'s role allows ``action``."""
    if not actor.can(action):
        raise PermissionDenied(
            f"Your role ({actor.role}) may not do this: {action}.", role=actor.role, action=action
        )


def lead_scope(actor: Actor) -> ColumnElement[bool]:
    """The leads ``actor`` may see, as a WHERE clause: a sales rep sees only the leads they own."""
    if actor.role == Role.SALES:
        return Lead.owner_id == actor.id
    if actor.role in (Role.ADMIN, Role.MARKETER, Role.MANAGER):
        return true()
    return false()


def lead_scope_key(actor: Actor) -> str:
    """A short name for the leads ``lead_scope(actor)`` covers: two actors with the same key see the same leads,
    so figures computed for one may be cached and shown to the other."""
    if actor.role == Role.SALES:
        return f"owner:{actor.id}"
    if actor.role in (Role.ADMIN, Role.MARKETER, Role.MANAGER):
        return "all"
    return "none"


def assignment_scope(actor: Actor) -> ColumnElement[bool]:
    """The MQL assignments ``actor`` may see: a rep their own, a manager their team's, admin and marketing all."""
    if actor.role == Role.SALES:
        return Assignment.rep_id == actor.id
    if actor.role == Role.MANAGER:
        return Assignment.rep_id.in_((actor.id, *actor.team_ids))
    if actor.role in (Role.ADMIN, Role.MARKETER):
        return true()
    return false()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"The password needs at least {MIN_PASSWORD_LENGTH} characters.",
            key="auth.password_too_short",
            n=MIN_PASSWORD_LENGTH,
        )
    if not re.search(r"[A-Za-z]", password) or not re.search(r"\d", password):
        raise ValidationError("The password needs both letters and digits.", key="auth.password_weak")


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# A real hash of a random password: verifying against it when the user does not exist keeps the timing of
# "unknown user" and "wrong password" alike, so the answer gives no hint which part was wrong.
_DUMMY_HASH = _hasher.hash("leadloop-no-such-user-0")


def authenticate(session: Session, *, username: str, password: str, now: datetime | None = None) -> Actor:
    """Check a login. Raises ``AuthenticationFailed`` with a message that never says which part was wrong."""
    now = now or utcnow()
    user = session.exec(select(User).where(func.lower(User.username) == username.strip().lower())).first()
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise AuthenticationFailed("Wrong username or password.", key="error.login_failed")
    if user.locked_until is not None and ensure_utc(user.locked_until) > now:
        minutes = max(1, int((ensure_utc(user.locked_until) - now).total_seconds() // 60) + 1)
        raise AuthenticationFailed(
            f"Too many failed attempts. Try again in {minutes} minutes or ask an admin to reset the password.",
            key="auth.locked",
            minutes=minutes,
        )
    if not verify_password(user.password_hash, password):
        _commit_or_later(session, user.id, "failed login", lambda s, uid=user.id: _count_failure(s, uid, now))
        raise AuthenticationFailed("Wrong username or password.", key="error.login_failed")
    if not user.active:
        raise AuthenticationFailed(
            "This account is deactivated. Ask an admin to reactivate it.", key="auth.deactivated"
        )
    new_hash = hash_password(password) if _hasher.check_needs_rehash(user.password_hash) else None
    user_id = user.id
    _commit_or_later(session, user_id, "login", lambda s: _record_login(s, user_id, now, new_hash))
    return actor_for(session, session.get(User, user_id) or user)


def _count_failure(session: Session, user_id: int | None, now: datetime) -> None:
    user = session.get(User, user_id)
    if user is None:
        return
    user.failed_logins += 1
    if user.failed_logins >= LOCKOUT_AFTER:
        # Backoff doubles with each further failure: 1, 2, 4 … minutes, at most an hour.
        minutes = min(LOCKOUT_MAX_MINUTES, 2 ** (user.failed_logins - LOCKOUT_AFTER))
        user.locked_until = now + timedelta(minutes=minutes)
    session.add(user)


def _record_login(session: Session, user_id: int | None, now: datetime, new_hash: str | None) -> None:
    user = session.get(User, user_id)
    if user is None:
        return
    if new_hash:
        user.password_hash = new_hash
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.add(user)
    audit.record(session, actor_id=user.id, action="login", entity="user", entity_id=user.id, now=now)


LOGIN_WRITE_WAIT_SECONDS = 2.0


def _commit_or_later(session: Session, user_id: int | None, what: str, write: Callable[[Session], None]) -> None:
    """Write a login's bookkeeping now; while a long import holds SQLite's write lock, write it as soon as the
    lock is free instead of failing the sign-in (the password has been checked either way)."""
    try:
        with patience(session, LOGIN_WRITE_WAIT_SECONDS):
            write(session)
            session.flush()
        session.commit()
    except OperationalError as error:
        if not is_busy(error):
            raise
        session.rollback()
        write_later(session.get_bind().engine, write, what=f"{what} of user {user_id}")


def authenticate_sso(session: Session, *, email: str | None, now: datetime | None = None) -> Actor:
    """Sign in someone whom the single sign-on provider vouched for, by the email it returned.

    The provider proves who they are; LeadLoop still decides what they may do: the email must belong to an
    active LeadLoop user, whose role applies. Nobody is created here — an admin adds users first.
    """
    now = now or utcnow()
    address = (email or "").strip().lower()
    user = session.exec(select(User).where(func.lower(User.email) == address)).first() if address else None
    if user is None:
        raise AuthenticationFailed(f"No LeadLoop account uses the email {address or '—'}.",
                                   key="auth.sso_unknown", email=address or "—")
    if not user.active:
        raise AuthenticationFailed(
            "This account is deactivated. Ask an admin to reactivate it.", key="auth.deactivated"
        )
    user.last_login_at = now
    session.add(user)
    audit.record(session, actor_id=user.id, action="login.sso", entity="user", entity_id=user.id, now=now)
    session.commit()
    return actor_for(session, user)


def actor_for(session: Session, user: User) -> Actor:
    team: tuple[int, ...] = ()
    if user.role in (Role.MANAGER, Role.ADMIN):
        team = tuple(session.exec(select(User.id).where(User.manager_id == user.id)).all())  # type: ignore[arg-type]
    return Actor.of(user, team)


def actor_by_username(session: Session, username: str) -> Actor:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"Not found: user {username}.", what=username)
    return actor_for(session, user)


def create_user(
    session: Session,
    *,
    actor: Actor,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    email: str | None = None,
    manager_id: int | None = None,
    territories: list[str] | None = None,
    industries: list[str] | None = None,
    product_lines: list[str] | None = None,
    language: str = "zh",
) -> User:
    require(actor, "manage_users")
    username = username.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{2,64}", username):
        raise ValidationError(
            "A username has 2–64 letters, digits, dots, dashes or underscores.", key="auth.username_invalid"
        )
    if role not in set(Role):
        raise ValidationError(f"Unknown role: {role}.", key="auth.role_invalid", role=role)
    if session.exec(select(User).where(func.lower(User.username) == username.lower())).first():
        raise ValidationError(f"The username {username} is taken.", key="auth.username_taken", username=username)
    check_password_policy(password)
    user = User(
        username=username,
        display_name=display_name or username,
        email=email,
        role=role,
        password_hash=hash_password(password),
        manager_id=manager_id,
        territories=territories or [],
        industries=industries or [],
        product_lines=product_lines or [],
        language=language,
        password_changed_at=utcnow(),
    )
    session.add(user)
    session.flush()
    audit.record(session, actor_id=actor.id or None, action="user.create", entity="user", entity_id=user.id,
                 detail={"username": username, "role": role})
    return user


def set_password(session: Session, *, actor: Actor, user_id: int, new_password: str) -> None:
    """An admin resets anyone's password; a user may change their own. Unlocks the account."""
    if actor.id != user_id:
        require(actor, "manage_users")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"Not found: user {user_id}.", what=str(user_id))
    check_password_policy(new_password)
    user.password_hash = hash_password(new_password)
    user.failed_logins = 0
    user.locked_until = None
    user.password_changed_at = utcnow()
    session.add(user)
    audit.record(session, actor_id=actor.id or None, action="user.password_reset", entity="user", entity_id=user_id)


def update_user(session: Session, *, actor: Actor, user_id: int, **changes: object) -> User:
    require(actor, "manage_users")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"Not found: user {user_id}.", what=str(user_id))
    allowed = {"display_name", "email", "role", "active", "manager_id", "territories", "industries",
               "product_lines", "capacity", "out_of_office", "language", "employee_code"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(f"Cannot change {', '.join(sorted(unknown))}.", key="auth.field_invalid")
    if "role" in changes and changes["role"] not in set(Role):
        raise ValidationError(f"Unknown role: {changes['role']}.", key="auth.role_invalid", role=changes["role"])
    if user.id == actor.id and changes.get("active") is False:
        raise ValidationError("You cannot deactivate your own account.", key="auth.self_deactivate")
    for name, value in changes.items():
        setattr(user, name, value)
    session.add(user)
    audit.record(session, actor_id=actor.id or None, action="user.update", entity="user", entity_id=user_id,
                 detail={k: v for k, v in changes.items()})
    return user


def set_language(session: Session, *, actor: Actor, language: str) -> None:
    """Each user keeps their own interface language."""
    user = session.get(User, actor.id)
    if user is not None:
        user.language = language
        session.add(user)


USER_COLUMNS = ["id", "username", "display_name", "role", "email", "active", "manager", "territories",
                "industries", "product_lines", "capacity", "out_of_office", "employee_code", "last_login_at",
                "locked_until"]


def list_users(session: Session, *, actor: Actor) -> list[dict[str, object]]:
    """Every account with its manager's name (never the password hash)."""
    require(actor, "manage_users")
    users = session.exec(select(User).order_by(User.id)).all()
    names = {u.id: u.display_name for u in users}
    return [
        {
            **{name: getattr(u, name) for name in USER_COLUMNS if hasattr(u, name)},
            "manager": names.get(u.manager_id) if u.manager_id else None,
        }
        for u in users
    ]


def actor_is_active(session: Session, user_id: int) -> bool:
    """Whether a signed-in user may go on (the account still exists and is active)."""
    return bool(session.scalar(select(User.active).where(User.id == user_id)))
