"""Journeys: find a lead by name, pinyin, phone, email or company; its 360° profile and timeline; and the
journey tables (paths before MQL and before a won deal, channel Sankey, time between stages)."""

from __future__ import annotations

import hashlib
from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from core.clock import TEAM_TIMEZONE, utcnow
from core.errors import LeadLoopError
from core.journeys import (
    OUTCOMES,
    TIMELINE_KINDS,
    channel_flows,
    lead_profile,
    path_sequences,
    sankey_figure,
    score_explanation,
    search_leads,
    stage_durations,
    timeline,
    timeline_count,
    timeline_export,
    timeline_for_people,
)
from ui.common import (
    all_names,
    db_session,
    export_buttons,
    for_display,
    label,
    lang,
    local_time,
    names,
    number,
    percent,
    require_permission,
    show_error,
    shown_name,
    tr,
)
from ui.grid import show_grid
from ui.score_explain import render_score_explanation

PAGE_SIZE = 50
PERIODS = ("all", "7", "30", "90", "365", "custom")
ANALYSIS_PERIODS = ("90", "180", "365", "all")

actor = require_permission("journeys")
st.title(tr("journeys.title"))
view = st.segmented_control(tr("journeys.view"), ["leads", "paths"], default="leads", required=True,
                            format_func={v: tr(f"journeys.view_{v}") for v in ("leads", "paths")}.get, key="journeys_view")


def period_bounds(choice: str, custom: tuple | None) -> tuple[datetime | None, datetime | None]:
    """A period preset (days back from now) or a custom range of local dates, as aware UTC bounds."""
    if choice == "custom" and custom and len(custom) == 2:
        start = datetime.combine(custom[0], time.min, tzinfo=TEAM_TIMEZONE)
        end = datetime.combine(custom[1] + timedelta(days=1), time.min, tzinfo=TEAM_TIMEZONE)
        return start, end
    if choice.isdigit():
        return utcnow() - timedelta(days=int(choice)), None
    return None, None


def yes_no(value: object) -> str:
    return tr("common.true") if value else tr("common.false")


