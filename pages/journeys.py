"""Journeys: find a lead by name, pinyin, phone, email or company, then see its profile and timeline."""

from __future__ import annotations

import streamlit as st

from core.errors import LeadLoopError
from core.journeys import TIMELINE_KINDS, lead_profile, search_leads, timeline
from ui.common import (
    db_session,
    export_buttons,
    for_display,
    label,
    number,
    require_permission,
    show_error,
    tr,
)
from ui.grid import show_grid

actor = require_permission("journeys")
st.title(tr("journeys.title"))

query = st.text_input(tr("journeys.search"), placeholder=tr("journeys.search_hint"), key="journeys_query")
selected_id: int | None = None
if query.strip():
    with db_session() as session:
        results = search_leads(session=session, actor=actor, query=query, limit=50)
    if results.empty:
        st.info(tr("journeys.no_match"))
    else:
        st.caption(tr("journeys.match_count", n=number(len(results))))
        chosen = show_grid(
            for_display(results, values={"stage": "stage", "status": "lead_status"}),
            key="journeys_results", selection="single", height=300,
        )
        if not chosen.empty:
            selected_id = int(results.loc[chosen.index[0], "id"])
        elif len(results) == 1:
            selected_id = int(results.iloc[0]["id"])
elif "lead" in st.query_params:
    try:
        selected_id = int(st.query_params["lead"])
    except ValueError:
        selected_id = None

if selected_id is not None:
    kinds = st.pills(tr("journeys.kinds"), TIMELINE_KINDS, default=list(TIMELINE_KINDS),
                     selection_mode="multi", format_func=lambda k: label("timeline_kind", k), key="journeys_kinds")
    try:
        with db_session() as session:
            profile = lead_profile(session=session, actor=actor, lead_id=selected_id)
            events = timeline(session=session, actor=actor, lead_id=selected_id, kinds=tuple(kinds or ()))
    except LeadLoopError as error:
        show_error(error)
        st.stop()
    st.divider()
    st.subheader(f"{profile['name'] or '—'} · {profile['company'] or '—'}")
    left, middle, right = st.columns(3)
    left.markdown(
        f"**{tr('col.title')}**: {profile['title'] or '—'}  \n"
        f"**{tr('col.phone')}**: {profile['phone'] or '—'}  \n"
        f"**{tr('col.email')}**: {profile['email'] or '—'}  \n"
        f"**{tr('col.wechat_id')}**: {profile['wechat_id'] or '—'}"
    )
    middle.markdown(
        f"**{tr('col.stage')}**: {label('stage', profile['stage'])}  \n"
        f"**{tr('col.owner')}**: {profile['owner'] or '—'}  \n"
        f"**{tr('col.channel')}**: {profile['channel'] or '—'} / {profile['campaign'] or '—'}  \n"
        f"**{tr('col.account')}**: {profile['account'] or '—'}"
    )
    right.markdown(
        f"**{tr('col.grade')}**: {profile['grade'] or '—'}  \n"
        f"**{tr('col.fit_score')}**: {number(profile['fit_score'])}  \n"
        f"**{tr('col.engagement_score')}**: {number(profile['engagement_score'])}  \n"
        f"**{tr('col.tags')}**: {'、'.join(profile['tags']) or '—'}"
    )
    if profile.get("followup_owner"):
        st.warning(tr("journeys.in_followup", owner=profile["followup_owner"]))
    st.markdown(f"#### {tr('journeys.timeline')}")
    events["what"] = [
        label("touchpoint", w) if k == "touchpoint" else label("stage", w) if k == "stage"
        else label("assignment_status", w) if k == "assignment" else str(w)
        for k, w in zip(events["kind"], events["what"], strict=True)
    ]
    shown = for_display(events, values={"kind": "timeline_kind"}, times=("at",),
                        columns=["at", "kind", "what", "detail", "channel"])
    st.dataframe(shown, hide_index=True, width="stretch", height=420)
    export_buttons(shown, filename=f"lead-{selected_id}-timeline", key="timeline_export")
