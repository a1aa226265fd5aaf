"""“Why this score?”: a lead's fit, engagement and grade with every ledger line behind them (reusable on any
page that shows a lead)."""

from __future__ import annotations

import streamlit as st
from sqlmodel import Session

from core.scoring import explain, score_summary
from ui.common import for_display, label, local_time, number, tr


def render_score_explanation(session: Session, lead_id: int, *, key: str = "score_explain") -> None:
    """Metrics (fit, engagement, of which decay, grade) and the ledger table, newest line first."""
    summary = score_summary(session=session, lead_id=lead_id)
    st.markdown(tr("rules.why.heading", lead=summary["name"] or f"#{lead_id}", company=summary["company"] or "—"))
    fit, engagement, decay, grade = st.columns(4)
    fit.metric(tr("rules.why.fit"), number(summary["fit"], 1))
    engagement.metric(tr("rules.why.engagement"), number(summary["engagement"], 1))
    decay.metric(tr("rules.why.decay"), number(summary["decay"], 1))
    grade.metric(tr("rules.why.grade"), summary["grade"] or "—")
    st.caption(tr("rules.why.scored_at", at=local_time(summary["scored_at"]), events=summary["events"]))
    ledger = explain(session=session, lead_id=lead_id)
    if ledger.empty:
        st.info(tr("rules.why.empty"))
        return
    ledger = ledger.iloc[::-1].reset_index(drop=True)
    ledger["touchpoint"] = ledger["touchpoint"].map(lambda v: label("touchpoint", v))
    ledger["reason"] = ledger["reason"].map(lambda v: label("rules.reason", v))
    ledger["rule"] = ledger["rule"].fillna("—")
    ledger["campaign"] = ledger["campaign"].fillna("—")
    ledger["points"] = ledger["points"].round(2)
    st.dataframe(
        for_display(ledger, values={"component": "rules.component", "kind": "rules.event_kind"},
                    times=("occurred_at",),
                    columns=["occurred_at", "component", "rule", "rule_version", "touchpoint", "campaign", "points",
                             "kind", "reason"]),
        hide_index=True, width="stretch", key=f"{key}_ledger",
    )
