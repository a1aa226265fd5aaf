"""Admin: users, channels, campaigns, costs, routing, MQL handoff, messaging, dedup thresholds and the audit log — each tab only for roles that may use it."""

from __future__ import annotations

import streamlit as st

from ui.admin import audit, campaigns, channels, costs, dedup, handoff, messaging, names, routing, users
from ui.common import require_permission, tr

# Tab key → module with PERMISSION and render(actor), in display order.
TABS = {"users": users, "channels": channels, "campaigns": campaigns, "names": names, "costs": costs,
        "routing": routing, "handoff": handoff, "messaging": messaging, "dedup": dedup, "audit": audit}

actor = require_permission("admin")
st.title(tr("admin.title"))
visible = {key: module for key, module in TABS.items() if actor.can(module.PERMISSION)}
if not visible:
    st.info(tr("admin.nothing"))
    st.stop()
for tab, module in zip(st.tabs([tr(f"admin.tab.{key}") for key in visible]), visible.values(), strict=True):
    with tab:
        module.render(actor)
