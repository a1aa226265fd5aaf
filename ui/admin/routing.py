"""Admin → Routing: the ordered routing rules, the reps' capacity, leave and coverage, the SLA calendar and the
CRM hand-over. For sales managers (their team) and admins."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.auth import Actor
from core.clock import utcnow
from core.routing.admin import (
    list_reps,
    list_rules,
    move_rule,
    save_handoff_settings,
    save_rule,
    save_sla_settings,
    sla_settings,
    update_reps,
)
from core.routing.engine import PARAM_LISTS, RULE_KINDS
from core.routing.sales_inbox import REJECT_REASONS
from db.models import TouchpointKind
from ui.admin import act
from ui.common import db_session, for_display, label, tr

PERMISSION = "manage_routing"
WEEKDAYS = list(range(7))


def _joined(values: object) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, (list, tuple)) else ""


def _params_text(kind: str, params: dict) -> str:
    parts = [f"{tr('routing.admin.param.' + key)}：{_joined(params.get(key) or [])}"
             for key in PARAM_LISTS.get(kind, ()) if params.get(key)]
    return "；".join(parts) or tr("routing.admin.by_rep_coverage") if kind in ("territory", "industry",
                                                                               "product_line") else "—"


def render(actor: Actor) -> None:
    with db_session() as session:
        rules = list_rules(session=session, actor=actor)
        reps = list_reps(session=session, actor=actor)
        settings = sla_settings(session=session, actor=actor)
    rules_section(actor, rules, reps)
    st.divider()
    reps_section(actor, reps)
    st.divider()
    sla_section(actor, settings["sla"])
    st.divider()
    handoff_section(actor, settings["handoff"], settings["crm"])


def rules_section(actor: Actor, rules: pd.DataFrame, reps: pd.DataFrame) -> None:
    st.markdown(f"#### {tr('routing.admin.rules')}")
    st.caption(tr("routing.admin.rules_help"))
    shown = rules.assign(
        kind=rules["kind"].map(lambda k: label("routing.kind", k)),
        params=[_params_text(k, p or {}) for k, p in zip(rules["kind"], rules["params"], strict=True)],
        reps=[tr("routing.admin.account_owner") if kind == "account" else "、".join(names) or tr("routing.admin.all_reps")
              for kind, names in zip(rules["kind"], rules["reps"], strict=True)],
        active=rules["active"].map(lambda v: tr(f"common.{str(bool(v)).lower()}")),
    )
    st.dataframe(for_display(shown, columns=["position", "name", "kind", "params", "reps", "active"]),
                 hide_index=True, width="stretch", key="routing_rules_table")
    rep_names = dict(zip(reps["id"].astype(int), reps["display_name"], strict=True))
    options = [None, *rules["id"].astype(int).tolist()]
    by_id = rules.set_index("id") if not rules.empty else rules
    chosen = st.selectbox(tr("routing.admin.pick_rule"), options, key="routing_rule_pick",
                          format_func=lambda i: tr("routing.admin.new_rule") if i is None else
                          f"{by_id.loc[i, 'position']} · {by_id.loc[i, 'name']}")
    current = by_id.loc[chosen] if chosen is not None else None
    if current is not None:
        up, down, _ = st.columns([1, 1, 4])
        if up.button(tr("routing.admin.move_up"), key="rule_up", icon=":material/arrow_upward:"):
            act(actor, move_rule, "routing.admin.moved", rule_id=int(chosen), step=-1, now=utcnow())
        if down.button(tr("routing.admin.move_down"), key="rule_down", icon=":material/arrow_downward:"):
            act(actor, move_rule, "routing.admin.moved", rule_id=int(chosen), step=1, now=utcnow())
    with st.form("routing_rule_form"):
        params = (current["params"] if current is not None else {}) or {}
        c1, c2 = st.columns(2)
        name = c1.text_input(tr("col.name"), value=current["name"] if current is not None else "")
        kind = c2.selectbox(tr("col.kind"), RULE_KINDS, format_func=lambda k: label("routing.kind", k),
                            index=RULE_KINDS.index(current["kind"]) if current is not None else 1)
        c3, c4 = st.columns(2)
        provinces = c3.text_input(tr("routing.admin.param.provinces"), value=_joined(params.get("provinces")),
                                  help=tr("routing.admin.list_help"))
        cities = c4.text_input(tr("routing.admin.param.cities"), value=_joined(params.get("cities")),
                               help=tr("routing.admin.list_help"))
        c5, c6 = st.columns(2)
        industries = c5.text_input(tr("routing.admin.param.industries"), value=_joined(params.get("industries")),
                                   help=tr("routing.admin.list_help"))
        product_lines = c6.text_input(tr("routing.admin.param.product_lines"),
                                      value=_joined(params.get("product_lines")), help=tr("routing.admin.list_help"))
        chosen_reps = st.multiselect(
            tr("routing.admin.rule_reps"), list(rep_names), format_func=lambda i: rep_names.get(i, f"#{i}"),
            default=[int(i) for i in (current["rep_ids"] if current is not None else []) if int(i) in rep_names],
            help=tr("routing.admin.rule_reps_help"), placeholder=tr("routing.admin.choose"))
        active = st.checkbox(tr("col.active"), value=bool(current["active"]) if current is not None else True)
        left, right = st.columns(2)
        if left.form_submit_button(tr("routing.admin.save_rule"), type="primary", width="stretch"):
            act(actor, save_rule, "routing.admin.rule_saved", rule_id=int(chosen) if chosen is not None else None,
                name=name, kind=kind, rep_ids=chosen_reps, active=active, now=utcnow(),
                params={"provinces": provinces, "cities": cities, "industries": industries,
                        "product_lines": product_lines})
        if chosen is not None and right.form_submit_button(tr("routing.admin.delete_rule"), width="stretch"):
            from core.routing.admin import delete_rule

            act(actor, delete_rule, "routing.admin.rule_deleted", rule_id=int(chosen), now=utcnow())


def reps_section(actor: Actor, reps: pd.DataFrame) -> None:
    st.markdown(f"#### {tr('routing.admin.reps')}")
    st.caption(tr("routing.admin.reps_help"))
    if reps.empty:
        st.info(tr("routing.admin.no_reps"))
        return
    editable = reps[["id", "display_name", "load", "capacity", "out_of_office", "territories", "industries",
                     "product_lines"]].copy()
    for column in ("territories", "industries", "product_lines"):
        editable[column] = editable[column].map(_joined)
    edited = st.data_editor(
        editable, key="routing_reps_editor", hide_index=True, width="stretch",
        disabled=["id", "display_name", "load"],
        column_config={
            "id": None,
            "display_name": st.column_config.TextColumn(tr("col.display_name")),
            "load": st.column_config.NumberColumn(tr("col.load")),
            "capacity": st.column_config.NumberColumn(tr("col.capacity"), min_value=0, max_value=10000, step=1),
            "out_of_office": st.column_config.CheckboxColumn(tr("col.out_of_office")),
            "territories": st.column_config.TextColumn(tr("col.territories"), help=tr("routing.admin.list_help")),
            "industries": st.column_config.TextColumn(tr("col.industries"), help=tr("routing.admin.list_help")),
            "product_lines": st.column_config.TextColumn(tr("col.product_lines"),
                                                         help=tr("routing.admin.list_help")),
        },
    )
    if st.button(tr("routing.admin.save_reps"), key="save_reps", type="primary"):
        changes = [
            {"id": int(row["id"]), "capacity": int(row["capacity"]), "out_of_office": bool(row["out_of_office"]),
             "territories": row["territories"] or "", "industries": row["industries"] or "",
             "product_lines": row["product_lines"] or ""}
            for _, row in edited.iterrows()
        ]
        act(actor, update_reps, "routing.admin.reps_saved", changes=changes, now=utcnow())


def sla_section(actor: Actor, sla: dict) -> None:
    st.markdown(f"#### {tr('routing.admin.sla')}")
    with st.form("sla_form"):
        c1, c2, c3, c4 = st.columns(4)
        hours = c1.number_input(tr("routing.admin.sla_hours"), min_value=0.5, max_value=720.0, step=0.5,
                                value=float(sla.get("hours", 8)))
        start = c2.number_input(tr("routing.admin.work_start"), min_value=0.0, max_value=23.5, step=0.5,
                                value=float(sla.get("work_start", 9)))
        end = c3.number_input(tr("routing.admin.work_end"), min_value=0.5, max_value=24.0, step=0.5,
                              value=float(sla.get("work_end", 18)))
        remind = c4.number_input(tr("routing.admin.remind_before"), min_value=0.0, max_value=720.0, step=0.5,
                                 value=float(sla.get("remind_before_hours", 2)))
        workdays = st.multiselect(tr("routing.admin.workdays"), WEEKDAYS, default=sla.get("workdays", [0, 1, 2, 3, 4]),
                                  format_func=lambda d: tr(f"routing.weekday.{d}"), placeholder=tr("routing.admin.choose"))
        c5, c6 = st.columns(2)
        holidays = c5.text_area(tr("routing.admin.holidays"), value=", ".join(sla.get("holidays") or []),
                                help=tr("routing.admin.dates_help"))
        extra = c6.text_area(tr("routing.admin.extra_workdays"), value=", ".join(sla.get("extra_workdays") or []),
                             help=tr("routing.admin.dates_help"))
        email = st.checkbox(tr("routing.admin.sla_email"), value=bool(sla.get("email", True)))
        robots = sla.get("robots") or {}
        r1, r2, r3 = st.columns(3)
        wecom = r1.text_input(tr("routing.admin.robot.wecom"), value=robots.get("wecom", ""), type="password")
        dingtalk = r2.text_input(tr("routing.admin.robot.dingtalk"), value=robots.get("dingtalk", ""),
                                 type="password")
        feishu = r3.text_input(tr("routing.admin.robot.feishu"), value=robots.get("feishu", ""), type="password")
        st.caption(tr("routing.admin.robots_help"))
        if st.form_submit_button(tr("routing.admin.save_sla"), type="primary"):
            act(actor, save_sla_settings, "routing.admin.sla_saved", hours=hours, work_start=start, work_end=end,
                workdays=workdays, remind_before_hours=remind, holidays=holidays, extra_workdays=extra, email=email,
                robots={"wecom": wecom, "dingtalk": dingtalk, "feishu": feishu}, now=utcnow())


def handoff_section(actor: Actor, handoff: dict, crm: dict) -> None:
    st.markdown(f"#### {tr('routing.admin.handoff')}")
    with st.form("handoff_form"):
        url = st.text_input(tr("routing.admin.crm_url"), value=crm.get("webhook_url", ""), type="password",
                            help=tr("routing.admin.crm_url_help"))
        disqualify = st.multiselect(tr("routing.admin.disqualify_reasons"), REJECT_REASONS,
                                    default=[r for r in handoff.get("disqualify_reasons") or [] if r in REJECT_REASONS],
                                    format_func=lambda r: label("reject_reason", r),
                                    help=tr("routing.admin.disqualify_help"), placeholder=tr("routing.admin.choose"))
        st.markdown(tr("routing.admin.recycle_days"))
        days = handoff.get("recycle_days") or {}
        recyclable = [r for r in REJECT_REASONS if r not in ("competitor", "duplicate")]
        columns = st.columns(len(recyclable))
        recycle_days = {
            reason: column.number_input(label("reject_reason", reason), min_value=1, max_value=3650, step=1,
                                        value=int(days.get(reason, 30)), key=f"recycle_days_{reason}")
            for reason, column in zip(recyclable, columns, strict=True)
        }
        kinds = [k.value for k in TouchpointKind]
        alert_kinds = st.multiselect(tr("routing.admin.alert_kinds"), kinds,
                                     default=[k for k in handoff.get("alert_kinds") or [] if k in kinds],
                                     format_func=lambda k: label("touchpoint", k), placeholder=tr("routing.admin.choose"))
        jump = st.number_input(tr("routing.admin.score_jump"), min_value=0.0, max_value=1000.0, step=1.0,
                               value=float(handoff.get("score_jump", 15)), help=tr("routing.admin.score_jump_help"))
        if st.form_submit_button(tr("routing.admin.save_handoff"), type="primary"):
            act(actor, save_handoff_settings, "routing.admin.handoff_saved", crm_webhook_url=url,
                disqualify_reasons=disqualify, recycle_days=recycle_days, alert_kinds=alert_kinds, score_jump=jump,
                now=utcnow())
