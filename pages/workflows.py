"""Workflows: nurture automations and how many leads are in each."""

from __future__ import annotations

import streamlit as st

from core.workflows import list_workflows
from ui.common import db_session, for_display, require_permission, tr

actor = require_permission("workflows")
st.title(tr("workflows.title"))

with db_session() as session:
    workflows = list_workflows(session=session)
if workflows.empty:
    st.info(tr("workflows.none"))
else:
    workflows["trigger"] = workflows["trigger"].map(lambda t: tr(f"trigger.{(t or {}).get('type', 'manual')}"))
    st.dataframe(
        for_display(workflows, values={"status": "workflow_status"}, times=("updated_at",),
                    columns=["name", "status", "trigger", "steps", "in_progress", "completed", "exited", "failed",
                             "version", "updated_at"]),
        hide_index=True, width="stretch",
    )
