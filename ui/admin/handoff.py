"""Admin → MQL handoff: marketing promotes leads to MQL by hand (they are routed at once), or sends leads back
to nurture / disqualifies them. Leads waiting in a rep's inbox are left to the rep."""

from __future__ import annotations

import streamlit as st

from core.auth import Actor
from core.clock import utcnow
from core.errors import LeadLoopError
from core.journeys import search_leads
from core.lifecycle import disqualify, promote_to_mql, recycle
from ui.common import db_session, for_display, number, show_error, tr
from ui.grid import show_grid

PERMISSION = "promote_mql"


def render(actor: Actor) -> None:
    st.caption(tr("handoff.admin.help"))
    query = st.text_input(tr("handoff.admin.search"), key="handoff_query", placeholder=tr("handoff.admin.search_hint"))
    if not query.strip():
        return
    with db_session() as session:
        found = search_leads(session=session, actor=actor, query=query, limit=50)
    if found.empty:
        st.info(tr("handoff.admin.no_match"))
        return
    chosen = show_grid(for_display(found, values={"stage": "stage", "status": "lead_status"},
                                   columns=["name", "company", "title", "stage", "grade", "engagement_score", "owner",
                                            "channel"]),
                       key="handoff_results", selection="multiple", height=300)
    ids = found.loc[chosen.index, "id"].astype(int).tolist() if not chosen.empty else []
    st.caption(tr("handoff.admin.selected", n=number(len(ids))))
    with st.form("handoff_form_actions"):
        reason = st.text_input(tr("handoff.admin.reason"), key="handoff_reason")
        promote, back, out = st.columns(3)
        do_promote = promote.form_submit_button(tr("handoff.admin.promote"), type="primary", width="stretch",
                                                disabled=not ids)
        do_recycle = back.form_submit_button(tr("handoff.admin.recycle"), width="stretch", disabled=not ids)
        do_disqualify = out.form_submit_button(tr("handoff.admin.disqualify"), width="stretch", disabled=not ids)
    if not (do_promote or do_recycle or do_disqualify):
        return
    try:
        with db_session() as session:
            if do_promote:
                report = promote_to_mql(session=session, lead_ids=ids, now=utcnow(), actor=actor, reason=reason)
                message = tr("handoff.admin.promoted", promoted=number(len(report.promoted)),
                             routed=number(len(report.routed)), notified=number(len(report.owner_notified)),
                             waiting=number(len(report.unrouted)), skipped=number(len(report.skipped)))
            elif do_recycle:
                moved = recycle(session=session, actor=actor, lead_ids=ids, now=utcnow(), reason=reason)
                message = tr("handoff.admin.moved", n=number(len(moved)), total=number(len(ids)))
            else:
                moved = disqualify(session=session, actor=actor, lead_ids=ids, now=utcnow(), reason=reason)
                message = tr("handoff.admin.moved", n=number(len(moved)), total=number(len(ids)))
    except LeadLoopError as error:
        show_error(error)
        return
    st.success(message, icon=":material/check_circle:")
