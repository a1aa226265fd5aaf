"""Admin → Channels: where leads come from."""

from __future__ import annotations

import streamlit as st

from core.auth import Actor
from core.channels import CHANNEL_KINDS, create_channel, list_channels
from ui.admin import act
from ui.common import db_session, for_display, label, tr

PERMISSION = "manage_channels"


def render(actor: Actor) -> None:
    with db_session() as session:
        channels = list_channels(session=session)
    st.dataframe(for_display(channels, values={"kind": "channel_kind"},
                             columns=["name", "kind", "description", "active", "leads"]),
                 hide_index=True, width="stretch")
    with st.form("create_channel", clear_on_submit=True):
        st.markdown(f"**{tr('admin.channels.create')}**")
        c1, c2 = st.columns(2)
        name = c1.text_input(tr("col.name"))
        kind = c2.selectbox(tr("col.kind"), CHANNEL_KINDS, format_func=lambda k: label("channel_kind", k))
        description = st.text_input(tr("col.description"))
        if st.form_submit_button(tr("admin.channels.create"), type="primary"):
            act(actor, create_channel, "admin.channels.created", name=name, kind=kind, description=description)
