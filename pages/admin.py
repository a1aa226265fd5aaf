"""Admin: users, channels, campaigns, monthly costs and the audit log — each tab only for roles that may use it."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from core import audit
from core.auth import create_user, list_users, require, set_password, update_user
from core.channels import (
    CHANNEL_KINDS,
    create_campaign,
    create_channel,
    list_campaigns,
    list_channels,
    list_costs,
    set_cost,
)
from db.models import Role
from ui.common import db_session, for_display, label, money, require_permission, run_action, tr

actor = require_permission("admin")
st.title(tr("admin.title"))

TABS = [
    ("users", "manage_users"),
    ("channels", "manage_channels"),
    ("campaigns", "manage_channels"),
    ("costs", "manage_costs"),
    ("audit", "audit"),
]
visible = [(name, permission) for name, permission in TABS if actor.can(permission)]
if not visible:
    st.info(tr("admin.nothing"))
    st.stop()
tabs = dict(zip([n for n, _ in visible], st.tabs([tr(f"admin.tab.{n}") for n, _ in visible]), strict=True))


def act(func, success_key: str, rerun: bool = True, **kwargs) -> None:  # noqa: ANN001 - a core function
    run_action(func, actor=actor, success=tr(success_key), rerun=rerun, **kwargs)


if "users" in tabs:
    with tabs["users"]:
        with db_session() as session:
            users = pd.DataFrame(list_users(session, actor=actor))
        st.dataframe(
            for_display(users, values={"role": "role"}, times=("last_login_at", "locked_until"),
                        columns=["username", "display_name", "role", "email", "active", "manager",
                                 "territories", "industries", "product_lines", "capacity", "out_of_office",
                                 "last_login_at", "locked_until"]),
            hide_index=True, width="stretch",
        )
        managers = users[users["role"].isin([Role.MANAGER, Role.ADMIN])]
        with st.form("create_user", clear_on_submit=True):
            st.markdown(f"**{tr('admin.users.create')}**")
            c1, c2, c3 = st.columns(3)
            username = c1.text_input(tr("col.username"))
            display_name = c2.text_input(tr("col.display_name"))
            role = c3.selectbox(tr("col.role"), [r.value for r in Role], format_func=lambda r: label("role", r))
            c4, c5, c6 = st.columns(3)
            email = c4.text_input(tr("col.email"))
            password = c5.text_input(tr("admin.users.password"), type="password",
                                     help=tr("admin.users.password_help"))
            manager = c6.selectbox(tr("col.manager"), [None, *managers["id"].tolist()],
                                   format_func=lambda i: "—" if i is None else
                                   managers.set_index("id").loc[i, "display_name"])
            territories = st.text_input(tr("col.territories"), help=tr("admin.users.list_help"))
            industries = st.text_input(tr("col.industries"), help=tr("admin.users.list_help"))
            product_lines = st.text_input(tr("col.product_lines"), help=tr("admin.users.list_help"))
            if st.form_submit_button(tr("admin.users.create"), type="primary"):
                split = lambda text: [p.strip() for p in text.replace("，", ",").split(",") if p.strip()]  # noqa: E731
                act(create_user, "admin.users.created", username=username, password=password, role=role,
                    display_name=display_name, email=email or None,
                    manager_id=int(manager) if manager is not None else None,
                    territories=split(territories), industries=split(industries),
                    product_lines=split(product_lines))
        with st.form("edit_user"):
            st.markdown(f"**{tr('admin.users.edit')}**")
            c1, c2, c3 = st.columns(3)
            user_id = c1.selectbox(tr("col.username"), users["id"].tolist(),
                                   format_func=lambda i: users.set_index("id").loc[i, "username"])
            new_password = c2.text_input(tr("admin.users.new_password"), type="password")
            active = c3.selectbox(tr("col.active"), [None, True, False],
                                  format_func=lambda v: "—" if v is None else tr(f"common.{str(v).lower()}"))
            if st.form_submit_button(tr("admin.users.save")):
                if new_password:
                    act(set_password, "admin.users.password_reset", user_id=int(user_id),
                        new_password=new_password, rerun=active is None)
                if active is not None:
                    act(update_user, "admin.users.updated", user_id=int(user_id), active=active)

if "channels" in tabs:
    with tabs["channels"]:
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
                act(create_channel, "admin.channels.created", name=name, kind=kind, description=description)

if "campaigns" in tabs:
    with tabs["campaigns"]:
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
                act(create_campaign, "admin.campaigns.created", name=name, channel_id=int(channel_id),
                    utm_source=utm_source, utm_medium=utm_medium, utm_campaign=utm_campaign,
                    product_line=product_line, start_date=start, end_date=end, budget=budget or None)

if "costs" in tabs:
    with tabs["costs"]:
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
                act(set_cost, "admin.costs.saved", channel_id=int(channel_id), month=month, amount=amount,
                    campaign_id=int(campaign_id) if campaign_id is not None else None, note=note)

if "audit" in tabs:
    with tabs["audit"]:
        require(actor, "audit")
        with db_session() as session:
            entries = pd.DataFrame(audit.list_entries(session, limit=300))
        if entries.empty:
            st.info(tr("admin.audit.empty"))
        else:
            entries["detail"] = entries["detail"].map(lambda d: ", ".join(f"{k}={v}" for k, v in (d or {}).items()))
            st.dataframe(for_display(entries, times=("at",)), hide_index=True, width="stretch")
