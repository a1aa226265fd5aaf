"""Reports: where leads come from and how far each channel's leads get."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from core.funnel import STAGE_ORDER, stage_counts_by_channel
from ui.common import db_session, export_buttons, label, require_permission, tr

actor = require_permission("reports")
st.title(tr("reports.title"))

with db_session() as session:
    counts = stage_counts_by_channel(session=session, actor=actor)

st.subheader(tr("reports.stage_by_channel"))
st.caption(tr("reports.stage_by_channel_help"))
if counts.empty:
    st.info(tr("reports.no_leads"))
else:
    long = counts.drop(columns="total").reset_index().melt(id_vars="channel", var_name="stage", value_name="leads")
    long = long[long["leads"] > 0]
    long["stage_label"] = long["stage"].map(lambda s: label("stage", s))
    figure = px.bar(
        long, x="channel", y="leads", color="stage_label",
        category_orders={"stage_label": [label("stage", s) for s in STAGE_ORDER]},
        labels={"channel": tr("col.channel"), "leads": tr("col.leads"), "stage_label": tr("col.stage")},
        title=tr("reports.stage_by_channel"),
    )
    figure.update_layout(barmode="stack", legend_title_text=tr("col.stage"), height=420)
    st.plotly_chart(figure, width="stretch")
    table = counts.rename(columns={s: label("stage", s) for s in STAGE_ORDER} | {"total": tr("col.total")})
    table.index.name = tr("col.channel")
    st.dataframe(table, width="stretch")
    export_buttons(table.reset_index(), filename="stage-by-channel", key="stage_export")
