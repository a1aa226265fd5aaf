"""Dedup review: pairs of leads that may be the same person."""

from __future__ import annotations

import streamlit as st

from core.dedup import count_candidates, list_candidates
from ui.common import db_session, for_display, number, percent, require_permission, tr

actor = require_permission("dedup", "dedup_view")
st.title(tr("dedup.title"))

with db_session() as session:
    pending = count_candidates(session=session)
    pairs = list_candidates(session=session, limit=200)
st.metric(tr("dedup.pending"), number(pending))
if pairs.empty:
    st.info(tr("dedup.none_pending"))
else:
    pairs["score"] = pairs["score"].map(percent)
    pairs["reasons"] = pairs["reasons"].map(lambda r: "、".join(map(str, r or [])))
    st.dataframe(
        for_display(pairs, values={"left_stage": "stage", "right_stage": "stage"},
                    columns=["score", "reasons", "left_name", "right_name", "left_company", "right_company",
                             "left_phone", "right_phone", "left_email", "right_email", "left_stage",
                             "right_stage"]),
        hide_index=True, width="stretch",
    )
