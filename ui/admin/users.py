"""Admin → Users: accounts, roles, routing attributes, password resets and deactivation."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.auth import Actor, create_user, list_users, set_password, update_user
from db.models import Role
from ui.admin import act
from ui.common import db_session, for_display, label, tr

PERMISSION = "manage_users"


def render(actor: Actor) -> None:
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
            act(actor, create_user, "admin.users.created", username=username, password=password, role=role,
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
                act(actor, set_password, "admin.users.password_reset", user_id=int(user_id),
                    new_password=new_password, rerun=active is None)
            if active is not None:
                act(actor, update_user, "admin.users.updated", user_id=int(user_id), active=active)
