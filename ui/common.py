"""What every page needs: the engine, a session, the logged-in actor, translation and error display."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.auth import Actor
from core.errors import LeadLoopError, PermissionDenied
from core.i18n import fmt_date, fmt_money, fmt_number, fmt_percent, t
from db.engine import get_engine


def engine() -> Engine:
    """The process-wide engine (app.py has already checked and migrated it)."""
    return get_engine()


@contextmanager
def db_session() -> Iterator[Session]:
    """One unit of work per user action: commit on success, roll back on error."""
    session = Session(engine(), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def current_actor() -> Actor:
    actor = st.session_state.get("actor")
    if actor is None:  # app.py never routes here without a login; a page run alone stops cleanly
        st.stop()
    return actor


def lang() -> str:
    return st.session_state.get("lang", "zh")


def tr(key: str, **params: Any) -> str:
    """Translate ``key`` into the user's language."""
    return t(key, lang(), **params)


def money(value: float | None) -> str:
    return fmt_money(value, lang())


def number(value: float | None, digits: int = 0) -> str:
    return fmt_number(value, lang(), digits)


def percent(value: float | None, digits: int = 1) -> str:
    return fmt_percent(value, lang(), digits)


def date_text(value: Any) -> str:
    return fmt_date(value, lang())


def show_error(error: Exception) -> None:
    """A person-readable message; never a traceback."""
    if isinstance(error, LeadLoopError):
        st.error(error.localized(lang()))
    else:
        st.error(tr("error.generic", detail=type(error).__name__))


def require_permission(action: str) -> Actor:
    """Stop the page with a clear message when the actor's role may not use it."""
    actor = current_actor()
    if not actor.can(action):
        show_error(PermissionDenied(role=actor.role, action=action))
        st.stop()
    return actor


def run_action(func: Any, *args: Any, success: str | None = None, **kwargs: Any) -> Any:
    """Call a core function in its own transaction; show its error or a success message."""
    try:
        with db_session() as session:
            result = func(*args, session=session, **kwargs)
    except LeadLoopError as error:
        show_error(error)
        return None
    if success:
        st.success(success)
    return result
