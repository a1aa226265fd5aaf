"""Admin → Costs: what each channel or campaign cost per month."""

from __future__ import annotations

from datetime import date

import streamlit as st

from core.auth import Actor
from core.channels import list_campaigns, list_channels, list_costs, set_cost
from ui.admin import act
from ui.common import db_session, for_display, money, tr

PERMISSION = "manage_costs"


def render(actor: Actor) -> None:
    with db_session() as session:
        costs = list_costs(session=session)
        channels = list_channels(session=session)
        campaigns = list_campaigns(session=session)
    if not costs.empty:
        by_month = costs.groupby("month", as_index=False)["amount"].sum().sort_values("month", ascending=False)
        st.caption(tr("admin.costs.latest_month", month=str(by_month.iloc[0]["month"])[:7],
                      amount=money(by_month.iloc[0]["amount"])))
    shown = costs.assign(amount=costs["amount"].map(money))
    st.dataframe(for_display(shown, columns=["month", "channel", "campaign", "amount", "note"]),
                 hide_index=True, width="stretch")
    with st.form("set_cost", clear_on_submit=True):
        st.markdown(f"**{tr('admin.costs.set')}**")
        c1, c2, c3, c4 = st.columns(4)
        channel_id = c1.selectbox(tr("col.channel"), channels["id"].tolist(),
                                  format_func=lambda i: channels.set_index("id").loc[i, "name"])
        campaign_id = c2.selectbox(tr("col.campaign"), [None, *campaigns["id"].tolist()],
                                   format_func=lambda i: tr("admin.costs.whole_channel") if i is None
                                   else campaigns.set_index("id").loc[i, "name"])
        month = c3.date_input(tr("col.month"), value=date.today().replace(day=1))
        amount = c4.number_input(tr("col.amount"), min_value=0.0, step=1000.0)
        note = st.text_input(tr("col.note"))
        if st.form_submit_button(tr("admin.costs.set"), type="primary"):
            act(actor, set_cost, "admin.costs.saved", channel_id=int(channel_id), month=month, amount=amount,
                campaign_id=int(campaign_id) if campaign_id is not None else None, note=note)
