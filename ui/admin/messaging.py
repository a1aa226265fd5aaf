"""Admin → Messaging: the SMTP server the outbox sends through (the password is never shown) and a test email."""

from __future__ import annotations

import streamlit as st

from core.auth import Actor
from core.clock import utcnow
from core.errors import LeadLoopError
from core.smtp_settings import SECURITY, save_smtp_settings, send_test_email, smtp_settings
from ui.common import db_session, show_error, tr

PERMISSION = "manage_settings"


def render(actor: Actor) -> None:
    with db_session() as session:
        current = smtp_settings(session=session, actor=actor)
    # Cleared after saving: the password never stays in the browser; the other fields reload from the settings.
    with st.form("smtp_form", clear_on_submit=True):
        host = st.text_input(tr("smtp.host"), value=current.get("host", ""), key="smtp_host")
        port = st.number_input(tr("smtp.port"), min_value=1, max_value=65535, value=int(current.get("port") or 587),
                               key="smtp_port")
        security = st.selectbox(tr("smtp.security"), list(SECURITY),
                                index=list(SECURITY).index(current.get("security", "starttls")),
                                format_func=lambda s: tr(f"smtp.security.{s}"), key="smtp_security")
        username = st.text_input(tr("smtp.username"), value=current.get("username", ""), key="smtp_username")
        password = st.text_input(tr("smtp.password"), type="password", value="", key="smtp_password",
                                 help=tr("smtp.password_kept") if current["has_password"] else None)
        sender = st.text_input(tr("smtp.sender"), value=current.get("sender", ""), key="smtp_sender")
        unsubscribe = st.text_input(tr("smtp.unsubscribe_text"), value=current.get("unsubscribe_text", ""),
                                    key="smtp_unsubscribe")
        base_url = st.text_input(tr("smtp.base_url"), value=current.get("base_url", ""), key="smtp_base_url")
        saved = st.form_submit_button(tr("smtp.save"), type="primary")
    if saved:
        try:
            with db_session() as session:
                save_smtp_settings(session=session, actor=actor, now=utcnow(), host=host, port=int(port),
                                   security=security, username=username, password=password or None, sender=sender,
                                   unsubscribe_text=unsubscribe, base_url=base_url)
        except LeadLoopError as error:
            show_error(error)
        else:
            st.success(tr("smtp.saved"), icon=":material/check_circle:")
    with st.form("smtp_test_form"):
        to = st.text_input(tr("smtp.test_to"), key="smtp_test_to")
        test = st.form_submit_button(tr("smtp.test"))
    if test:
        try:
            with db_session() as session:
                send_test_email(session=session, actor=actor, now=utcnow(), to=to)
        except LeadLoopError as error:
            show_error(error)
        else:
            st.success(tr("smtp.test_sent", to=to), icon=":material/mark_email_read:")
