"""Admin → Dedup: the automatic-merge and review thresholds, and what new values would mean for the pairs
waiting in the review queue now (a preview before saving). Admins only."""

from __future__ import annotations

import streamlit as st

from core.auth import Actor
from core.clock import utcnow
from core.dedup import preview_thresholds, save_thresholds, thresholds
from core.errors import LeadLoopError
from ui.common import db_session, number, percent, show_error, tr

PERMISSION = "manage_settings"


def render(actor: Actor) -> None:
    with db_session() as session:
        auto, review = thresholds(session)
    st.markdown(tr("dedup.settings.meaning", auto=percent(auto), review=percent(review)))
    with st.form("dedup_thresholds_form"):
        left, right = st.columns(2)
        new_auto = left.number_input(tr("dedup.settings.auto"), min_value=0.0, max_value=1.0, value=float(auto),
                                     step=0.01, format="%.2f", key="dedup_settings_auto",
                                     help=tr("dedup.settings.auto_help"))
        new_review = right.number_input(tr("dedup.settings.review"), min_value=0.0, max_value=1.0,
                                        value=float(review), step=0.01, format="%.2f", key="dedup_settings_review",
                                        help=tr("dedup.settings.review_help"))
        preview_col, save_col = st.columns(2)
        preview_col.form_submit_button(tr("dedup.settings.preview"), width="stretch")
        save = save_col.form_submit_button(tr("dedup.settings.save"), type="primary", width="stretch")
    try:
        with db_session() as session:
            figures = preview_thresholds(session=session, actor=actor, auto=new_auto, review=new_review)
    except LeadLoopError as error:
        show_error(error)
        return
    st.markdown(f"**{tr('dedup.settings.preview_title', pending=number(figures['pending']))}**")
    automatic, queued, below = st.columns(3)
    automatic.metric(tr("dedup.settings.would_merge", auto=percent(figures["auto"])), number(figures["automatic"]),
                     delta=figures["automatic"] - figures["current_automatic"], delta_color="off")
    queued.metric(tr("dedup.settings.would_review"), number(figures["review_band"]),
                  delta=figures["review_band"] - figures["current_review_band"], delta_color="off")
    below.metric(tr("dedup.settings.would_drop", review=percent(figures["review"])), number(figures["below"]),
                 delta=figures["below"] - figures["current_below"], delta_color="off")
    st.caption(tr("dedup.settings.preview_hint"))
    if save:
        try:
            with db_session() as session:
                save_thresholds(session=session, actor=actor, auto=new_auto, review=new_review, now=utcnow())
        except LeadLoopError as error:
            show_error(error)
        else:
            st.success(tr("dedup.settings.saved", auto=percent(new_auto), review=percent(new_review)),
                       icon=":material/check_circle:")
