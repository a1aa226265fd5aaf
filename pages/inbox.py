"""MQL inbox. A rep (often on a phone): their MQLs as cards, most urgent first, accept with one tap or reject
with a reason and a note. A manager: the team's inbox with reassignment, MQLs waiting for a rep, SLA breaches,
rejection reasons by channel and the export of accepted leads for the CRM."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pandas as pd
import plotly.express as px
import streamlit as st

from core.clock import TEAM_TIMEZONE, to_local, utcnow
from core.routing import (
    assign_lead,
    inbox,
    inbox_count,
    lead_history,
    mark_read,
    my_notifications,
    reassign,
    rejections_by_channel,
    sla_summary,
    team_reps,
    waiting_mqls,
)
from core.routing.crm import accepted_export
from db.models import AssignmentStatus
from ui.common import (
    db_session,
    export_buttons,
    for_display,
    label,
    local_time,
    number,
    percent,
    require_permission,
    shown_name,
    tr,
)
from ui.grid import show_grid
from ui.handoff import crm_text, mql_card, routed_text, run_callback, show_inbox_flash

PAGE_SIZE = 20

actor = require_permission("inbox")
st.title(tr("inbox.title"))
show_inbox_flash()
now = utcnow()


def notifications() -> None:
    with db_session() as session:
        notes = my_notifications(session=session, actor=actor, unread_only=True, limit=30)
    if notes.empty:
        return
    with st.expander(tr("inbox.notifications", n=number(len(notes))), icon=":material/notifications:"):
        for note in notes.itertuples(index=False):
            st.markdown(f"**{note.subject}**  \n{note.body}  \n:gray[{local_time(note.created_at)}]")
        st.button(tr("inbox.mark_read"), key="mark_read", width="stretch",
                  on_click=run_callback, args=(mark_read, tr("inbox.marked_read")),
                  kwargs={"actor": actor, "message_ids": notes["id"].astype(int).tolist(), "now": now})


def my_cards(rep_id: int | None) -> None:
    """Pending MQLs as cards, a page at a time, with their history loaded for the whole page at once."""
    limit = st.session_state.setdefault("inbox_limit", PAGE_SIZE)
    with db_session() as session:
        total = inbox_count(session=session, actor=actor, rep_id=rep_id)
        pending = inbox(session=session, actor=actor, now=now, limit=limit, rep_id=rep_id)
        history = lead_history(session=session, actor=actor, lead_ids=pending["lead_id"].astype(int).tolist())
    overdue = int((pending["sla_hours_left"].fillna(1) <= 0).sum()) if not pending.empty else 0
    # One short line instead of big metrics: on a phone the first card must show without scrolling.
    st.markdown(f"**{tr('inbox.waiting')}** {number(total)} · **{tr('inbox.overdue')}** "
                + (f":red[{number(overdue)}]" if overdue else number(overdue)))
    if pending.empty:
        st.info(tr("inbox.empty"))
        return
    for _, row in pending.iterrows():
        mql_card(actor, row, history)
    if total > len(pending):
        if st.button(tr("inbox.more", n=number(total - len(pending))), key="inbox_more", width="stretch"):
            st.session_state["inbox_limit"] = limit + PAGE_SIZE
            st.rerun()


def decided(rep_id: int | None) -> None:
    with db_session() as session:
        done = inbox(session=session, actor=actor, now=now, status=None, limit=100, rep_id=rep_id)
    done = done[done["status"] != AssignmentStatus.PENDING]
    if done.empty:
        st.info(tr("inbox.nothing_decided"))
        return
    done = done.assign(routed_by=done["routed_by"].map(routed_text),
                       reason=done["reason"].map(lambda r: label("reject_reason", r)))
    columns = ["decided_at", "name", "company", "status", "reason", "note", "come_back_at", "stage", "routed_by"]
    if actor.role != "sales":
        columns.insert(3, "rep")
    st.dataframe(for_display(done, values={"status": "assignment_status", "stage": "stage"},
                             times=("decided_at", "come_back_at"), columns=columns),
                 hide_index=True, width="stretch")


def team_inbox() -> None:
    """The manager's view of the team: pending MQLs with reassignment, and MQLs waiting for a rep."""
    with db_session() as session:
        reps = team_reps(session=session, actor=actor)
        pending = inbox(session=session, actor=actor, now=now, limit=500)
        waiting = waiting_mqls(session=session, actor=actor)
    rep_names = dict(zip(reps["id"].astype(int), reps["display_name"], strict=True))
    available = reps[~reps["out_of_office"].astype(bool)]
    st.dataframe(for_display(reps.assign(out_of_office=reps["out_of_office"].map(
        lambda v: tr("common.true") if v else tr("common.false"))),
        columns=["display_name", "load", "capacity", "out_of_office"]), hide_index=True, width="stretch")
    st.subheader(tr("inbox.team_pending", n=number(len(pending))))
    if pending.empty:
        st.info(tr("inbox.empty"))
    else:
        shown = pending.assign(routed_by=pending["routed_by"].map(routed_text),
                               sla=[tr("inbox.sla_breached") if pd.notna(v) and v <= 0
                                    else tr("inbox.sla_left", hours=number(v, 1)) if pd.notna(v) else "—"
                                    for v in pending["sla_hours_left"]])
        chosen = show_grid(for_display(shown, times=("assigned_at",),
                                       columns=["name", "company", "grade", "engagement_score", "channel", "rep",
                                                "sla", "routed_by", "assigned_at"]),
                           key="team_pending", selection="single", height=360)
        if not chosen.empty:
            row = pending.iloc[int(chosen.index[0])] if chosen.index[0] < len(pending) else None
            if row is not None:
                with st.form("reassign_form"):
                    st.markdown(tr("inbox.reassign_title", lead=f"{row['name']} · {row['company']}",
                                   rep=row["rep"]))
                    st.selectbox(tr("inbox.reassign_to"),
                                          [i for i in available["id"].astype(int) if i != int(row["rep_id"])],
                                          format_func=lambda i: f"{rep_names[i]}", key="reassign_to")
                    st.text_input(tr("inbox.note"), key="reassign_note")
                    st.form_submit_button(
                        tr("inbox.reassign"), type="primary", width="stretch",
                        on_click=lambda: run_callback(
                            reassign, tr("inbox.reassigned", rep=rep_names.get(st.session_state.get("reassign_to"),
                                                                                "—")),
                            actor=actor, assignment_id=int(row["assignment_id"]),
                            to_rep_id=int(st.session_state["reassign_to"]) if st.session_state.get("reassign_to")
                            else 0,
                            note=st.session_state.get("reassign_note", ""), expected_version=int(row["version"]),
                            now=utcnow()),
                    )
    st.subheader(tr("inbox.unrouted", n=number(len(waiting))))
    if waiting.empty:
        st.caption(tr("inbox.unrouted_none"))
        return
    st.dataframe(for_display(waiting, times=("mql_at",),
                             columns=["name", "company", "province", "industry", "grade", "engagement_score",
                                      "channel", "mql_at"]), hide_index=True, width="stretch")
    with st.form("assign_form"):
        lead_id = st.selectbox(tr("inbox.assign_lead"), waiting["lead_id"].astype(int).tolist(),
                               format_func=lambda i: " · ".join(
                                   str(v) for v in waiting.set_index("lead_id").loc[i, ["name", "company"]]
                                   if isinstance(v, str)) or f"#{i}", key="assign_lead")
        rep_id = st.selectbox(tr("inbox.assign_to"), available["id"].astype(int).tolist(),
                              format_func=lambda i: rep_names[i], key="assign_rep")
        if st.form_submit_button(tr("inbox.assign"), type="primary", width="stretch"):
            run_callback(assign_lead, tr("inbox.assigned", rep=rep_names.get(rep_id, "—")), actor=actor,
                         lead_id=int(lead_id), rep_id=int(rep_id), now=utcnow())
            st.rerun()


