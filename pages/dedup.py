"""Dedup: the review queue of pairs that may be the same person, invalid leads, and merge history with undo."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.clock import utcnow
from core.dedup import (
    bulk_merge,
    count_candidates,
    count_invalid,
    delete_invalid,
    lead_merges,
    list_candidates,
    list_invalid,
    mark_not_duplicate,
    merge_candidate,
    pair_detail,
    restore_invalid,
    skip,
    thresholds,
    unmerge,
)
from core.dedup.merge import CHOOSABLE_FIELDS
from core.errors import LeadLoopError
from db.models import CandidateStatus
from ui.common import (
    db_session,
    for_display,
    label,
    local_time,
    number,
    percent,
    require_permission,
    run_action,
    show_error,
    show_flash,
    tr,
)
from ui.grid import show_grid

actor = require_permission("dedup", "dedup_view")
can_decide = actor.can("dedup")
PAGE_SIZE = 50

st.title(tr("dedup.title"))
show_flash()


def reason_text(reason: Any) -> str:
    """``"phone:typo"`` → "手机: 一位之差"; reasons written as plain text (older pairs) are shown as they are."""
    text = str(reason)
    if ":" not in text:
        return text
    column, level = text.split(":", 1)
    return f"{tr(f'col.{column}')}: {tr(f'dedup.level.{level}')}"


def reasons_text(reasons: Any) -> str:
    return "、".join(reason_text(r) for r in (reasons or []))


def shown(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
        return "—"
    return str(value)


review_tab, invalid_tab, history_tab = st.tabs([tr("dedup.tab_review"), tr("dedup.tab_invalid"),
                                                tr("dedup.tab_history")])

# ---------------------------------------------------------------------------------------------------------------
# Review queue
# ---------------------------------------------------------------------------------------------------------------
with review_tab:
    with db_session() as session:
        pending = count_candidates(session=session)
        skipped = count_candidates(session=session, status=CandidateStatus.SKIPPED)
        try:
            band: tuple[float, float] | None = thresholds(session)
        except LeadLoopError as error:  # a setting stored by hand that makes no sense: say so, keep the queue
            band = None
            show_error(error)
    left_metric, right_metric = st.columns(2)
    left_metric.metric(tr("dedup.pending"), number(pending))
    right_metric.metric(tr("dedup.skipped"), number(skipped))
    if band is not None:
        st.caption(tr("dedup.thresholds_caption", auto=percent(band[0]), review=percent(band[1])))
    status = st.radio(tr("dedup.show"), [CandidateStatus.PENDING, CandidateStatus.SKIPPED], horizontal=True,
                      format_func=lambda s: label("candidate_status", s), key="dedup_status")
    total = pending if status == CandidateStatus.PENDING else skipped
    pages = max(1, -(-total // PAGE_SIZE))
    page = st.number_input(tr("dedup.page", pages=pages), min_value=1, max_value=pages, value=1, step=1,
                           key="dedup_page") if pages > 1 else 1
    with db_session() as session:
        pairs = list_candidates(session=session, status=status, limit=PAGE_SIZE, offset=(int(page) - 1) * PAGE_SIZE)
    if pairs.empty:
        st.info(tr("dedup.none_pending"))
    else:
        table = pairs.copy()
        table["score"] = table["score"].map(percent)
        table["reasons"] = table["reasons"].map(reasons_text)
        grid_columns = ["score", "reasons", "left_name", "right_name", "left_company", "right_company",
                        "left_phone", "right_phone", "left_email", "right_email", "left_stage", "right_stage"]
        selected = show_grid(
            for_display(table, values={"left_stage": "stage", "right_stage": "stage"}, columns=grid_columns),
            key="dedup_grid", selection="multiple" if can_decide else None, height=360,
        )
        chosen = [int(pairs.iloc[i]["id"]) for i in range(len(pairs)) if i in set(selected.index)]

        def pair_label(candidate_id: int) -> str:
            row = pairs[pairs["id"] == candidate_id].iloc[0]
            return f"{shown(row['left_name'])} ↔ {shown(row['right_name'])} · {percent(row['score'])}"

        if can_decide:
            with st.form("dedup_bulk_form"):
                st.markdown(f"**{tr('dedup.bulk_title')}**")
                bulk_ids = st.multiselect(tr("dedup.bulk_pairs"), list(pairs["id"]), default=chosen,
                                          format_func=pair_label, key="dedup_bulk_ids")
                action = st.radio(tr("dedup.bulk_action"), ["merge", "not_duplicate", "skip"], horizontal=True,
                                  format_func=lambda a: tr(f"dedup.action_{a}"), key="dedup_bulk_action")
                submitted = st.form_submit_button(tr("dedup.bulk_apply"))
            if submitted:
                if not bulk_ids:
                    st.warning(tr("dedup.bulk_none"))
                else:
                    functions = {"merge": bulk_merge, "not_duplicate": mark_not_duplicate, "skip": skip}
                    run_action(functions[action], actor=actor, candidate_ids=bulk_ids, now=utcnow(),
                               success=tr("dedup.bulk_done", count=len(bulk_ids)))

        st.subheader(tr("dedup.pair_title"))
        candidate_id = st.selectbox(tr("dedup.pair_pick"), list(pairs["id"]), format_func=pair_label,
                                    key="dedup_pair")
        with db_session() as session:
            detail = pair_detail(session=session, actor=actor, candidate_id=int(candidate_id))
        left, right = detail["left"], detail["right"]
        candidate = detail["candidate"]
        score_col, reason_col = st.columns([1, 3])
        score_col.metric(tr("dedup.score"), percent(candidate.score))
        reason_col.markdown(f"**{tr('dedup.reasons')}**：{reasons_text(candidate.reasons)}")

        fields = detail["fields"]
        side = pd.DataFrame({
            "field": [tr(f"col.{f}") for f in fields["field"]],
            "left": [shown(v) for v in fields["left"]],
            "right": [shown(v) for v in fields["right"]],
        })
        extra = pd.DataFrame({
            "field": [tr("col.stage"), tr("col.owner"), tr("col.touchpoints"), tr("col.created_at"), tr("col.id")],
            "left": [label("stage", left.stage), shown(detail["owners"][left.id]),
                     number(detail["touchpoint_counts"][left.id]), local_time(left.created_at), f"#{left.id}"],
            "right": [label("stage", right.stage), shown(detail["owners"][right.id]),
                      number(detail["touchpoint_counts"][right.id]), local_time(right.created_at), f"#{right.id}"],
        })
        side = pd.concat([side, extra], ignore_index=True)
        differs = list(fields["differs"]) + [left.stage != right.stage, left.owner_id != right.owner_id,
                                             False, False, False]
        side = side.rename(columns={"field": tr("dedup.field"), "left": tr("dedup.lead_a"),
                                    "right": tr("dedup.lead_b")})
        styled = side.style.apply(
            lambda row: ["background-color: #fff3cd" if differs[row.name] else "" for _ in row], axis=1)
        st.dataframe(styled, hide_index=True, width="stretch", height=35 * (len(side) + 1) + 3)
        st.caption(tr("dedup.differs_hint"))

        touch_left, touch_right = st.columns(2)
        for column, lead in ((touch_left, left), (touch_right, right)):
            column.markdown(f"**{tr('dedup.recent_touchpoints', lead=shown(lead.name), id=lead.id)}**")
            touches = detail["touchpoints"][lead.id]
            if touches.empty:
                column.caption(tr("dedup.no_touchpoints"))
            else:
                column.dataframe(for_display(touches, values={"kind": "touchpoint"}, times=("occurred_at",),
                                             columns=["occurred_at", "kind"]), hide_index=True, width="stretch")

        if can_decide and candidate.status in (CandidateStatus.PENDING, CandidateStatus.SKIPPED):
            with st.form("dedup_merge_form"):
                st.markdown(f"**{tr('dedup.merge_title')}**")
                survivor = st.radio(tr("dedup.survivor"), [left.id, right.id], horizontal=True,
                                    format_func=lambda i: f"#{i} {shown(left.name if i == left.id else right.name)}",
                                    key="dedup_survivor")
                st.caption(tr("dedup.choose_hint"))
                choices: dict[str, int] = {}
                for row in fields.itertuples():
                    if not row.differs or row.field not in CHOOSABLE_FIELDS:
                        continue
                    pick = st.radio(tr(f"col.{row.field}"), ["auto", left.id, right.id], horizontal=True,
                                    format_func=lambda v, r=row: tr("dedup.keep_auto") if v == "auto" else shown(
                                        r.left if v == left.id else r.right),
                                    key=f"dedup_choice_{row.field}")
                    if pick != "auto":
                        choices[row.field] = int(pick)
                merge_clicked = st.form_submit_button(tr("dedup.action_merge"), type="primary")
            if merge_clicked:
                run_action(merge_candidate, actor=actor, candidate_id=int(candidate.id), now=utcnow(),
                           survivor_id=int(survivor), choices=choices, success=tr("dedup.merged_done"))
            not_col, skip_col = st.columns(2)
            if not_col.button(tr("dedup.action_not_duplicate"), key="dedup_not_dup", icon=":material/block:"):
                run_action(mark_not_duplicate, actor=actor, candidate_ids=[int(candidate.id)], now=utcnow(),
                           success=tr("dedup.not_duplicate_done"))
            if skip_col.button(tr("dedup.action_skip"), key="dedup_skip", icon=":material/skip_next:"):
                run_action(skip, actor=actor, candidate_ids=[int(candidate.id)], now=utcnow(),
                           success=tr("dedup.skip_done"))

# ---------------------------------------------------------------------------------------------------------------
# Invalid leads
# ---------------------------------------------------------------------------------------------------------------
with invalid_tab:
    if not can_decide:
        st.info(tr("dedup.invalid_no_permission"))
    else:
        with db_session() as session:
            invalid_total = count_invalid(session=session, actor=actor)
            invalid = list_invalid(session=session, actor=actor, limit=200)
        st.metric(tr("dedup.invalid_total"), number(invalid_total))
        if invalid.empty:
            st.info(tr("dedup.no_invalid"))
        else:
            picked = show_grid(for_display(invalid, times=("created_at",)), key="dedup_invalid_grid",
                               selection="multiple", height=320)
            picked_ids = [int(invalid.iloc[i]["id"]) for i in range(len(invalid)) if i in set(picked.index)]
            names = dict(zip(invalid["id"], invalid["name"], strict=True))
            with st.form("dedup_invalid_form"):
                ids = st.multiselect(tr("dedup.invalid_pick"), list(invalid["id"]), default=picked_ids,
                                     format_func=lambda i: f"#{i} {shown(names.get(i))}", key="dedup_invalid_ids")
                restore_clicked = st.form_submit_button(tr("dedup.restore"), icon=":material/restore:")
                confirm = st.number_input(tr("dedup.delete_confirm"), min_value=0, value=0, step=1,
                                          key="dedup_delete_confirm")
                delete_clicked = st.form_submit_button(tr("dedup.delete"), icon=":material/delete_forever:")
            if restore_clicked:
                if not ids:
                    st.warning(tr("dedup.bulk_none"))
                else:
                    run_action(restore_invalid, actor=actor, lead_ids=ids, now=utcnow(),
                               success=tr("dedup.restored_done", count=len(ids)))
            if delete_clicked:
                if not ids:
                    st.warning(tr("dedup.bulk_none"))
                else:
                    run_action(delete_invalid, actor=actor, lead_ids=ids, confirm_count=int(confirm), now=utcnow(),
                               success=tr("dedup.deleted_done", count=len(ids)))

# ---------------------------------------------------------------------------------------------------------------
# Merge history of a lead, with undo
# ---------------------------------------------------------------------------------------------------------------
with history_tab:
    lead_id = st.number_input(tr("dedup.history_lead"), min_value=0, value=0, step=1, key="dedup_history_lead")
    if lead_id:
        with db_session() as session:
            merges = lead_merges(session=session, actor=actor, lead_id=int(lead_id))
        if merges.empty:
            st.info(tr("dedup.no_merges"))
        else:
            table = merges.copy()
            table["score"] = table["score"].map(lambda s: percent(s) if s is not None and not pd.isna(s) else "—")
            table["automatic"] = table["automatic"].map(lambda a: tr("dedup.yes") if a else tr("dedup.no"))
            st.dataframe(for_display(table, times=("merged_at", "undone_at"),
                                     columns=["merge_id", "merged_at", "survivor_id", "survivor_name", "merged_id",
                                              "merged_name", "automatic", "score", "merged_by", "undone_at"]),
                         hide_index=True, width="stretch")
            undoable = [int(m) for m, ok in zip(merges["merge_id"], merges["can_undo"], strict=True) if ok]
            if can_decide and undoable:
                merge_id = st.selectbox(tr("dedup.undo_pick"), undoable, key="dedup_undo_id")
                if st.button(tr("dedup.undo"), key="dedup_undo", icon=":material/undo:"):
                    run_action(unmerge, actor=actor, merge_id=int(merge_id), now=utcnow(),
                               success=tr("dedup.undone_done"))
            st.caption(tr("dedup.undo_hint"))
