"""Admin → Audit log: who changed what."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import audit
from core.auth import Actor, require
from ui.common import db_session, for_display, tr

PERMISSION = "audit"


def render(actor: Actor) -> None:
    require(actor, "audit")
    with db_session() as session:
        entries = pd.DataFrame(audit.list_entries(session, actor=actor, limit=300))
    if entries.empty:
        st.info(tr("admin.audit.empty"))
    else:
        entries["detail"] = entries["detail"].map(lambda d: ", ".join(f"{k}={v}" for k, v in (d or {}).items()))
        st.dataframe(for_display(entries, times=("at",)), hide_index=True, width="stretch")
