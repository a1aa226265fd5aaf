"""Accounts (ABM): companies built from leads, their buying committee, engagement, fit against the ICP, the MQA
signal, target lists and owners."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from core.accounts import (
    ABM_DEFAULTS,
    DEPARTMENTS,
    STAGE_ORDER,
    AccountFilters,
    account_filter_options,
    account_timeline,
    buying_committee,
    get_abm,
    get_account,
    get_icp,
    list_accounts,
    owner_candidates,
    rebuild_accounts,
    save_icp,
    set_account_owner,
    update_target_lists,
)
from core.clock import utcnow
from core.errors import LeadLoopError
from core.journeys import TIMELINE_EXPORT_MAX, TIMELINE_KINDS, timeline_for_people
from ui.common import (
    all_names,
    db_session,
    export_buttons,
    for_display,
    label,
    lang,
    local_time,
    number,
    require_permission,
    run_action,
    show_error,
    show_flash,
    shown_name,
    tr,
)
from ui.grid import show_grid

PAGE_SIZE = 50
TIMELINE_PAGE = 50

actor = require_permission("accounts")
st.title(tr("accounts.title"))
show_flash()


def yes_no(value: object) -> str:
    return tr("common.true") if value else tr("common.false")


# --- Filters ---------------------------------------------------------------------------------------------------
with db_session() as session:
    options = account_filter_options(session=session, actor=actor)
with st.form("accounts_filters"):
    text_col, list_col, stage_col, industry_col = st.columns([2, 2, 2, 2])
    text = text_col.text_input(tr("accounts.filter_text"), key="accounts_text")
    target_list = list_col.selectbox(tr("accounts.filter_list"), ["", *options["target_lists"]],
                                     format_func={v: shown_name("target_list", v) or tr("accounts.any")
                                                  for v in ["", *options["target_lists"]]}.get,
                                     key="accounts_list")
    stages = stage_col.multiselect(tr("accounts.filter_stage"), [str(s) for s in STAGE_ORDER],
                                   format_func={str(s): label("stage", s) for s in STAGE_ORDER}.get,
                                   placeholder=tr("accounts.any"), key="accounts_stages")
    industries = industry_col.multiselect(tr("accounts.filter_industry"), options["industries"],
                                          placeholder=tr("accounts.any"), key="accounts_industries")
    left, middle, _ = st.columns([1, 1, 4])
    targets_only = left.checkbox(tr("accounts.filter_targets"), key="accounts_targets")
    mqa_only = middle.checkbox(tr("accounts.filter_mqa"), key="accounts_mqa")
    st.form_submit_button(tr("accounts.apply"), icon=":material/filter_alt:")
filters = AccountFilters(text=text, target_list=target_list or None, targets_only=targets_only, mqa_only=mqa_only,
                         stages=tuple(stages), industries=tuple(industries))

# --- The list --------------------------------------------------------------------------------------------------
page = int(st.session_state.get("accounts_page", 1))
with db_session() as session:
    frame, total = list_accounts(session=session, actor=actor, filters=filters, limit=PAGE_SIZE,
                                 offset=(page - 1) * PAGE_SIZE)
pages = max(1, -(-total // PAGE_SIZE))
summary, rebuild_box = st.columns([3, 1])
summary.caption(tr("accounts.count", n=number(total), page=number(min(page, pages)), pages=number(pages)))
if rebuild_box.button(tr("accounts.rebuild"), key="accounts_rebuild", icon=":material/sync:",
                      help=tr("accounts.rebuild_help")):
    with st.status(tr("accounts.rebuilding")):
        result = run_action(rebuild_accounts, now=utcnow(), actor=actor, rerun=False)
    if result is not None:
        st.session_state["flash"] = tr("accounts.rebuilt", created=number(result.created),
                                       assigned=number(result.leads_assigned), removed=number(result.removed),
                                       mqa=number(result.mqa))
        st.rerun()
if pages > 1:
    if page > pages:
        st.session_state["accounts_page"] = pages
    st.columns([1, 4])[0].number_input(tr("accounts.page"), min_value=1, max_value=pages, step=1,
                                       key="accounts_page")

selected_ids: list[int] = list(st.session_state.get("accounts_selected", []))
if frame.empty:
    st.info(tr("accounts.none"))
else:
    shown = frame.copy()
    shown["target_lists"] = shown["target_lists"].map(lambda v: "、".join(shown_name("target_list", v or [])))
    shown["mqa_at"] = shown["mqa_at"].map(lambda v: local_time(v) if pd.notna(v) else "")
    shown["is_customer"] = shown["is_customer"].map(yes_no)
    shown["owner"] = shown["owner"].fillna("—")
    shown["fit_score"] = shown["fit_score"].map(lambda v: number(v))
    shown["engagement_score"] = shown["engagement_score"].map(lambda v: number(v))
    chosen = show_grid(
        for_display(shown, values={"stage": "stage"}, times=("last_activity_at",),
                    columns=["name", "industry", "contacts", "stage", "fit_score", "engagement_score", "mqa_at",
                             "target_lists", "owner"]),
        # The key follows the rows shown: when filters, paging or a re-score change them, the grid starts afresh
        # and a ticked position can never stand for another account.
        key="accounts_grid_" + hashlib.sha1(",".join(map(str, frame["id"])).encode()).hexdigest()[:12],
        selection="multiple", height=360,
    )
    if not chosen.empty:
        selected_ids = [int(frame.loc[i, "id"]) for i in chosen.index]
        st.session_state["accounts_selected"] = selected_ids
    export_buttons(for_display(shown, values={"stage": "stage"}, times=("last_activity_at",)),
                   filename="accounts", key="accounts_export")

# --- The ideal-customer profile (marketers) -----------------------------------------------------------------------
if actor.can("rules"):
    with st.expander(tr("accounts.icp_title"), icon=":material/target:"):
        with db_session() as session:
            icp, abm = get_icp(session), get_abm(session)
        with st.form("icp_form"):
            st.caption(tr("accounts.icp_help"))
            industries_text = st.text_input(tr("accounts.icp_industries"), "、".join(icp["industries"]),
                                            help=tr("accounts.list_help"))
            size_min_col, size_max_col = st.columns(2)
            size_min = size_min_col.number_input(tr("accounts.icp_size_min"), min_value=0, step=50,
                                                 value=icp["size_min"])
            size_max = size_max_col.number_input(tr("accounts.icp_size_max"), min_value=0, step=50,
                                                 value=icp["size_max"])
            regions_text = st.text_input(tr("accounts.icp_regions"), "、".join(icp["regions"]),
                                         help=tr("accounts.list_help"))
            departments = st.multiselect(tr("accounts.icp_departments"), list(DEPARTMENTS),
                                         default=[d for d in icp["departments"] if d in DEPARTMENTS],
                                         format_func={d: tr(f"accounts.department.{d}") for d in DEPARTMENTS}.get,
                                         placeholder=tr("accounts.any"))
            st.markdown(f"**{tr('accounts.icp_weights')}**")
            weight_cols = st.columns(4)
            weights = {name: weight_cols[i].number_input(tr(f"accounts.criterion.{name}"), min_value=0,
                                                          max_value=100, step=5, value=int(icp["weights"][name]))
                       for i, name in enumerate(("industry", "size", "region", "committee"))}
            st.markdown(f"**{tr('accounts.mqa_rule')}**")
            abm_cols = st.columns(len(ABM_DEFAULTS))
            abm_values = {name: abm_cols[i].number_input(tr(f"accounts.abm.{name}"), min_value=0, step=1,
                                                          value=int(abm[name]))
                          for i, name in enumerate(ABM_DEFAULTS)}
            if st.form_submit_button(tr("accounts.icp_save"), type="primary"):
                run_action(save_icp, actor=actor, now=utcnow(), success=tr("accounts.icp_saved"),
                           icp={"industries": industries_text, "regions": regions_text, "departments": departments,
                                "size_min": size_min, "size_max": size_max, "weights": weights},
                           abm=abm_values)

# --- One account ---------------------------------------------------------------------------------------------
if not selected_ids:
    st.caption(tr("accounts.pick_hint"))
    st.stop()
account_id = selected_ids[0]
try:
    with db_session() as session:
        account = get_account(session=session, actor=actor, account_id=account_id)
        committee = buying_committee(session=session, actor=actor, account_id=account_id)
        candidates = owner_candidates(session=session, actor=actor)
except LeadLoopError as error:
    st.session_state.pop("accounts_selected", None)
    show_error(error)
    st.stop()

st.divider()
st.subheader(f"{account['name']}" + (f" · {account['domain']}" if account["domain"] else ""))
if len(selected_ids) > 1:
    st.caption(tr("accounts.selected_many", n=number(len(selected_ids))))
stage_box, contacts_box, fit_box, engagement_box, mqa_box = st.columns(5)
stage_box.metric(tr("col.stage"), label("stage", account["stage"]))
contacts_box.metric(tr("col.contacts"), number(account["contacts"]))
fit_box.metric(tr("accounts.fit"), number(account["fit_score"]))
engagement_box.metric(tr("accounts.engagement"), number(account["engagement_score"]))
mqa_box.metric("MQA", local_time(account["mqa_at"])[:10] if account["mqa_at"] else tr("common.false"),
               help=tr("accounts.mqa_help"))
st.caption(tr("accounts.facts", industry=account["industry"] or "—",
              size=tr("accounts.size_people", n=number(account["company_size"])) if account["company_size"] else "—",
              region=" ".join(p for p in (account["province"], account["city"]) if p) or "—",
              owner=account["owner"] or "—", lists="、".join(shown_name("target_list", account["target_lists"])) or "—"))

st.markdown(f"#### {tr('accounts.fit_title')}")
fit = account["fit_explanation"]
if fit.empty:
    st.info(tr("accounts.icp_empty"))
else:
    fit = fit.copy()
    fit["criterion"] = fit["criterion"].map(lambda c: tr(f"accounts.criterion.{c}"))
    fit["matched"] = fit["matched"].map(yes_no)
    fit["weight"] = fit["weight"].map(lambda w: number(w))
    st.dataframe(for_display(fit), hide_index=True, width="stretch")

st.markdown(f"#### {tr('accounts.committee')}")
if committee.empty:
    st.info(tr("accounts.no_contacts"))
else:
    people = committee.copy()
    people["seniority"] = people["seniority"].map(lambda s: tr(f"accounts.seniority.{s}"))
    people["department"] = people["department"].map(lambda d: tr(f"accounts.department.{d}"))
    people["role"] = people["role"].map(lambda r: tr(f"accounts.role.{r}"))
    people["owner"] = people["owner"].fillna("—")
    st.dataframe(for_display(people, values={"stage": "stage"}, times=("last_activity_at",),
                             columns=["name", "title", "role", "seniority", "department", "stage",
                                      "engagement_score", "owner", "last_activity_at"]),
                 hide_index=True, width="stretch")

# --- Actions: target lists (anyone with accounts), owner (routing managers) ------------------------------------
lists_col, owner_col = st.columns(2)
with lists_col, st.form("accounts_lists_form"):
    st.markdown(f"**{tr('accounts.lists_title')}**")
    list_name = st.text_input(tr("accounts.list_name"), placeholder=tr("accounts.list_placeholder"))
    add_col, remove_col = st.columns(2)
    add = add_col.form_submit_button(tr("accounts.list_add"), icon=":material/playlist_add:")
    remove = remove_col.form_submit_button(tr("accounts.list_remove"), icon=":material/playlist_remove:")
    if add or remove:
        run_action(update_target_lists, actor=actor, account_ids=selected_ids, now=utcnow(),
                   add=list_name if add else None, remove=list_name if remove else None,
                   success=tr("accounts.lists_saved", n=number(len(selected_ids))))
if actor.can("manage_routing"):
    with owner_col, st.form("accounts_owner_form"):
        st.markdown(f"**{tr('accounts.owner_title')}**")
        ids = [None, *[c["id"] for c in candidates]]
        names = {c["id"]: f"{c['name']} · {tr('role.' + c['role'])}" for c in candidates}
        current = account["owner_id"] if account["owner_id"] in ids else None
        owner_id = st.selectbox(tr("col.owner"), ids, index=ids.index(current),
                                format_func={i: names.get(i, tr("accounts.no_owner")) for i in ids}.get,
                                key="accounts_owner")
        st.caption(tr("accounts.owner_help"))
        if st.form_submit_button(tr("accounts.owner_save"), icon=":material/person_pin:"):
            run_action(set_account_owner, actor=actor, account_ids=selected_ids, owner_id=owner_id, now=utcnow(),
                       success=tr("accounts.owner_saved", n=number(len(selected_ids))))

# --- Timeline of the account's contacts --------------------------------------------------------------------------
st.markdown(f"#### {tr('accounts.timeline')}")
kinds = st.pills(tr("journeys.kinds"), TIMELINE_KINDS, default=list(TIMELINE_KINDS), selection_mode="multi",
                 format_func={k: label("timeline_kind", k) for k in TIMELINE_KINDS}.get,
                 key="accounts_kinds")
timeline_page = int(st.session_state.get(f"accounts_timeline_page_{account_id}", 1))
with db_session() as session:
    events, events_total = account_timeline(session=session, actor=actor, account_id=account_id, kinds=kinds,
                                            limit=TIMELINE_PAGE, offset=(timeline_page - 1) * TIMELINE_PAGE)
timeline_pages = max(1, -(-events_total // TIMELINE_PAGE))
st.caption(tr("journeys.timeline_count", n=number(events_total), page=number(min(timeline_page, timeline_pages)),
              pages=number(timeline_pages)))
if timeline_pages > 1:
    if timeline_page > timeline_pages:
        st.session_state[f"accounts_timeline_page_{account_id}"] = timeline_pages
    st.columns([1, 4])[0].number_input(tr("journeys.page"), min_value=1, max_value=timeline_pages, step=1,
                                       key=f"accounts_timeline_page_{account_id}")
if events.empty:
    st.info(tr("journeys.no_events"))
else:
    readable = for_display(timeline_for_people(events, lang(), all_names()), values={"kind": "timeline_kind"}, times=("at",),
                           columns=["at", "contact", "kind", "what", "detail", "channel"])
    show_grid(readable, key=f"accounts_timeline_{account_id}", height=380)
    with db_session() as session:
        everything, _ = account_timeline(session=session, actor=actor, account_id=account_id, kinds=kinds,
                                         limit=TIMELINE_EXPORT_MAX)
    export_buttons(for_display(timeline_for_people(everything, lang(), all_names()), values={"kind": "timeline_kind"},
                               times=("at",), columns=["at", "contact", "kind", "what", "detail", "channel", "points"]),
                   filename=f"account-{account_id}-timeline", key="account_timeline_export")
