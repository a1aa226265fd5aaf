"""What every page needs: the engine, a session, the logged-in actor, translation and error display."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from core import display_names
from core.auth import Actor
from core.clock import TEAM_TIMEZONE
from core.errors import DatabaseBusy, LeadLoopError, PermissionDenied
from core.export import to_csv_bytes, to_xlsx_bytes
from core.i18n import fmt_date, fmt_money, fmt_number, fmt_percent, t
from db.busy import is_busy
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


def require_permission(*actions: str) -> Actor:
    """Stop the page with a clear message unless the actor's role allows one of ``actions``."""
    actor = current_actor()
    if not any(actor.can(action) for action in actions):
        show_error(PermissionDenied(role=actor.role, action=actions[0]))
        st.stop()
    return actor


def run_action(func: Any, *args: Any, success: str | None = None, rerun: bool = True, **kwargs: Any) -> Any:
    """Call a core function in its own transaction and say what happened.

    An error is shown in the user's language and nothing is committed. On success the message is kept for
    the next run and the page reruns, so every table on it shows the new state.
    """
    try:
        with db_session() as session:
            result = func(*args, session=session, **kwargs)
    except LeadLoopError as error:
        show_error(error)
        return None
    except OperationalError as error:
        if not is_busy(error):
            raise
        show_error(DatabaseBusy())  # rolled back: nothing half-saved, and trying again works
        return None
    if success:
        st.session_state["flash"] = success
    if rerun:
        st.rerun()
    return result


def show_flash() -> None:
    """The success message of the action that caused this run, once.

    The slot is there on every run, message or not, so everything below keeps its place in the page: Streamlit
    identifies elements by position, and a shifted ``st.tabs`` would jump back to its first tab.
    """
    slot = st.empty()
    message = st.session_state.pop("flash", None)
    if message:
        slot.success(message, icon=":material/check_circle:")


def label(prefix: str, value: Any) -> str:
    """The translated name of an enumerated value (``label("stage", "mql")``); "—" for nothing."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return "—"
    return tr(f"{prefix}.{value}")


# Columns whose values are names a team gave its things, and the kind of name (core.display_names).
NAME_COLUMNS: dict[str, str] = {
    "channel": "channel", "channel_name": "channel", "campaign": "campaign", "campaign_name": "campaign",
    "product_line": "product_line", "tags": "tag", "tag": "tag", "groups": "group", "group": "group",
    "rule": "rule", "rule_name": "rule", "workflow": "workflow", "workflow_name": "workflow",
    "routing_rule": "routing_rule", "target_lists": "target_list",
}


@st.cache_data(ttl=30, show_spinner=False)
def _name_labels(database: str, language: str) -> display_names.Labels:
    # ``database`` only keys the cache: one process may serve several databases (tests, a second team).
    with Session(engine()) as session:
        return display_names.labels(session, language)


def all_names() -> display_names.Labels:
    """Every label in the user's language, by kind of name."""
    return _name_labels(engine().url.render_as_string(hide_password=True), lang())


def names(kind: str) -> dict[str, str]:
    """Labels of one kind of name in the user's language (``names("channel")["展会"] == "Trade shows"``)."""
    return all_names().get(kind, {})


def shown_name(kind: str, value: Any) -> Any:
    """A channel, campaign, tag, rule… name in the user's language; anything without a label as it is."""
    return display_names.show(value, names(kind))


def shown_source(value: Any) -> Any:
    """A report's source label in the user's language: a channel, or "channel / campaign" at campaign level
    (``core.report_data.campaign_label``)."""
    if not isinstance(value, str):
        return value
    channel, separator, campaign = value.partition(" / ")
    if separator:
        return f"{shown_name('channel', channel)} / {shown_name('campaign', campaign)}"
    return names("channel").get(value) or names("campaign").get(value) or value


def names_changed() -> None:
    """Forget cached labels after an edit, so the editor's own rerun shows them."""
    _name_labels.clear()


def local_time(value: Any) -> str:
    """A stored UTC time as the team's local time, short."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert(TEAM_TIMEZONE).strftime("%Y-%m-%d %H:%M")


def for_display(
    frame: pd.DataFrame,
    *,
    values: dict[str, str] | None = None,
    times: tuple[str, ...] = (),
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """A copy of ``frame`` for people: enumerations translated, times local, headers in the user's language.

    ``values`` maps a column to the catalog prefix of its values (``{"stage": "stage"}``); headers come from
    ``col.<name>`` keys. Columns of channel, campaign, tag… names (``NAME_COLUMNS``) show their labels.
    """
    shown = frame[columns].copy() if columns else frame.copy()
    for column, kind in NAME_COLUMNS.items():
        if column in shown and column not in (values or {}):
            named = display_names.show_series(shown[column], names(kind))
            shown[column] = named.astype(object).where(named.notna(), "—")
    for column, prefix in (values or {}).items():
        if column in shown:
            shown[column] = shown[column].map(lambda v, p=prefix: label(p, v))
    for column in times:
        if column in shown:
            shown[column] = shown[column].map(local_time)
    return shown.rename(columns={c: tr(f"col.{c}") for c in shown.columns})


def export_buttons(frame: pd.DataFrame, *, filename: str, key: str) -> None:
    """CSV and Excel downloads of a table; cells cannot run as formulas (core.export).

    The files are built when the button is clicked, not on every run: an Excel file of a few thousand rows
    takes seconds to write, and most runs of a page download nothing."""
    left, right = st.columns(2)
    left.download_button(tr("common.export_csv"), partial(to_csv_bytes, frame), file_name=f"{filename}.csv",
                         mime="text/csv", key=f"{key}_csv", icon=":material/download:")
    right.download_button(
        tr("common.export_xlsx"), partial(to_xlsx_bytes, frame), file_name=f"{filename}.xlsx",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key=f"{key}_xlsx",
        icon=":material/table_view:",
    )
