"""MQL inbox: the MQLs routed to this rep (a manager: the team), most urgent first."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.clock import utcnow
from core.routing import inbox
from ui.common import db_session, for_display, number, require_permission, tr

actor = require_permission("inbox")
st.title(tr("inbox.title"))

with db_session() as session:
    pending = inbox(session=session, actor=actor, now=utcnow(), limit=200)
st.metric(tr("inbox.waiting"), number(len(pending)))
if pending.empty:
    st.info(tr("inbox.empty"))
else:
    pending["sla"] = [
        tr("inbox.sla_breached") if breached or (pd.notna(left) and left < 0)
        else tr("inbox.sla_left", hours=number(left, 1)) if pd.notna(left) else "—"
        for left, breached in zip(pending["sla_hours_left"], pending["breached"], strict=True)
    ]
    columns = ["name", "company", "title", "grade", "engagement_score", "channel", "sla", "assigned_at"]
    if actor.role != "sales":
        columns.insert(6, "rep")
    st.dataframe(for_display(pending, times=("assigned_at",), columns=columns), hide_index=True,
                 width="stretch")
