"""Rules: the tag, fit, engagement, decay and MQL rules marketers write."""

from __future__ import annotations

import streamlit as st

from core.rules import list_rules
from ui.common import db_session, for_display, label, require_permission, tr

actor = require_permission("rules")
st.title(tr("rules.title"))

with db_session() as session:
    rules = list_rules(session=session)
if rules.empty:
    st.info(tr("rules.none"))
for kind, group in rules.groupby("kind", sort=False):
    st.subheader(label("rule_kind", kind))
    st.dataframe(
        for_display(group, times=("updated_at",),
                    columns=["name", "text", "points", "active", "version", "author", "updated_at"]),
        hide_index=True, width="stretch",
    )
