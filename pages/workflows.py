"""Workflows: the list with per-step counts, the editor (trigger, steps through forms, diagram, validation),
activate/pause/resume, templates, simulate for a lead, and the scheduler's status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

from core.clock import utcnow
from core.errors import LeadLoopError
from core.i18n import has_key
from core.scheduler import status as scheduler_status
from core.workflows import (
    STEP_TYPES,
    TEMPLATES,
    TRIGGER_TYPES,
    activate_workflow,
    create_from_template,
    create_workflow,
    enroll_leads,
    enrollments,
    get_workflow,
    list_workflows,
    pause_workflow,
    resume_workflow,
    save_workflow,
    simulate,
    step_counts,
    validate_definition,
    validate_trigger,
)
from core.workflows.definition import (
    CHECK_KINDS,
    EXITS,
    GRADES,
    REENTRY,
    problem_text,
    to_dot,
    with_step,
    without_step,
)
from db.models import Stage, TouchpointKind
from ui.common import (
    db_session,
    for_display,
    label,
    lang,
    local_time,
    require_permission,
    run_action,
    show_error,
    shown_name,
    tr,
)

actor = require_permission("workflows")
st.title(tr("workflows.title"))

# Which fields each step type's form shows: (parameter, widget).
FIELDS: dict[str, list[tuple[str, str]]] = {
    "send_email": [("subject", "text"), ("body", "area")],
    "send_sms": [("text", "area")], "send_wechat": [("text", "area")], "send_wecom": [("text", "area")],
    "add_tag": [("tag", "text")], "remove_tag": [("tag", "text")],
    "add_group": [("group", "text")], "remove_group": [("group", "text")],
    "move_group": [("from", "text"), ("to", "text")],
    "change_stage": [("stage", "stage")], "adjust_score": [("points", "number"), ("component", "component")],
    "assign": [("rep_id", "int")], "notify": [("to", "text"), ("text", "area")],
    "webhook": [("url", "text"), ("body", "area")],
    "wait": [("days", "number"), ("hours", "number"), ("minutes", "number")],
    "wait_until": [("at", "text")],
    "wait_window": [("start_hour", "int"), ("end_hour", "int"), ("weekdays", "weekdays")],
    "condition": [("check", "check")], "split": [("percent", "number")], "end": [],
}
TRIGGER_FIELDS: dict[str, list[tuple[str, str]]] = {
    "manual": [], "group_enter": [("group", "text")], "group_leave": [("group", "text")],
    "tag_added": [("tag", "text")], "score_crosses": [("threshold", "number"), ("component", "component")],
    "grade_crosses": [("grade", "grade")], "stage_becomes": [("stage", "stage")],
    "touchpoint": [("kind", "touch"), ("campaign", "int")], "imported": [("channel", "text")],
    "rejected": [("reasons", "list")],
}
WEEKDAYS = list(range(7))


def step_labels() -> dict[str, str]:
    labels = {kind: tr(f"workflows.step.{kind}") for kind in STEP_TYPES}
    labels.update({f"exit.{name}": tr(f"workflows.exit.{name}") for name in ("yes", "no", "a", "b")})
    return labels


def show_problems(problems: list[Any]) -> None:
    if not problems:
        st.success(tr("workflows.valid"), icon=":material/check_circle:")
        return
    lines = [f"- **{p.step or tr('workflows.whole')}**: {problem_text(p, lang())}" for p in problems]
    st.warning(tr("workflows.invalid", count=len(problems)) + "\n\n" + "\n".join(lines))


def field_input(name: str, widget: str, value: Any, key: str) -> Any:
    caption = tr(f"workflows.field.{name}")
    if widget == "area":
        return st.text_area(caption, value=str(value or ""), key=key, help=tr("workflows.merge_help"))
    if widget == "number":
        return st.number_input(caption, value=float(value or 0), key=key)
    if widget == "int":
        return st.number_input(caption, value=int(value or 0), step=1, key=key)
    if widget == "stage":
        options = [s.value for s in Stage]
        return st.selectbox(caption, options, index=options.index(value) if value in options else 0,
                            format_func=lambda v: label("stage", v), key=key)
    if widget == "component":
        options = ["engagement", "fit"]
        return st.selectbox(caption, options, index=options.index(value) if value in options else 0,
                            format_func=lambda v: tr(f"workflows.component.{v}"), key=key)
    if widget == "grade":
        return st.selectbox(caption, list(GRADES), index=list(GRADES).index(value) if value in GRADES else 1, key=key)
    if widget == "touch":
        options = [""] + [k.value for k in TouchpointKind]
        return st.selectbox(caption, options, index=options.index(value) if value in options else 0,
                            format_func=lambda v: label("touchpoint", v) if v else "—", key=key)
    if widget == "weekdays":
        return st.multiselect(caption, WEEKDAYS, default=value if value is not None else [0, 1, 2, 3, 4],
                              format_func=lambda d: tr(f"workflows.weekday.{d}"), key=key)
    if widget == "list":
        return st.text_input(caption, value=", ".join(value or []), key=key, help=tr("workflows.list_help"))
    return st.text_input(caption, value=str(value or ""), key=key)


def clean(widget: str, value: Any) -> Any:
    if widget == "int":
        return int(value) or None
    if widget == "list":
        return [part.strip() for part in str(value).replace("，", ",").split(",") if part.strip()]
    if widget == "touch":
        return value or None
    return value


# ---------------------------------------------------------------------------------------------------------------
# The list
# ---------------------------------------------------------------------------------------------------------------
with db_session() as session:
    workflows = list_workflows(session=session, include_templates=False)
if workflows.empty:
    st.info(tr("workflows.none"))
else:
    shown = workflows.copy()
    shown["trigger"] = shown["trigger"].map(lambda t: tr(f"trigger.{(t or {}).get('type', 'manual')}"))
    shown["name"] = shown["name"].map(lambda n: shown_name("workflow", n))
    st.dataframe(
        for_display(shown, values={"status": "workflow_status"}, times=("updated_at",),
                    columns=["id", "name", "status", "trigger", "steps", "in_progress", "completed", "exited",
                             "failed", "version", "updated_at"]),
        hide_index=True, width="stretch", key="wf_list",
    )

new_col, template_col = st.columns(2)
with new_col.form("wf_new"):
    new_name = st.text_input(tr("workflows.new_name"), key="wf_new_name")
    if st.form_submit_button(tr("workflows.create"), icon=":material/add:"):
        created = run_action(create_workflow, actor=actor, now=utcnow(), name=new_name, rerun=False)
        if created is not None:
            st.session_state["wf_pick"] = int(created.id)
            st.session_state["flash"] = tr("workflows.created")
            st.rerun()
with template_col.form("wf_template"):
    template_key = st.selectbox(tr("workflows.template"), list(TEMPLATES),
                                format_func=lambda k: tr(f"workflows.template.{k}"), key="wf_template_key")
    st.caption(tr(f"workflows.template_help.{template_key}") if template_key else "")
    if st.form_submit_button(tr("workflows.use_template"), icon=":material/content_copy:"):
        created = run_action(create_from_template, actor=actor, now=utcnow(), key=template_key, rerun=False)
        if created is not None:
            st.session_state["wf_pick"] = int(created.id)
            st.session_state["flash"] = tr("workflows.created")
            st.rerun()

with db_session() as session:
    workflows = list_workflows(session=session, include_templates=False)
if workflows.empty:
    st.stop()
names = {int(i): shown_name("workflow", n) for i, n in zip(workflows["id"], workflows["name"], strict=True)}
if st.session_state.get("wf_pick") not in names:
    st.session_state["wf_pick"] = next(iter(names))
workflow_id = st.selectbox(tr("workflows.pick"), list(names), format_func=lambda i: f"#{i} {names[i]}",
                           key="wf_pick")
with db_session() as session:
    wf = get_workflow(session=session, workflow_id=workflow_id)
    counts = step_counts(session=session, workflow_id=workflow_id)
definition: dict[str, Any] = wf["definition"]
steps: dict[str, Any] = definition.get("steps") or {}

st.subheader(tr("workflows.editor"))
st.markdown(f"**{shown_name('workflow', wf['name'])}**")
st.caption(f"{label('workflow_status', wf['status'])} · {tr('workflows.version', version=wf['version'])} · "
           f"{tr('trigger.' + (wf['trigger'].get('type') or 'manual'))}")
buttons = st.columns(4)
if wf["status"] in ("draft", "archived") and buttons[0].button(tr("workflows.activate"), type="primary",
                                                               key="wf_activate", icon=":material/play_arrow:"):
    run_action(activate_workflow, actor=actor, now=utcnow(), workflow_id=workflow_id,
               success=tr("workflows.activated"))
if wf["status"] == "active" and buttons[0].button(tr("workflows.pause"), key="wf_pause", icon=":material/pause:"):
    run_action(pause_workflow, actor=actor, now=utcnow(), workflow_id=workflow_id, success=tr("workflows.paused"))
if wf["status"] == "paused" and buttons[0].button(tr("workflows.resume"), key="wf_resume",
                                                  icon=":material/play_arrow:"):
    run_action(resume_workflow, actor=actor, now=utcnow(), workflow_id=workflow_id, success=tr("workflows.resumed"))

labels = step_labels()
count_text = {row.step_id: tr("workflows.counts", entered=row.entered, waiting=row.waiting, done=row.done,
                              failed=row.failed) for row in counts.itertuples()}
diagram_tab, steps_tab, trigger_tab, enroll_tab, simulate_tab, scheduler_tab = st.tabs(
    [tr("workflows.tab.diagram"), tr("workflows.tab.steps"), tr("workflows.tab.trigger"),
     tr("workflows.tab.enroll"), tr("workflows.tab.simulate"), tr("workflows.tab.scheduler")])

with diagram_tab:
    show_problems(validate_trigger(wf["trigger"]) + validate_definition(definition))
    if steps:
        st.graphviz_chart(to_dot(definition, labels, count_text), width="stretch")
    shown_counts = counts.copy()
    shown_counts["type"] = shown_counts["type"].map(lambda k: labels.get(k, k))
    st.dataframe(shown_counts.rename(columns={c: tr(f"workflows.col.{c}") for c in shown_counts.columns}),
                 hide_index=True, width="stretch", key="wf_counts")
    with db_session() as session:
        problems = enrollments(session=session, workflow_id=workflow_id, limit=50, problems_only=True)
    if not problems.empty:
        st.markdown(f"**{tr('workflows.problems')}**")
        st.dataframe(for_display(problems, values={"status": "enrollment_status"}, times=("next_run_at",),
                                 columns=["lead_id", "name", "current_step", "status", "attempts", "next_run_at",
                                          "last_error"]),
                     hide_index=True, width="stretch", key="wf_problems")

# ---------------------------------------------------------------------------------------------------------------
# Steps editor
# ---------------------------------------------------------------------------------------------------------------
with steps_tab:
    NEW = "__new__"
    choices = [NEW, *steps]
    editing = st.selectbox(tr("workflows.edit_step"), choices, key=f"wf_step_pick_{workflow_id}",
                           format_func=lambda s: tr("workflows.new_step") if s == NEW
                           else f"{s} · {labels.get(steps[s].get('type'), '')}")
    current = {} if editing == NEW else dict(steps[editing])
    kind = st.selectbox(tr("workflows.step_type"), list(STEP_TYPES),
                        index=list(STEP_TYPES).index(current.get("type")) if current.get("type") in STEP_TYPES else 0,
                        format_func=lambda k: labels[k], key=f"wf_step_type_{workflow_id}_{editing}")
    targets = ["", *steps]
    with st.form(f"wf_step_form_{workflow_id}_{editing}"):
        step_id = st.text_input(tr("workflows.field.step_id"), value="" if editing == NEW else editing,
                                key=f"wf_step_id_{workflow_id}_{editing}")
        values: dict[str, Any] = {}
        for name, widget in FIELDS[kind]:
            if widget == "check":
                check = current.get("check") or {}
                check_kind = st.selectbox(tr("workflows.field.check"), list(CHECK_KINDS),
                                          index=list(CHECK_KINDS).index(check.get("kind"))
                                          if check.get("kind") in CHECK_KINDS else 0,
                                          format_func=lambda k: tr(f"workflows.check.{k}"),
                                          key=f"wf_check_{workflow_id}_{editing}")
                check_value = st.text_input(tr("workflows.field.check_value"),
                                            value=str(check.get("tag") or check.get("group") or check.get("stage")
                                                      or check.get("rule") or ""),
                                            help=tr("workflows.check_value_help"),
                                            key=f"wf_check_value_{workflow_id}_{editing}")
                values["check"] = (check_kind, check_value)
            else:
                values[name] = field_input(name, widget, current.get(name), f"wf_f_{name}_{workflow_id}_{editing}")
        exit_values = {}
        for name in EXITS.get(kind, ("next",)):
            value = current.get(name) or ""
            exit_values[name] = st.selectbox(tr(f"workflows.exit.{name}"), targets,
                                             index=targets.index(value) if value in targets else 0,
                                             format_func=lambda s: s or "—",
                                             key=f"wf_exit_{name}_{workflow_id}_{editing}")
        make_start = st.checkbox(tr("workflows.make_start"), value=definition.get("start") == editing,
                                 key=f"wf_start_{workflow_id}_{editing}")
        saved = st.form_submit_button(tr("workflows.save_step"), type="primary")
    if saved:
        step: dict[str, Any] = {"type": kind}
        for name, widget in FIELDS[kind]:
            if widget == "check":
                check_kind, check_value = values["check"]
                param = {"has_tag": "tag", "in_group": "group", "stage_is": "stage", "rule": "rule"}.get(check_kind)
                step["check"] = {"kind": check_kind, **({param: check_value.strip()} if param else {})}
            else:
                cleaned = clean(widget, values[name])
                if cleaned not in (None, ""):
                    step[name] = cleaned
        step.update({name: target for name, target in exit_values.items() if target})
        try:
            updated = with_step(definition, step_id, step, old_id=None if editing == NEW else editing,
                                start=make_start)
        except LeadLoopError as error:
            show_error(error)
        else:
            run_action(save_workflow, actor=actor, now=utcnow(), workflow_id=workflow_id, definition=updated,
                       success=tr("workflows.step_saved"))
    if editing != NEW and st.button(tr("workflows.delete_step"), key=f"wf_delete_{workflow_id}_{editing}",
                                    icon=":material/delete:"):
        run_action(save_workflow, actor=actor, now=utcnow(), workflow_id=workflow_id,
                   definition=without_step(definition, editing), success=tr("workflows.step_deleted"))

# ---------------------------------------------------------------------------------------------------------------
# Trigger, re-entry, name
# ---------------------------------------------------------------------------------------------------------------
with trigger_tab:
    trigger = wf["trigger"]
    trigger_type = st.selectbox(tr("workflows.trigger_type"), list(TRIGGER_TYPES),
                                index=list(TRIGGER_TYPES).index(trigger.get("type"))
                                if trigger.get("type") in TRIGGER_TYPES else 0,
                                format_func=lambda k: tr(f"trigger.{k}"), key=f"wf_trigger_type_{workflow_id}")
    with st.form(f"wf_trigger_form_{workflow_id}"):
        name = st.text_input(tr("workflows.field.name"), value=wf["name"], key=f"wf_name_{workflow_id}")
        description = st.text_area(tr("workflows.field.description"), value=wf["description"],
                                   key=f"wf_description_{workflow_id}")
        trigger_values = {param: field_input(param, widget, trigger.get(param), f"wf_t_{param}_{workflow_id}")
                          for param, widget in TRIGGER_FIELDS[trigger_type]}
        condition = st.text_input(tr("workflows.field.condition"), value=trigger.get("condition") or "",
                                  help=tr("workflows.condition_help"), key=f"wf_t_condition_{workflow_id}")
        reentry = st.selectbox(tr("workflows.field.reentry"), list(REENTRY),
                               index=list(REENTRY).index(wf["reentry"]) if wf["reentry"] in REENTRY else 0,
                               format_func=lambda r: tr(f"workflows.reentry.{r}"), key=f"wf_reentry_{workflow_id}")
        reentry_days = st.number_input(tr("workflows.field.reentry_days"), min_value=0,
                                       value=int(wf["reentry_days"] or 0), key=f"wf_reentry_days_{workflow_id}")
        submitted = st.form_submit_button(tr("workflows.save"), type="primary")
    if submitted:
        new_trigger: dict[str, Any] = {"type": trigger_type}
        for param, widget in TRIGGER_FIELDS[trigger_type]:
            cleaned = clean(widget, trigger_values[param])
            if cleaned not in (None, "", []):
                new_trigger[param] = cleaned
        if condition.strip():
            new_trigger["condition"] = condition.strip()
        run_action(save_workflow, actor=actor, now=utcnow(), workflow_id=workflow_id, name=name,
                   description=description, trigger=new_trigger, reentry=reentry,
                   reentry_days=int(reentry_days) or None, success=tr("workflows.saved"))

with enroll_tab:
    with st.form(f"wf_enroll_{workflow_id}"):
        raw_ids = st.text_input(tr("workflows.enroll_ids"), help=tr("workflows.list_help"),
                                key=f"wf_enroll_ids_{workflow_id}")
        if st.form_submit_button(tr("workflows.enroll")):
            ids = [int(p) for p in raw_ids.replace("，", ",").split(",") if p.strip().isdigit()]
            count = run_action(enroll_leads, actor=actor, now=utcnow(), workflow_id=workflow_id, lead_ids=ids,
                               rerun=False)
            if count is not None:
                st.success(tr("workflows.enrolled", count=count))

with simulate_tab:
    with st.form(f"wf_simulate_{workflow_id}"):
        lead_id = st.number_input(tr("workflows.simulate_lead"), min_value=1, step=1, key="wf_sim_lead")
        go = st.form_submit_button(tr("workflows.simulate"), icon=":material/science:")
    if go:
        try:
            with db_session() as session:
                plan = simulate(session=session, lead_id=int(lead_id), now=utcnow())
        except LeadLoopError as error:
            show_error(error)
        else:
            if plan.empty:
                st.info(tr("workflows.simulate_nothing"))
            else:
                plan["state"] = plan["state"].map(lambda s: tr(f"workflows.state.{s}"))
                plan["type"] = plan["type"].map(lambda k: labels.get(k, k or "—"))
                plan["at"] = plan["at"].map(local_time)
                st.dataframe(plan[["workflow", "state", "at", "step_id", "type", "detail"]].rename(
                    columns={c: tr(f"workflows.col.{c}") for c in plan.columns}), hide_index=True, width="stretch",
                    key="wf_sim_table")


@st.fragment(run_every=timedelta(seconds=30))
def scheduler_panel() -> None:
    with db_session() as session:
        panel = scheduler_status(session=session, now=utcnow())
    cols = st.columns(4)
    cols[0].metric(tr("workflows.sched.leader"), panel["leader"] or tr("workflows.sched.no_leader"))
    cols[1].metric(tr("workflows.sched.last_tick"), local_time(panel["last_tick"])[5:] if panel["last_tick"] else "—")
    cols[2].metric(tr("workflows.sched.due"), panel["due_steps"])
    cols[3].metric(tr("workflows.sched.failed"), panel["failed_enrollments"] + panel["failed_messages"])
    st.caption(tr("workflows.sched.queue", waiting=panel["waiting"], queued=panel["queued_messages"]))
    if panel["jobs"]:
        jobs = [{"job": tr(f"workflows.job.{j['job']}") if has_key(f"workflows.job.{j['job']}") else j["job"],
                 "started_at": local_time(j["started_at"]), "ok": "✓" if j["ok"] else "✗",
                 "error": j["error"] or ""} for j in panel["jobs"]]
        st.dataframe(for_display(pd.DataFrame(jobs)), hide_index=True, width="stretch",
                     key="wf_jobs")


with scheduler_tab:
    scheduler_panel()
