"""Widgets of the sales inbox: an MQL card a rep can handle with one thumb, and its history.

Buttons act through callbacks (``on_click``), which run before the page is drawn again: if someone else
decided the MQL a moment earlier, the card is gone from the fresh inbox, yet the tap still reaches core and
the person is told who did what (``AlreadyDecided``) instead of the tap vanishing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from core.clock import to_local, utcnow
from core.errors import LeadLoopError
from core.routing import REJECT_REASONS, accept, reject
from core.routing.engine import split_routed_by
from core.routing.sales_inbox import LeadHistory
from ui.common import db_session, label, lang, local_time, number, shown_name, tr

FLASH_KEY = "inbox_flash"
GRADE_COLORS = {"A": "green", "B": "blue", "C": "orange", "D": "gray"}


# ---------------------------------------------------------------------------------------------------------------
# Acting (callbacks)
# ---------------------------------------------------------------------------------------------------------------
def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH_KEY] = (kind, text)


def show_inbox_flash() -> None:
    """What the last tap did (success or what happened instead), once, at the top and as a toast."""
    flash = st.session_state.pop(FLASH_KEY, None)
    if not flash:
        return
    kind, text = flash
    if kind == "success":
        st.success(text, icon=":material/check_circle:")
        st.toast(text, icon=":material/check_circle:")
    else:
        st.error(text, icon=":material/error:")
        st.toast(text, icon=":material/error:")


def run_callback(func: Any, success: str | Callable[[Any], str], **kwargs: Any) -> None:
    """Call a core command in its own transaction; keep the outcome for the next draw.

    ``success`` is the message, or a function of the command's result that returns it."""
    try:
        with db_session() as session:
            result = func(session=session, **kwargs)
    except LeadLoopError as error:
        _flash("error", error.localized(lang()))
        return
    _flash("success", success(result) if callable(success) else success)


def _accept(actor: Any, assignment_id: int, version: int, who: str) -> None:
    run_callback(accept, lambda crm_status: tr("inbox.accepted", lead=who) + " " + tr(f"inbox.crm_next.{crm_status}"),
                 actor=actor, assignment_id=assignment_id, expected_version=version, now=utcnow())


def _reject(actor: Any, assignment_id: int, version: int, who: str) -> None:
    reason = st.session_state.get(f"reason_{assignment_id}")
    note = st.session_state.get(f"note_{assignment_id}", "")
    come_back = st.session_state.get(f"back_{assignment_id}")
    if not reason:
        _flash("error", tr("routing.reason_required"))
        return
    run_callback(reject, tr("inbox.rejected", lead=who, reason=label("reject_reason", reason)), actor=actor,
                 assignment_id=assignment_id, expected_version=version, reason=reason, note=note or "",
                 come_back=come_back if reason == "not_now" else None, now=utcnow())


# ---------------------------------------------------------------------------------------------------------------
# Showing
# ---------------------------------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA or value == "":
        return "—"
    return str(value)


def routed_text(value: str | None) -> str:
    kind, name = split_routed_by(value)
    if not kind:
        return _text(name)
    name = shown_name("routing_rule", name)
    return f"{tr(f'routing.kind.{kind}')}：{name}" if lang() == "zh" else f"{tr(f'routing.kind.{kind}')}: {name}"


def crm_text(value: Any) -> str:
    """The CRM hand-over status in words (``sent``, ``queued``, ``export``, ``failed: …``)."""
    if not isinstance(value, str) or not value:
        return "—"
    code, _, detail = value.partition(": ")
    if code in ("sent", "queued", "export", "failed"):
        return tr(f"inbox.crm.{code}", detail=detail)
    return value


def sla_badge(row: Any) -> None:
    left = row["sla_hours_left"]
    if left is None or pd.isna(left):
        st.badge(tr("inbox.sla_none"), color="gray")
    elif left <= 0:
        st.badge(tr("inbox.sla_breached"), icon=":material/alarm:", color="red")
    elif left <= 2:
        st.badge(tr("inbox.sla_left", hours=number(left, 1)), icon=":material/timer:", color="orange")
    else:
        st.badge(tr("inbox.sla_left", hours=number(left, 1)), icon=":material/timer:", color="blue")


def why_text(row: Any) -> str:
    """Why the lead qualified: the rule or the person that made it an MQL, and the reason given."""
    rule, by, reason = row.get("why_rule"), row.get("why_by"), row.get("why_reason")
    if rule == "come_back":
        source = tr("inbox.why_come_back")
    elif isinstance(rule, str) and rule:
        source = tr("inbox.why_rule", rule=shown_name("rule", rule))
    elif isinstance(by, str) and by:
        source = tr("inbox.why_person", person=by)
    else:
        source = tr("inbox.why_unknown")
    extra = reason if isinstance(reason, str) and reason and reason not in (rule, "not_now") else ""
    when = local_time(row.get("why_at")) if row.get("why_at") is not None else ""
    return " · ".join(p for p in (source, extra, when) if p and p != "—")


