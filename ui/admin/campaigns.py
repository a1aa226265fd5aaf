"""Admin → Campaigns: campaigns per channel with their UTM parameters."""

from __future__ import annotations

import streamlit as st

from core.auth import Actor
from core.channels import create_campaign, list_campaigns, list_channels
from ui.admin import act
from ui.common import db_session, for_display, tr

PERMISSION = "manage_channels"


def render(actor: Actor) -> None:
    with db_session() as session:
        campaigns = list_campaigns(session=session)
        channels = list_channels(session=session)
    st.dataframe(
        for_display(campaigns, columns=["name", "channel", "utm_source", "utm_medium", "utm_campaign",
                                        "tracking_code", "product_line", "start_date", "end_date", "budget"]),
        hide_index=True, width="stretch",
    )
    with st.form("create_campaign", clear_on_submit=True):
        st.markdown(f"**{tr('admin.campaigns.create')}**")
        c1, c2, c3 = st.columns(3)
        name = c1.text_input(tr("col.name"))
        channel_id = c2.selectbox(tr("col.channel"), channels["id"].tolist(),
                                  format_func=lambda i: channels.set_index("id").loc[i, "name"])
        product_line = c3.text_input(tr("col.product_line"))
        c4, c5, c6 = st.columns(3)
        utm_source = c4.text_input("utm_source")
        utm_medium = c5.text_input("utm_medium")
        utm_campaign = c6.text_input("utm_campaign")
        c7, c8, c9 = st.columns(3)
        start = c7.date_input(tr("col.start_date"), value=None)
        end = c8.date_input(tr("col.end_date"), value=None)
        budget = c9.number_input(tr("col.budget"), min_value=0.0, value=0.0, step=1000.0)
        if st.form_submit_button(tr("admin.campaigns.create"), type="primary"):
            act(actor, create_campaign, "admin.campaigns.created", name=name, channel_id=int(channel_id),
                utm_source=utm_source, utm_medium=utm_medium, utm_campaign=utm_campaign,
                product_line=product_line, start_date=start, end_date=end, budget=budget or None)