def sla_and_rejections() -> None:
    days = st.segmented_control(tr("inbox.period"), [7, 30, 90, 365], default=30, key="inbox_period",
                                format_func=lambda d: tr("inbox.last_days", n=d)) or 30
    since = now - timedelta(days=int(days))
    with db_session() as session:
        summary = sla_summary(session=session, actor=actor, now=now, since=since)
        rejections = rejections_by_channel(session=session, actor=actor, since=since)
    total = int(summary["pending"].sum() + summary["accepted"].sum() + summary["rejected"].sum()
                + summary["reassigned"].sum()) if not summary.empty else 0
    breaches = int(summary["breached"].sum()) if not summary.empty else 0
    a, b, c = st.columns(3)
    a.metric(tr("inbox.handed_out"), number(total))
    b.metric(tr("inbox.breaches"), number(breaches))
    c.metric(tr("inbox.breach_rate"), percent(breaches / total if total else 0))
    if summary.empty:
        st.info(tr("inbox.no_data"))
    else:
        if breaches:
            figure = px.bar(summary, x="rep", y=["breached", "overdue"], barmode="group",
                            title=tr("inbox.chart_breaches"),
                            labels={"rep": tr("col.rep"), "value": tr("col.leads"), "variable": ""})
            figure.for_each_trace(lambda trace: trace.update(name=tr(f"col.{trace.name}")))
            st.plotly_chart(figure, key="breach_chart")
        shown = summary.assign(
            breach_rate=summary["breach_rate"].map(percent),
            median_response_hours=summary["median_response_hours"].map(
                lambda v: number(v, 1) if pd.notna(v) else "—"))
        st.dataframe(for_display(shown), hide_index=True, width="stretch")
    st.subheader(tr("inbox.rejections_title"))
    if rejections.empty:
        st.info(tr("inbox.no_rejections"))
        return
    shown = rejections.assign(reason=rejections["reason"].map(lambda r: label("reject_reason", r)),
                              channel=rejections["channel"].map(lambda c: shown_name("channel", c)))
    figure = px.bar(shown, x="channel", y="n", color="reason", title=tr("inbox.chart_rejections"),
                    labels={"channel": tr("col.channel"), "n": tr("col.leads"), "reason": tr("col.reason")})
    figure.update_layout(xaxis={"categoryorder": "total descending"})
    st.plotly_chart(figure, key="rejection_chart")
    pivot = shown.pivot_table(index="channel", columns="reason", values="n", aggfunc="sum", fill_value=0)
    pivot[tr("col.total")] = pivot.sum(axis=1)
    st.dataframe(pivot.sort_values(tr("col.total"), ascending=False).rename_axis(tr("col.channel")),
                 width="stretch")