def show_profile(lead_id: int) -> None:
    """Identity, account, ownership, scores with their explanation, then the filtered, paged timeline."""
    try:
        with db_session() as session:
            profile = lead_profile(session=session, actor=actor, lead_id=lead_id)
            explained = score_explanation(session=session, actor=actor, lead_id=lead_id)
    except LeadLoopError as error:
        show_error(error)
        return

    st.divider()
    st.subheader(f"{profile['name'] or '—'} · {profile['company'] or '—'}")
    if profile.get("followup_owner"):
        st.warning(tr("journeys.in_followup", owner=profile["followup_owner"]))
    if profile["status"] != "valid":
        st.warning(tr("journeys.not_valid", status=label("lead_status", profile["status"]),
                      reason=profile.get("invalid_reason") or "—"))
    badges = [f":blue-badge[{tr('col.stage')}: {label('stage', profile['stage'])}]"]
    if profile["account_info"] and profile["account_info"]["mqa_at"]:
        badges.append(":orange-badge[MQA]")
    if profile["unsubscribed"]:
        badges.append(f":gray-badge[{tr('journeys.unsubscribed')}]")
    st.markdown(" ".join(badges))
    grade, fit, engagement = st.columns(3)
    grade.metric(tr("col.grade"), profile["grade"] or "—")
    fit.metric(tr("col.fit_score"), number(profile["fit_score"]))
    engagement.metric(tr("col.engagement_score"), number(profile["engagement_score"]))

    identity, account_box, ownership = st.columns(3)
    with identity:
        st.markdown(f"**{tr('journeys.identity')}**")
        st.markdown(
            f"{tr('col.title')}: {profile['title'] or '—'}  \n"
            f"{tr('col.phone')}: {profile['phone'] or '—'}  \n"
            f"{tr('col.email')}: {profile['email'] or '—'}  \n"
            f"{tr('col.wechat_id')}: {profile['wechat_id'] or '—'}  \n"
            f"{tr('col.industry')}: {profile['industry'] or '—'}  \n"
            f"{tr('col.region')}: {' '.join(p for p in (profile['province'], profile['city']) if p) or '—'}"
        )
    with account_box:
        st.markdown(f"**{tr('col.account')}**")
        info = profile["account_info"]
        if info is None:
            st.caption(tr("journeys.no_account"))
        else:
            mqa = tr("journeys.mqa_since", at=local_time(info["mqa_at"])) if info["mqa_at"] else tr("common.false")
            st.markdown(
                f"{info['name']}  \n"
                f"{tr('journeys.account_stage')}: {label('stage', info['stage'])}  \n"
                f"{tr('journeys.account_contacts')}: {number(info['contacts'])}  \n"
                f"{tr('journeys.account_fit')}: {number(info['fit_score'])} · "
                f"{tr('journeys.account_engagement')}: {number(info['engagement_score'])}  \n"
                f"MQA: {mqa}  \n"
                f"{tr('col.target_lists')}: {'、'.join(shown_name('target_list', info['target_lists'])) or '—'}  \n"
                f"{tr('journeys.account_owner')}: {info['owner'] or '—'}"
            )
    with ownership:
        st.markdown(f"**{tr('journeys.ownership')}**")
        utm = " / ".join(p for p in (profile["utm_source"], profile["utm_medium"], profile["utm_campaign"]) if p)
        st.markdown(
            f"{tr('col.owner')}: {profile['owner'] or '—'}  \n"
            f"{tr('col.channel')}: {shown_name('channel', profile['channel']) or '—'}  \n"
            f"{tr('col.campaign')}: {shown_name('campaign', profile['campaign']) or '—'}  \n"
            f"UTM: {utm or '—'}  \n"
            f"{tr('col.created_at')}: {local_time(profile['created_at'])}  \n"
            f"{tr('col.last_activity_at')}: {local_time(profile['last_activity_at'])}"
        )
    st.markdown(
        f"**{tr('col.tags')}**: {'、'.join(shown_name('tag', profile['tags'])) or '—'}　"
        f"**{tr('col.groups')}**: {'、'.join(shown_name('group', profile['groups'])) or '—'}"
    )
    with st.expander(tr("journeys.why_scores"), expanded=False):
        if explained.empty:
            st.caption(tr("journeys.no_score_events"))
        else:
            explained["component"] = explained["component"].map(lambda c: tr(f"journeys.component.{c}"))
            explained["kind"] = explained["kind"].map(
                lambda k: tr(f"journeys.score_kind.{k}") if k in ("rule", "decay", "manual", "cap") else k)
            st.dataframe(for_display(explained, times=("last_at",)), hide_index=True, width="stretch")
            # Every ledger line behind the sums above; lead_profile has already checked this actor may see it.
            if st.toggle(tr("journeys.every_line"), key=f"journeys_every_line_{lead_id}"):
                with db_session() as session:
                    render_score_explanation(session, lead_id, key=f"journeys_ledger_{lead_id}")

    st.markdown(f"#### {tr('journeys.timeline')}")
    kinds = st.pills(tr("journeys.kinds"), TIMELINE_KINDS, default=list(TIMELINE_KINDS), selection_mode="multi",
                     format_func={k: label("timeline_kind", k) for k in TIMELINE_KINDS}.get,
                     key="journeys_kinds")
    left, right = st.columns([1, 2])
    choice = left.selectbox(tr("journeys.period"), PERIODS, format_func={p: tr(f"journeys.period_{p}") for p in PERIODS}.get, key="journeys_period")
    custom = None
    if choice == "custom":
        today = utcnow().astimezone(TEAM_TIMEZONE).date()
        custom = right.date_input(tr("journeys.period_range"), value=(today - timedelta(days=30), today),
                                  key="journeys_range")
    since, until = period_bounds(choice, custom)
    page_key = f"journeys_page_{lead_id}"
    with db_session() as session:
        total = timeline_count(session=session, actor=actor, lead_id=lead_id, kinds=kinds, since=since, until=until)
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(max(int(st.session_state.get(page_key, 1)), 1), pages)
        events = timeline(session=session, actor=actor, lead_id=lead_id, kinds=kinds, since=since, until=until,
                          limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        export = timeline_export(session=session, actor=actor, lead_id=lead_id, lang=lang(), kinds=kinds,
                                 since=since, until=until)
    st.caption(tr("journeys.timeline_count", n=number(total), page=number(page), pages=number(pages)))
    if pages > 1:
        # The page number lives in the widget's state; a narrower filter can leave it past the last page.
        if st.session_state.get(page_key) != page:
            st.session_state[page_key] = page
        st.columns([1, 4])[0].number_input(tr("journeys.page"), min_value=1, max_value=pages, step=1, key=page_key)
    if events.empty:
        st.info(tr("journeys.no_events"))
        return
    people = timeline_for_people(events, lang(), all_names())
    show_grid(for_display(people, values={"kind": "timeline_kind"}, times=("at",),
                          columns=["at", "kind", "what", "detail", "channel"]),
              key=f"journeys_timeline_{lead_id}", height=min(480, 70 + 29 * len(people)))
    export_buttons(for_display(export, values={"kind": "timeline_kind"}, times=("at",)),
                   filename=f"lead-{lead_id}-timeline", key="timeline_export")


@st.fragment
def leads_view() -> None:
    """Search as you type (only this part reruns), pick a row, read the profile."""
    query = st.text_input(tr("journeys.search"), placeholder=tr("journeys.search_hint"), key="journeys_query",
                          type="search", live="300ms")
    selected_id: int | None = None
    if query and query.strip():
        with db_session() as session:
            results = search_leads(session=session, actor=actor, query=query)
        if results.empty:
            st.info(tr("journeys.no_match"))
        else:
            more = "+" if results.attrs.get("more") else ""
            st.caption(tr("journeys.match_count", n=number(len(results)) + more))
            # New results are a new grid, so a row picked in earlier results can never open the wrong lead.
            digest = hashlib.sha1(",".join(map(str, results["id"])).encode()).hexdigest()[:12]
            chosen = show_grid(
                for_display(results, values={"stage": "stage", "status": "lead_status"}),
                key=f"journeys_results_{digest}", selection="single", height=min(300, 70 + 29 * len(results)),
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
    if selected_id is None:
        if not (query and query.strip()):
            st.caption(tr("journeys.start_hint"))
        return
    show_profile(selected_id)


def path_table(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    shown = frame.copy()
    step = (lambda s: label("touchpoint", s)) if by == "kind" else (lambda s: str(shown_name("channel", s)))
    shown["path"] = shown["path"].map(lambda p: " → ".join(step(s) for s in p))
    shown["share"] = shown["share"].map(percent)
    shown["median_days"] = shown["median_days"].map(lambda d: number(d, 1))
    return for_display(shown, columns=["path", "leads", "share", "median_days"])


@st.fragment
def paths_view() -> None:
    """How people reach us: one query per table or chart, for the chosen period."""
    left, middle, right = st.columns([2, 1, 1])
    choice = left.segmented_control(tr("journeys.analysis_period"), ANALYSIS_PERIODS, default="180", required=True,
                                    format_func={p: tr(f"journeys.period_{p}") for p in ANALYSIS_PERIODS}.get,
                                    key="paths_period")
    by = middle.segmented_control(tr("journeys.path_by"), ["kind", "channel"], default="kind", required=True,
                                  format_func={b: tr(f"journeys.path_by_{b}") for b in ("kind", "channel")}.get,
                                  key="paths_by")
    depth = right.segmented_control(tr("journeys.path_depth"), [2, 3, 4, 5], default=3, required=True,
                                    key="paths_depth", help=tr("journeys.path_depth_help"))
    since, until = period_bounds(choice, None)
    with st.status(tr("journeys.analysing"), expanded=False) as status:
        with db_session() as session:
            before_mql = path_sequences(session=session, actor=actor, milestone="mql", since=since, until=until,
                                        by=by, depth=depth)
            before_won = path_sequences(session=session, actor=actor, milestone="won", since=since, until=until,
                                        by=by, depth=depth)
            flows = channel_flows(session=session, actor=actor, since=since, until=until)
            durations = stage_durations(session=session, actor=actor, since=since, until=until)
        status.update(label=tr("journeys.analysed"), state="complete")

    st.subheader(tr("journeys.paths_before_mql"))
    if before_mql.empty:
        st.info(tr("journeys.no_paths"))
    else:
        table = path_table(before_mql, by)
        st.dataframe(table, hide_index=True, width="stretch")
        export_buttons(table, filename="paths-before-mql", key="paths_mql_export")
    st.subheader(tr("journeys.paths_before_won"))
    if before_won.empty:
        st.info(tr("journeys.no_paths"))
    else:
        table = path_table(before_won, by)
        st.dataframe(table, hide_index=True, width="stretch")
        export_buttons(table, filename="paths-before-won", key="paths_won_export")

    st.subheader(tr("journeys.sankey_title"))
    if flows.empty:
        st.info(tr("journeys.no_paths"))
    else:
        channels = names("channel")
        flows = flows.assign(source=flows["source"].map(lambda c: channels.get(c, c)),
                             target=flows["target"].map(lambda c: channels.get(c, c)))
        figure = sankey_figure(flows, outcome_label=lambda o: tr(f"journeys.outcome.{o}"),
                               none_label=tr("journeys.no_second_channel"))
        st.plotly_chart(figure, key="journeys_sankey")
        st.caption(tr("journeys.sankey_caption", outcomes="、".join(tr(f"journeys.outcome.{o}") for o in OUTCOMES)))

    st.subheader(tr("journeys.durations_title"))
    if durations.empty:
        st.info(tr("journeys.no_paths"))
    else:
        shown = durations.copy()
        shown["source"] = shown["source"].map(lambda c: shown_name("channel", c)).replace("",
                                                                                       tr("journeys.unknown_source"))
        steps = [c for c in shown.columns if c not in ("source", "leads")]
        for column in steps:
            shown[column] = shown[column].map(lambda d: "—" if pd.isna(d) else number(d, 1))
        shown = shown.rename(columns={c: tr("journeys.step_days", before=label("stage", c.split("_")[0]),
                                             after=label("stage", c.split("_")[1])) for c in steps})
        shown = shown.rename(columns={"source": tr("col.channel"), "leads": tr("col.leads")})
        st.dataframe(shown, hide_index=True, width="stretch")
        st.caption(tr("journeys.durations_caption"))
        export_buttons(shown, filename="stage-durations", key="durations_export")


if view == "paths":
    paths_view()
else:
    leads_view()