def mql_card(actor: Any, row: Any, history: LeadHistory, *, actions: bool = True) -> None:
    """One MQL: who, how hot, how long left, why, then Accept (one tap) and Reject (reason + note)."""
    assignment_id, lead_id = int(row["assignment_id"]), int(row["lead_id"])
    version = int(row["version"])
    who = " · ".join(p for p in (_text(row["name"]), _text(row["company"])) if p != "—") or f"#{lead_id}"
    with st.container(border=True, key=f"mql_card_{assignment_id}"):
        st.markdown(f"**{_text(row['name'])}** · {_text(row['company'])}")
        st.caption(" · ".join(p for p in (_text(row["title"]), _text(row.get("city") or row.get("province")),
                                           _text(shown_name("channel", row["channel"]))) if p != "—"))
        badges = st.container(horizontal=True, gap="small")
        with badges:
            sla_badge(row)
            grade = row["grade"] if isinstance(row["grade"], str) else None
            st.badge(tr("inbox.grade", grade=grade or "—"), color=GRADE_COLORS.get(grade or "", "gray"))
            st.badge(tr("inbox.engagement", score=number(row["engagement_score"])), icon=":material/bolt:",
                     color="violet")
            if actor.role != "sales":
                st.badge(_text(row["rep"]), icon=":material/person:", color="gray")
        st.markdown(f"{tr('inbox.why')}：{why_text(row)}" if lang() == "zh" else f"{tr('inbox.why')}: {why_text(row)}")
        contact = []
        if isinstance(row["phone"], str) and row["phone"]:
            contact.append(f"[{row['phone']}](tel:{row['phone']})")
        if isinstance(row["email"], str) and row["email"]:
            contact.append(f"[{row['email']}](mailto:{row['email']})")
        if contact:
            st.markdown(" · ".join(contact))
        if actions:
            st.button(tr("inbox.accept"), key=f"accept_{assignment_id}", type="primary", width="stretch",
                      icon=":material/check:", on_click=_accept, args=(actor, assignment_id, version, who))
            with st.expander(tr("inbox.reject"), icon=":material/undo:"):
                with st.form(f"reject_form_{assignment_id}", border=False):
                    st.radio(tr("inbox.reason"), REJECT_REASONS, index=None, key=f"reason_{assignment_id}",
                             format_func=lambda r: label("reject_reason", r))
                    st.text_area(tr("inbox.note"), key=f"note_{assignment_id}", height=80,
                                 placeholder=tr("inbox.note_hint"))
                    default_back = (to_local(utcnow()) + timedelta(days=90)).date()  # type: ignore[union-attr]
                    st.date_input(tr("inbox.come_back"), value=default_back, key=f"back_{assignment_id}",
                                  min_value=date.today() + timedelta(days=1), help=tr("inbox.come_back_help"))
                    st.form_submit_button(tr("inbox.reject_submit"), width="stretch", icon=":material/undo:",
                                          key=f"reject_{assignment_id}", on_click=_reject,
                                          args=(actor, assignment_id, version, who))
        with st.expander(tr("inbox.history"), icon=":material/history:"):
            history_block(row, history.of(lead_id))


def history_block(row: Any, parts: dict[str, pd.DataFrame]) -> None:
    """Profile, score explanation, touchpoints, earlier owners with their notes, stage moves."""
    profile = [
        (tr("col.title"), row.get("title")), (tr("col.phone"), row.get("phone")),
        (tr("col.email"), row.get("email")),
        (tr("inbox.place"), " ".join(str(p) for p in (row.get("province"), row.get("city")) if isinstance(p, str))),
        (tr("inbox.industry"), row.get("industry")), (tr("inbox.product_interest"), row.get("product_interest")),
        (tr("col.account"), row.get("account")), (tr("col.routed_by"), routed_text(row.get("routed_by"))),
        (tr("col.assigned_at"), local_time(row.get("assigned_at"))),
        (tr("inbox.sla_due"), local_time(row.get("sla_due_at"))),
    ]
    st.markdown("  \n".join(f"**{name}**：{_text(value)}" for name, value in profile))
    totals = parts["score_totals"].set_index("component")["points"] if not parts["score_totals"].empty else {}
    st.markdown(f"**{tr('inbox.score_title')}** — {tr('col.fit_score')} {number(row.get('fit_score'))} · "
                f"{tr('col.engagement_score')} {number(row.get('engagement_score'))}")
    if len(totals):
        st.caption(tr("inbox.score_ledger_total", fit=number(totals.get("fit", 0)),
                      engagement=number(totals.get("engagement", 0))))
    lines = [f"- {local_time(r.occurred_at)} · {tr('inbox.component.' + str(r.component))} "
             f"{'+' if r.points >= 0 else ''}{number(r.points)} · {_text(r.reason)}"
             for r in parts["scores"].itertuples(index=False)]
    st.markdown("\n".join(lines) if lines else tr("inbox.none"))
    st.markdown(f"**{tr('inbox.touchpoints')}**")
    lines = [f"- {local_time(r.occurred_at)} · {label('touchpoint', r.kind)}"
             + (f" · {shown_name('channel', r.channel)}" if isinstance(r.channel, str) else "")
             for r in parts["touchpoints"].itertuples(index=False)]
    st.markdown("\n".join(lines) if lines else tr("inbox.none"))
    st.markdown(f"**{tr('inbox.owners')}**")
    lines = [f"- {local_time(r.assigned_at)} · {_text(r.rep)} · {label('assignment_status', r.status)}"
             + (f" · {label('reject_reason', r.reason)}" if isinstance(r.reason, str) else "")
             + (f" · “{r.note}”" if isinstance(r.note, str) and r.note else "")
             for r in parts["owners"].itertuples(index=False)]
    st.markdown("\n".join(lines) if lines else tr("inbox.none"))
    st.markdown(f"**{tr('inbox.stages')}**")
    lines = [f"- {local_time(r.at)} · {label('stage', r.from_stage)} → {label('stage', r.to_stage)}"
             + f" · {_text(r.by if isinstance(r.by, str) else r.by_rule)}"
             + (f" · {r.reason}" if isinstance(r.reason, str) and r.reason and r.reason != r.by_rule else "")
             for r in parts["stages"].itertuples(index=False)]
    st.markdown("\n".join(lines) if lines else tr("inbox.none"))