def crm_export() -> None:
    today = to_local(now).date()  # type: ignore[union-attr]
    chosen = st.date_input(tr("inbox.export_range"), value=(today - timedelta(days=30), today), key="export_range")
    picked = list(chosen) if isinstance(chosen, (tuple, list)) else [chosen]
    start, end = (picked + picked)[:2] if picked else (today, today)  # while picking, one end may be missing
    only_export = st.toggle(tr("inbox.export_only_without_webhook"), key="export_only")
    since = datetime.combine(start, time(0), tzinfo=TEAM_TIMEZONE)
    until = datetime.combine(end, time(0), tzinfo=TEAM_TIMEZONE) + timedelta(days=1)
    with db_session() as session:
        accepted = accepted_export(session=session, actor=actor, since=since, until=until,
                                   only_without_webhook=only_export)
    st.caption(tr("inbox.export_count", n=number(len(accepted))))
    shown = for_display(accepted.assign(routed_by=accepted["routed_by"].map(routed_text),
                                        crm_status=accepted["crm_status"].map(crm_text)), times=("decided_at",))
    st.dataframe(shown.head(200), hide_index=True, width="stretch")
    if actor.can("export") and not accepted.empty:
        export_buttons(shown, filename=f"accepted-leads-{start}-{end}", key="crm_export")


notifications()
if actor.can("team_inbox"):
    tabs = st.tabs([tr("inbox.tab.team"), tr("inbox.tab.mine"), tr("inbox.tab.sla"), tr("inbox.tab.export")])
    with tabs[0]:
        team_inbox()
    with tabs[1]:
        my_cards(rep_id=actor.id)
        with st.expander(tr("inbox.tab.decided")):
            decided(rep_id=actor.id)
    with tabs[2]:
        sla_and_rejections()
    with tabs[3]:
        crm_export()
else:
    mine, done = st.tabs([tr("inbox.tab.pending"), tr("inbox.tab.decided")])
    with mine:
        my_cards(rep_id=None)
    with done:
        decided(rep_id=None)
