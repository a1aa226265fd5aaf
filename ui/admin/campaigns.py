"""Admin → Campaigns: campaigns per channel with their UTM parameters; tracking links and QR codes."""

from __future__ import annotations

import streamlit as st

from core.auth import Actor
from core.channels import create_campaign, list_campaigns, list_channels
from core.clock import utcnow
from core.tracking import (
    create_employee_links,
    create_tracking_link,
    list_employees,
    list_tracking_links,
    qr_png,
)
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
    _tracking_links(actor, campaigns)


def _tracking_links(actor: Actor, campaigns) -> None:  # noqa: ANN001 - a DataFrame of campaigns
    """Tracking links per campaign and per employee, with their QR codes for posters and staff shares."""
    st.markdown(f"#### {tr('admin.tracking.title')}")
    with db_session() as session:
        links = list_tracking_links(session=session)
        reps = list_employees(session=session)
    if links.empty:
        st.caption(tr("admin.tracking.none"))
    else:
        st.dataframe(for_display(links, columns=["code", "campaign", "employee", "label", "url", "leads"]),
                     hide_index=True, width="stretch")
        labels = {int(r.id): f"{r.code} · {r.campaign} · {r.employee or r.label or ''}" for r in links.itertuples()}
        picked = st.selectbox(tr("admin.tracking.pick"), list(labels), format_func=labels.get,
                              key="tracking_qr_pick")
        url = links.set_index("id").loc[picked, "url"]
        code = links.set_index("id").loc[picked, "code"]
        left, right = st.columns([1, 3])
        png = qr_png(url)
        left.image(png, width=160)
        right.code(url, language=None)
        right.download_button(tr("admin.tracking.download_qr"), png, file_name=f"qr-{code}.png", mime="image/png",
                              key="tracking_qr_download", icon=":material/qr_code_2:")
    if campaigns.empty:
        return
    campaign_names = dict(zip(campaigns["id"].astype(int), campaigns["name"], strict=True))
    employees = {None: tr("admin.tracking.no_employee"), **dict(reps)}
    with st.form("create_tracking_link", clear_on_submit=True):
        st.markdown(f"**{tr('admin.tracking.create')}**")
        c1, c2 = st.columns(2)
        campaign_id = c1.selectbox(tr("admin.tracking.campaign"), list(campaign_names), format_func=campaign_names.get)
        employee_id = c2.selectbox(tr("admin.tracking.employee"), list(employees), format_func=employees.get)
        c3, c4 = st.columns(2)
        target_url = c3.text_input(tr("admin.tracking.target_url"), placeholder="https://")
        link_label = c4.text_input(tr("admin.tracking.label"))
        every_rep = st.checkbox(tr("admin.tracking.per_employee"))
        if st.form_submit_button(tr("admin.tracking.create"), type="primary"):
            if every_rep:
                act(actor, create_employee_links, "admin.tracking.created", campaign_id=int(campaign_id),
                    target_url=target_url, now=utcnow())
            else:
                act(actor, create_tracking_link, "admin.tracking.created", campaign_id=int(campaign_id),
                    employee_id=employee_id, target_url=target_url, label=link_label, now=utcnow())
