"""Home: today's figures, the latest imports and the scheduler's heartbeat."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.clock import utcnow
from core.dashboard import home_figures, scheduler_status
from ui.common import db_session, for_display, local_time, number, require_permission, tr

actor = require_permission("home")
st.title(tr("home.title", name=actor.display_name))

with db_session() as session:
    figures = home_figures(session=session, actor=actor, now=utcnow())

new, waiting, breaches, total = st.columns(4)
new.metric(tr("home.new_leads_today"), number(figures.new_leads_today),
           help=tr("home.new_leads_7d", n=number(figures.new_leads_7d)))
waiting.metric(tr("home.mqls_waiting"), number(figures.mqls_waiting))
breaches.metric(tr("home.sla_breaches"), number(figures.sla_breaches))
total.metric(tr("home.leads_total"), number(figures.leads_total),
             help=tr("home.invalid_total", n=number(figures.invalid_total)))

if actor.can("import"):
    st.subheader(tr("home.recent_imports"))
    if figures.recent_imports.empty:
        st.caption(tr("home.no_imports"))
    else:
        st.dataframe(
            for_display(figures.recent_imports, values={"status": "import_status"}, times=("created_at",),
                        columns=["created_at", "filename", "channel", "status", "row_count", "inserted",
                                 "updated", "invalid"]),
            hide_index=True, width="stretch",
        )


@st.fragment(run_every="30s")
def scheduler_panel() -> None:
    """Refreshes by itself, so the status stays current while the page is open."""
    with db_session() as session:
        status = scheduler_status(session=session, now=utcnow())
    st.subheader(tr("home.scheduler"))
    if status.alive:
        st.success(tr("home.scheduler_alive", holder=status.leader,
                      until=local_time(status.lease_expires_at)), icon=":material/check_circle:")
    elif status.leader:
        st.warning(tr("home.scheduler_stale", holder=status.leader,
                      since=local_time(status.lease_expires_at)), icon=":material/warning:")
    else:
        st.info(tr("home.scheduler_none"), icon=":material/schedule:")
    if status.last_runs:
        rows = [
            {"job": tr(f"job.{run['job']}"), "started_at": local_time(run["started_at"]),
             "ok": tr("home.job_ok") if run["ok"] else tr("home.job_failed"), "error": run.get("error") or ""}
            for run in status.last_runs
        ]
        st.dataframe(for_display(pd.DataFrame(rows)), hide_index=True, width="stretch")


scheduler_panel()
