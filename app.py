"""LeadLoop console: page config, database check, login gate and the role-based page map.

Run with ``streamlit run app.py``. The database comes from ``DATABASE_URL`` (default: embedded SQLite in
``data/leadloop.db``); on first start the default database is migrated and filled with demo data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import streamlit as st
from streamlit.errors import StreamlitAPIException

from core.auth import Actor, actor_is_active, authenticate, authenticate_sso, set_language
from core.clock import utcnow
from core.errors import AuthenticationFailed, LeadLoopError
from core.i18n import LANGUAGES, normalize_language, t
from core.settings import get_setting
from core.unsubscribe import unsubscribe
from db.engine import (
    DatabaseUnavailableError,
    check_connection,
    database_url,
    get_engine,
    is_default_database,
)
from db.migrate import upgrade_to_head
from seed.demo import database_is_empty, seed_demo
from ui.common import db_session, lang, show_flash, tr
from ui.navigation import SECTIONS, pages_for


@dataclass(frozen=True)
class Boot:
    url: str
    demo_seeded: bool


@st.cache_resource(show_spinner=False)
def boot(url: str) -> Boot:
    """Once per process and database: reach it, migrate it, and seed the embedded demo database when empty.

    A database configured through DATABASE_URL is never seeded here: demo rows only go where nobody
    configured anything, or where someone runs ``python -m seed`` on purpose.
    """
    engine = get_engine(url)
    check_connection(engine)
    upgrade_to_head(engine)
    seeded = False
    if is_default_database(url) and database_is_empty(engine):
        seed_demo(engine)
        seeded = True
    return Boot(url=url, demo_seeded=seeded)


@st.cache_resource(show_spinner=False)
def start_scheduler(url: str) -> bool:
    """The in-process heartbeat, once per process (core.scheduler also guards with a lock); off with
    LEADLOOP_SCHEDULER=off when ``python -m core.scheduler`` runs as its own worker."""
    from core.scheduler import start_in_process

    return start_in_process(get_engine(url)) is not None


def _browser_language() -> str:
    try:
        return normalize_language(st.context.locale)
    except Exception:  # noqa: BLE001 - not every front end reports a locale
        return normalize_language(None)


def sso_configured() -> bool:
    """Single sign-on is on when ``.streamlit/secrets.toml`` has an ``[auth]`` section (Streamlit's OIDC)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all: no single sign-on
        return False


def _sso_signed_in() -> bool:
    return sso_configured() and bool(st.user.get("is_logged_in"))


def _logout(message_key: str | None = None) -> None:
    for key in list(st.session_state.keys()):
        if key != "lang":  # the interface language outlives the login
            del st.session_state[key]
    if message_key:
        st.session_state["login_notice"] = message_key
    if _sso_signed_in():
        st.logout()  # otherwise the provider's cookie would sign the user straight back in


def _sign_in_with_sso() -> None:
    """Map the identity the OIDC provider returned to a LeadLoop user by email; the user's role applies."""
    try:
        with db_session() as session:
            actor = authenticate_sso(session, email=st.user.get("email"))
    except AuthenticationFailed as error:
        st.session_state["sso_error"] = error.localized(lang())
        return
    st.session_state["actor"] = actor
    st.session_state["login_at"] = utcnow()
    st.session_state["lang"] = actor.language


def login_page() -> None:
    st.title(tr("login.title"))
    st.caption(tr("login.subtitle"))
    notice = st.session_state.pop("login_notice", None)
    if notice:
        st.info(tr(notice))
    if sso_configured():
        sso_error = st.session_state.get("sso_error")
        if sso_error:
            st.error(sso_error)
            if st.button(tr("login.sso_other"), key="sso_logout"):
                del st.session_state["sso_error"]
                st.logout()
        elif st.button(tr("login.sso"), key="sso_login", type="primary", icon=":material/key:"):
            st.login()
        st.caption(tr("login.or_password"))
    with st.form("login", clear_on_submit=False):
        username = st.text_input(tr("login.username"), key="login_username")
        password = st.text_input(tr("login.password"), type="password", key="login_password")
        submitted = st.form_submit_button(tr("login.submit"), type="primary")
    if submitted:
        if not username or not password:
            st.error(tr("login.missing"))
            return
        try:
            with db_session() as session:
                actor = authenticate(session, username=username, password=password)
        except AuthenticationFailed as error:
            st.error(error.localized(lang()))
            return
        st.session_state["actor"] = actor
        st.session_state["login_at"] = utcnow()
        st.session_state["lang"] = actor.language
        st.rerun()
    if st.session_state.get("demo_database"):
        st.caption(tr("login.demo_hint"))


def unsubscribe_page() -> None:
    """Where an email's unsubscribe link lands: no login, one sentence, and the lead receives no more mail."""
    token = str(st.query_params.get("unsubscribe", ""))
    st.title(tr("unsubscribe.title"))
    with db_session() as session:
        honoured = unsubscribe(session=session, token=token, now=utcnow())
    if honoured:
        st.success(tr("unsubscribe.done"), icon=":material/mark_email_read:")
    else:
        st.error(tr("unsubscribe.invalid"))


def _session_still_valid() -> bool:
    """Logins expire after the configured hours; a deactivated account is signed out on its next click."""
    actor = st.session_state["actor"]
    with db_session() as session:
        hours = get_setting(session, "security")["session_hours"]
        active = actor_is_active(session, actor.id)
    if (utcnow() - st.session_state["login_at"]).total_seconds() > hours * 3600:
        _logout("login.expired")
        return False
    if not active:
        _logout("login.deactivated")
        return False
    return True


def _keep_choices_across_languages() -> None:
    """Choice widgets (selectbox, radio, multiselect…) hold the *text* of the chosen option, which a language
    switch changes: left alone they would show the old language's text, or nothing. Setting each kept value
    again, as a value, makes the next run show it in the new language. Widgets that cannot be set (buttons,
    uploads, editors) are left as they are."""
    for key in list(st.session_state.keys()):
        if key == "language_switch":
            continue
        try:
            value = st.session_state[key]
        except (StreamlitAPIException, KeyError):
            continue
        # Choice values are plain strings, numbers, dates or lists of them; booleans (buttons, checkboxes) and
        # None read the same in any language, and other widgets' values (uploads, editors) cannot be set.
        if isinstance(value, bool) or not isinstance(value, str | int | float | list | tuple | date):
            continue
        st.session_state[key] = value


def sidebar(actor: Actor) -> None:
    with st.sidebar:
        st.markdown(f"**{actor.display_name}** · {tr('role.' + actor.role)}")
        if st.session_state.get("demo_database"):
            st.caption(tr("shell.demo_badge"))
        choices = list(LANGUAGES)
        chosen = st.selectbox(
            tr("shell.language"), choices, index=choices.index(lang()), format_func=LANGUAGES.get,
            key="language_switch",
        )
        if chosen != lang():
            st.session_state["lang"] = chosen
            _keep_choices_across_languages()
            try:
                with db_session() as session:
                    set_language(session, actor=actor, language=chosen)
            except LeadLoopError:
                pass  # the choice still applies to this browser session
            st.rerun()
        if st.button(tr("shell.logout"), key="logout", icon=":material/logout:"):
            _logout("login.logged_out")
            st.rerun()


def main() -> None:
    st.set_page_config(page_title="LeadLoop", page_icon=":material/all_inclusive:", layout="wide")
    if "lang" not in st.session_state:
        st.session_state["lang"] = _browser_language()
    url = database_url()
    try:
        booted = boot(url)
    except DatabaseUnavailableError as error:
        st.error(str(error))
        st.stop()
    st.session_state["demo_database"] = is_default_database(url)
    start_scheduler(url)
    if booted.demo_seeded and not st.session_state.get("demo_notice_shown"):
        st.session_state["demo_notice_shown"] = True
        st.toast(t("shell.demo_seeded", lang()))

    if "unsubscribe" in st.query_params and "actor" not in st.session_state:
        st.navigation([st.Page(unsubscribe_page, title=tr("unsubscribe.title"), icon=":material/unsubscribe:")],
                      position="hidden").run()
        return
    if "actor" in st.session_state and not _session_still_valid():
        st.rerun()
    if "actor" not in st.session_state and "sso_error" not in st.session_state and _sso_signed_in():
        _sign_in_with_sso()
    actor = st.session_state.get("actor")
    if actor is None:
        st.navigation([st.Page(login_page, title=tr("login.title"), icon=":material/login:")],
                      position="hidden").run()
        return

    sections: dict[str, list] = {}
    for spec in pages_for(actor):
        page = st.Page(spec.path, title=tr(f"nav.{spec.key}"), icon=spec.icon, default=spec.default,
                       url_path=spec.url_path)
        sections.setdefault(tr(f"nav.section.{spec.section}"), []).append(page)
    ordered = {tr(f"nav.section.{s}"): sections[tr(f"nav.section.{s}")]
               for s in SECTIONS if tr(f"nav.section.{s}") in sections}
    navigation = st.navigation(ordered)
    sidebar(actor)
    show_flash()
    navigation.run()


main()
