"""Rules: the tag, fit, engagement, decay and MQL rules marketers write — edit with live validation and preview,
versions and restore, and “Why this score?” for any lead."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.clock import utcnow
from core.errors import LeadLoopError
from core.journeys import search_leads
from core.rules import (
    RuleSyntaxError,
    context_of,
    list_rules,
    parse,
    preview,
    restore_version,
    rule_versions,
    save_rule,
    set_active,
)
from db.models import RuleKind
from ui.common import (
    db_session,
    for_display,
    label,
    number,
    require_permission,
    run_action,
    show_error,
    show_flash,
    shown_name,
    tr,
)
from ui.score_explain import render_score_explanation

actor = require_permission("rules", "edit_mql")
st.title(tr("rules.title"))
show_flash()

KINDS = [RuleKind.MQL, RuleKind.FIT, RuleKind.ENGAGEMENT, RuleKind.DECAY, RuleKind.TAG]
editable = KINDS if actor.can("rules") else [RuleKind.MQL]

with db_session() as session:
    rules = list_rules(session=session)


def _validity(text: str, kind: str) -> dict[str, Any] | None:
    """Parse as the user types: a green line when valid, else the message with a caret under the column."""
    if kind == RuleKind.DECAY and not text.strip():
        st.caption(tr("rules.editor.decay_all"))
        return {}
    if not text.strip():  # nothing typed yet: no error, nothing to save
        return None
    try:
        ast = parse(text, context=context_of(kind))
    except RuleSyntaxError as error:
        st.error(error.localized(st.session_state.get("lang", "zh")), icon=":material/error:")
        lines = text.split("\n")
        if 1 <= error.line <= len(lines):
            st.code(lines[error.line - 1] + "\n" + " " * max(error.column - 1, 0) + "^", language=None)
        return None
    st.success(tr("rules.editor.valid"), icon=":material/check_circle:")
    return ast


def _preview(text: str, kind: str, saved: str | None, key: str) -> None:
    try:
        with db_session() as session:
            result = preview(text, session=session, now=utcnow(), saved_text=saved, kind=kind)
    except LeadLoopError as error:
        show_error(error)
        return
    if result.delta is None:
        st.markdown(tr("rules.preview.count", count=number(result.count)))
    else:
        st.markdown(tr("rules.preview.count_delta", count=number(result.count),
                       delta=f"{result.delta:+,}"))
    if not result.sample.empty:
        st.dataframe(for_display(result.sample, values={"stage": "stage"}), hide_index=True, width="stretch",
                     key=f"{key}_sample")


def _params(kind: str, current: dict[str, Any], key: str) -> dict[str, Any]:
    params = dict(current)
    if kind == RuleKind.TAG:
        left, right = st.columns(2)
        params["tag"] = left.text_input(tr("rules.param.tag"), value=str(current.get("tag", "")), key=f"{key}_tag")
        params["remove_when_false"] = right.checkbox(tr("rules.param.remove_when_false"),
                                                     value=bool(current.get("remove_when_false")),
                                                     key=f"{key}_remove")
    elif kind == RuleKind.ENGAGEMENT:
        left, right = st.columns(2)
        params["cap"] = left.number_input(tr("rules.param.cap"), min_value=0.0, value=float(current.get("cap") or 0),
                                          key=f"{key}_cap") or None
        params["period_days"] = right.number_input(tr("rules.param.period_days"), min_value=0,
                                                   value=int(current.get("period_days") or 0),
                                                   key=f"{key}_period") or None
    elif kind == RuleKind.DECAY:
        left, middle, right = st.columns(3)
        params["half_life_days"] = left.number_input(tr("rules.param.half_life_days"), min_value=0,
                                                     value=int(current.get("half_life_days") or 0),
                                                     key=f"{key}_half") or None
        params["idle_days"] = middle.number_input(tr("rules.param.idle_days"), min_value=0,
                                                  value=int(current.get("idle_days") or 0), key=f"{key}_idle") or None
        params["idle_points"] = right.number_input(tr("rules.param.idle_points"), min_value=0.0,
                                                   value=float(current.get("idle_points") or 0),
                                                   key=f"{key}_idle_points") or None
    return {k: v for k, v in params.items() if v is not None}


def _editor(kind: str) -> None:
    group = rules[rules["kind"] == kind]
    if group.empty:
        st.info(tr("rules.none"))
    else:
        st.dataframe(for_display(group.assign(name=group["name"].map(lambda n: shown_name("rule", n))),
                                 times=("updated_at",),
                                 columns=["id", "name", "text", "points", "active", "version", "author",
                                          "updated_at"]),
                     hide_index=True, width="stretch", key=f"rules_list_{kind}")
    key = f"rules_{kind}"
    choices: list[int | None] = [None, *group["id"].tolist()]
    names = {int(r.id): f"#{r.id} {shown_name('rule', r.name)}" for r in group.itertuples()}
    default = 1 if kind == RuleKind.MQL and len(choices) > 1 else 0
    chosen = st.selectbox(tr("rules.editor.choose"), choices, index=default, key=f"{key}_choice",
                          format_func=lambda i: tr("rules.editor.new") if i is None else names[int(i)])
    row = None if chosen is None else group[group["id"] == chosen].iloc[0]
    saved_text = None if row is None else str(row["text"])
    suffix = f"{key}_{chosen or 'new'}"
    name = st.text_input(tr("rules.editor.name"), value="" if row is None else str(row["name"]), key=f"{suffix}_name")
    text = st.text_area(tr("rules.editor.text"), value=saved_text or "", height=110, key=f"{suffix}_text",
                        help=tr("rules.editor.help"))
    ast = _validity(text, kind)
    if ast is not None and text.strip():
        _preview(text, kind, saved_text, suffix)
    points = 0.0
    if kind in (RuleKind.FIT, RuleKind.ENGAGEMENT, RuleKind.DECAY):
        points = st.number_input(tr("rules.editor.points"), value=float(0 if row is None else row["points"]),
                                 step=1.0, key=f"{suffix}_points")
    params = _params(kind, {} if row is None else dict(row["params"] or {}), suffix)
    active = st.checkbox(tr("rules.editor.active"), value=True if row is None else bool(row["active"]),
                         key=f"{suffix}_active")
    note = st.text_input(tr("rules.editor.note"), key=f"{suffix}_note")
    save, toggle = st.columns(2)
    if save.button(tr("rules.editor.save"), type="primary", key=f"{suffix}_save", disabled=ast is None,
                   icon=":material/save:"):
        run_action(save_rule, actor=actor, rule_id=None if chosen is None else int(chosen), name=name, kind=kind,
                   text=text, points=float(points), params=params, active=active, now=utcnow(), note=note,
                   success=tr("rules.editor.saved"))
    if row is not None:
        switch = tr("rules.editor.deactivate") if bool(row["active"]) else tr("rules.editor.activate")
        if toggle.button(switch, key=f"{suffix}_toggle"):
            run_action(set_active, actor=actor, rule_id=int(chosen), active=not bool(row["active"]), now=utcnow(),
                       success=tr("rules.editor.saved"))
        _versions(int(chosen), kind, suffix)


def _versions(rule_id: int, kind: str, key: str) -> None:
    with st.expander(tr("rules.versions.title")):
        with db_session() as session:
            versions = rule_versions(session=session, rule_id=rule_id)
        st.dataframe(for_display(versions, times=("created_at",),
                                 columns=["version", "name", "text", "points", "active", "author", "note",
                                          "created_at"]),
                     hide_index=True, width="stretch", key=f"{key}_versions")
        older = versions["version"].tolist()[1:]
        if older:
            version = st.selectbox(tr("rules.versions.pick"), older, key=f"{key}_restore_pick")
            if st.button(tr("rules.versions.restore"), key=f"{key}_restore"):
                run_action(restore_version, actor=actor, rule_id=rule_id, version=int(version), now=utcnow(),
                           success=tr("rules.versions.restored", version=version))


def _why() -> None:
    query = st.text_input(tr("rules.why.search"), key="rules_why_query", placeholder=tr("rules.why.placeholder"))
    if not query.strip():
        return
    with db_session() as session:
        if query.strip().lstrip("#").isdigit():
            lead_id: int | None = int(query.strip().lstrip("#"))
        else:
            found = search_leads(session=session, actor=actor, query=query, limit=20) if actor.can("journeys") \
                else None
            if found is None or found.empty:
                st.info(tr("rules.why.not_found"))
                return
            options = {int(r.id): f"#{r.id} {r.name or ''} · {r.company or ''}" for r in found.itertuples()}
            lead_id = st.selectbox(tr("rules.why.pick"), list(options), format_func=options.get,
                                   key="rules_why_pick")
        try:
            render_score_explanation(session, int(lead_id or 0), key="rules_why")
        except LeadLoopError as error:
            show_error(error)


tabs = st.tabs([label("rule_kind", k) for k in editable] + [tr("rules.why.tab")])
for tab, kind in zip(tabs, editable, strict=False):
    with tab:
        _editor(kind)
with tabs[-1]:
    _why()
