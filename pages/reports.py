"""Reports: the funnel, multi-touch attribution and channel ROI — which channels bring customers, at what cost.

The figures come from core.funnel, core.attribution and core.roi. The page loads the report data once per data
version (a cheap fingerprint of leads, touches, stage changes, deals and costs) and caches each table per filter
set, so changing a filter costs no database work and new data shows up on the next run.
"""

from __future__ import annotations

from dataclasses import astuple
from datetime import date
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.attribution import (
    CONVERSIONS,
    MODELS,
    UNATTRIBUTED,
    attribution_leads,
    attribution_report,
    journey_data_from,
)
from core.funnel import (
    FUNNEL_STAGES,
    ReportFilter,
    data_version,
    filter_options,
    funnel,
    funnel_leads,
    side_tracks,
    source_ids,
)
from core.report_data import ReportData, load_report_data
from core.roi import BASES, LEVELS, roi_table, roi_totals
from ui.common import (
    db_session,
    export_buttons,
    for_display,
    label,
    money,
    number,
    percent,
    require_permission,
    run_action,
    tr,
)

DRILL_PAGE = 100

actor = require_permission("reports")
st.title(tr("reports.title"))


# ---------------------------------------------------------------------------------------------------------------
# Cached computations (keyed on the data version, the role and the filters; the actor itself is not hashed)
# ---------------------------------------------------------------------------------------------------------------
@st.cache_resource(max_entries=2, ttl=3600, show_spinner=False)
def _data(version: tuple, role: str, _actor: Any) -> ReportData:
    with db_session() as session:
        return load_report_data(session=session, actor=_actor)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def _options(version: tuple, role: str, _actor: Any) -> dict[str, Any]:
    with db_session() as session:
        return filter_options(session=session, actor=_actor)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def _funnel(version: tuple, role: str, key: tuple, _actor: Any) -> tuple[pd.DataFrame, dict[str, int]]:
    data, filters = _data(version, role, _actor), ReportFilter(*key)
    return funnel(data=data, filters=filters), side_tracks(data=data, filters=filters)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def _attribution(version: tuple, role: str, key: tuple, conversion: str, lookback: float | None, level: str,
                 half_life: float, _actor: Any) -> pd.DataFrame:
    filters = ReportFilter(*key)
    journeys = journey_data_from(_data(version, role, _actor), filters, conversion)
    return attribution_report(data=journeys, filters=filters, conversion=conversion, lookback_days=lookback,
                              models=MODELS, level=level, half_life_days=half_life)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def _roi(version: tuple, role: str, key: tuple, model: str, level: str, basis: str, lookback: float | None,
         by_month: bool, _actor: Any) -> pd.DataFrame:
    with db_session() as session:
        return roi_table(session=session, actor=_actor, filters=ReportFilter(*key), model=model, level=level,
                         basis=basis, lookback_days=lookback, by_month=by_month, data=_data(version, role, _actor))


def _drill(func: Any, **kwargs: Any) -> tuple[pd.DataFrame, int]:
    result = run_action(func, actor=actor, rerun=False, **kwargs)
    return result if result is not None else (pd.DataFrame(), 0)


def _table(frame: pd.DataFrame, *, filename: str, key: str, money_columns: tuple[str, ...] = (),
           percent_columns: tuple[str, ...] = (), number_columns: tuple[str, ...] = (),
           values: dict[str, str] | None = None, times: tuple[str, ...] = ()) -> None:
    """Show a table with translated headers and formatted figures; export the same rows with raw numbers."""
    export = for_display(frame, values=values, times=times)
    shown = frame.copy()
    for column in money_columns:
        shown[column] = shown[column].map(lambda v: money(None if pd.isna(v) else v))
    for column in percent_columns:
        shown[column] = shown[column].map(lambda v: percent(None if pd.isna(v) else v))
    for column in number_columns:
        shown[column] = shown[column].map(lambda v: number(None if pd.isna(v) else v, 2))
    st.dataframe(for_display(shown, values=values, times=times), hide_index=True, width="stretch")
    export_buttons(export, filename=filename, key=key)


def _model_name(model: str) -> str:
    return tr(f"attribution.model.{model}")


def _source_name(value: str) -> str:
    return tr("reports.unattributed") if value == UNATTRIBUTED else value


# ---------------------------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------------------------
with db_session() as session:
    version = data_version(session=session)
role = actor.role
options = _options(version, role, actor)
months: list[date] = options["months"] or [date.today().replace(day=1)]
channel_names = dict(options["channels"])
campaign_names = {cid: name for cid, name, _ in options["campaigns"]}
owner_names = dict(options["owners"])

with st.form("report_filters"):
    c1, c2, c3, c4 = st.columns(4)
    channel_ids = c1.multiselect(tr("col.channel"), list(channel_names), format_func=channel_names.get,
                                 key="rf_channels", placeholder=tr("reports.all"))
    campaign_ids = c2.multiselect(tr("col.campaign"), list(campaign_names), format_func=campaign_names.get,
                                  key="rf_campaigns", placeholder=tr("reports.all"))
    owner_ids = c3.multiselect(tr("col.owner"), list(owner_names), format_func=owner_names.get, key="rf_owners",
                               placeholder=tr("reports.all"))
    regions = c4.multiselect(tr("col.province"), options["regions"], key="rf_regions",
                             placeholder=tr("reports.all"))
    default_range = (months[max(0, len(months) - 12)], months[-1])
    month_range = st.select_slider(tr("reports.months"), options=months, value=default_range,
                                   format_func=lambda m: m.strftime("%Y-%m"), key="rf_months")
    st.form_submit_button(tr("reports.apply"), type="primary", key="rf_apply")
month_from, month_to = month_range if isinstance(month_range, tuple) else (month_range, month_range)
filters = ReportFilter(channel_ids=tuple(sorted(channel_ids)), campaign_ids=tuple(sorted(campaign_ids)),
                       owner_ids=tuple(sorted(owner_ids)), regions=tuple(sorted(regions)),
                       month_from=month_from, month_to=month_to)
key = astuple(filters)

funnel_tab, attribution_tab, roi_tab, trend_tab = st.tabs(
    [tr("reports.tab.funnel"), tr("reports.tab.attribution"), tr("reports.tab.roi"), tr("reports.tab.trends")])

# ---------------------------------------------------------------------------------------------------------------
# Funnel
# ---------------------------------------------------------------------------------------------------------------
with funnel_tab:
    table, tracks = _funnel(version, role, key, actor)
    st.caption(tr("reports.funnel_convention"))
    if table["leads"].iloc[0] == 0:
        st.info(tr("reports.no_leads"))
    else:
        stage_names = [label("stage", s) for s in table["stage"]]
        figure = go.Figure(go.Funnel(y=stage_names, x=table["leads"], textinfo="value+percent previous"))
        figure.update_layout(title=tr("reports.chart.funnel"), height=380, margin={"l": 10, "r": 10, "t": 50})
        st.plotly_chart(figure, width="stretch", key="funnel_chart")
        st.caption(tr("reports.side_tracks", **{k: number(v) for k, v in tracks.items()}))
        _table(table, filename="funnel", key="funnel_export", percent_columns=("step_conversion",
               "overall_conversion"), number_columns=("median_days",), values={"stage": "stage"})

    st.subheader(tr("reports.drill_title"))
    d1, d2 = st.columns([3, 1])
    drill_stage = d1.selectbox(tr("reports.drill_stage"), list(FUNNEL_STAGES), format_func=lambda s: label("stage", s),
                               key="drill_stage")
    drill_page = d2.number_input(tr("reports.page"), min_value=1, value=1, step=1, key="drill_page")
    leads, total = _drill(funnel_leads, filters=filters, stage=drill_stage, limit=DRILL_PAGE,
                          offset=(int(drill_page) - 1) * DRILL_PAGE)
    st.caption(tr("reports.drill_count", count=number(total), stage=label("stage", drill_stage)))
    if total:
        _table(leads, filename=f"funnel-{drill_stage}", key="drill_export", values={"stage": "stage"},
               times=("created_at", "reached_at"))

# ---------------------------------------------------------------------------------------------------------------
# Attribution
# ---------------------------------------------------------------------------------------------------------------
with attribution_tab:
    a1, a2, a3, a4 = st.columns(4)
    conversion = a1.selectbox(tr("reports.conversion"), list(CONVERSIONS), index=CONVERSIONS.index("won"),
                              format_func=lambda c: tr(f"attribution.conversion.{c}"), key="attr_conversion")
    lookback = a2.number_input(tr("reports.lookback"), min_value=0, max_value=3650, value=90, step=15,
                               key="attr_lookback", help=tr("reports.lookback_help"))
    level = a3.radio(tr("reports.level"), list(LEVELS), format_func=lambda v: tr(f"attribution.level.{v}"),
                     horizontal=True, key="attr_level")
    half_life = a4.number_input(tr("reports.half_life"), min_value=0.5, max_value=365.0, value=7.0, step=0.5,
                                key="attr_half_life")
    chosen_models = st.multiselect(tr("reports.models"), list(MODELS), default=list(MODELS),
                                   format_func=_model_name, key="attr_models")
    lookback_days = float(lookback) if lookback else None
    credit = _attribution(version, role, key, conversion, lookback_days, level, float(half_life), actor)
    credit = credit[credit["model"].isin(chosen_models)]
    metric = "value" if conversion in ("won", "opportunity") else "conversions"
    metric = st.radio(tr("reports.metric"), ["conversions", "value"], index=["conversions", "value"].index(metric),
                      format_func=lambda m: tr(f"col.{m}"), horizontal=True, key="attr_metric")
    if credit.empty or credit["conversions"].sum() == 0:
        st.info(tr("reports.no_conversions"))
    else:
        long = credit.assign(model_name=credit["model"].map(_model_name), source=credit[level].map(_source_name))
        figure = px.bar(long, x="source", y=metric, color="model_name", barmode="group",
                        category_orders={"model_name": [_model_name(m) for m in MODELS if m in chosen_models]},
                        labels={"source": tr(f"col.{level}"), metric: tr(f"col.{metric}"),
                                "model_name": tr("col.model")},
                        title=tr("reports.chart.attribution", conversion=tr(f"attribution.conversion.{conversion}")))
        figure.update_layout(height=440, legend_title_text=tr("col.model"))
        st.plotly_chart(figure, width="stretch", key="attribution_chart")
        wide = long.pivot_table(index="source", columns="model", values=metric, aggfunc="sum", fill_value=0)
        wide = wide.reindex(columns=[m for m in MODELS if m in wide.columns])
        wide = wide.rename(columns={m: _model_name(m) for m in wide.columns}).reset_index()
        wide = wide.rename(columns={"source": tr(f"col.{level}")})
        st.dataframe(wide, hide_index=True, width="stretch")
        export_buttons(wide, filename=f"attribution-{conversion}", key="attribution_export")
    with st.expander(tr("reports.models_explained")):
        for model in MODELS:
            st.markdown(f"**{_model_name(model)}** — {tr(f'attribution.model_help.{model}')}")
    sources = sorted(credit[level].astype(str).unique()) if not credit.empty else []
    if sources:
        drill_source = st.selectbox(tr("reports.drill_credit"), sources, format_func=_source_name,
                                    key="attr_drill")
        journeys = journey_data_from(_data(version, role, actor), filters, conversion)
        leads, total = _drill(attribution_leads, filters=filters, conversion=conversion, lookback_days=lookback_days,
                              channel=drill_source, level=level, data=journeys)
        st.caption(tr("reports.drill_credit_count", count=number(total), source=_source_name(drill_source)))
        if total:
            _table(leads, filename="attribution-leads", key="attr_drill_export", money_columns=("value",),
                   values={"stage": "stage"}, times=("converted_at",))

# ---------------------------------------------------------------------------------------------------------------
# ROI
# ---------------------------------------------------------------------------------------------------------------
with roi_tab:
    r1, r2, r3 = st.columns(3)
    roi_model = r1.selectbox(tr("reports.revenue_model"), list(MODELS), index=MODELS.index("linear"),
                             format_func=_model_name, key="roi_model")
    roi_level = r2.radio(tr("reports.level"), list(LEVELS), format_func=lambda v: tr(f"attribution.level.{v}"),
                         horizontal=True, key="roi_level")
    basis = r3.radio(tr("reports.basis"), list(BASES), format_func=lambda b: tr(f"reports.basis.{b}"),
                     horizontal=True, key="roi_basis")
    st.caption(tr(f"reports.basis_help.{basis}"))
    roi = _roi(version, role, key, roi_model, roi_level, basis, lookback_days, False, actor)
    totals = roi_totals(roi) if len(roi) else {}
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(tr("col.cost"), money(totals.get("cost")))
    m2.metric(tr("col.revenue"), money(totals.get("revenue")))
    m3.metric(tr("col.roi"), percent(totals.get("roi")))
    m4.metric(tr("col.roas"), number(totals.get("roas"), 2))
    if roi.empty:
        st.info(tr("reports.no_costs"))
    else:
        shown = roi.assign(source=roi["source"].map(_source_name))
        scatter = shown.assign(size=shown["leads"].clip(lower=1))
        figure = px.scatter(scatter, x="cost", y="revenue", size="size", text="source", hover_name="source",
                            labels={"cost": tr("col.cost"), "revenue": tr("col.revenue"), "size": tr("col.leads")},
                            title=tr("reports.chart.cost_revenue"))
        top = float(max(scatter["cost"].max(), scatter["revenue"].max(), 1.0))
        figure.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name=tr("reports.break_even"),
                                    line={"dash": "dot", "color": "gray"}))
        figure.update_traces(textposition="top center", selector={"mode": "markers+text"})
        figure.update_layout(height=440)
        st.plotly_chart(figure, width="stretch", key="roi_chart")
        _table(shown, filename=f"roi-{roi_level}", key="roi_export",
               money_columns=("cost", "revenue", "cost_per_lead", "cost_per_mql", "cost_per_sql",
                              "cost_per_customer"),
               percent_columns=("roi",), number_columns=("roas", "attributed_customers"))
        st.caption(tr("reports.roi_convention"))
        o1, o2 = st.columns(2)
        roi_source = o1.selectbox(tr("reports.drill_source"), roi["source"].tolist(), format_func=_source_name,
                                  key="roi_drill_source")
        roi_stage = o2.selectbox(tr("reports.drill_stage"), ["new", "mql", "sql", "won"],
                                 format_func=lambda s: label("stage", s), key="roi_drill_stage")
        narrowed = ReportFilter(owner_ids=filters.owner_ids, regions=filters.regions, month_from=filters.month_from,
                                month_to=filters.month_to)
        leads, total = _drill(funnel_leads, filters=narrowed, stage=roi_stage, cohort=True,
                              reached_in_months=basis == "event", limit=DRILL_PAGE,
                              **source_ids(options, roi_level, roi_source))
        st.caption(tr("reports.drill_count", count=number(total), stage=label("stage", roi_stage)))
        if total:
            _table(leads, filename="roi-leads", key="roi_drill_export", values={"stage": "stage"},
                   times=("created_at", "reached_at"))

# ---------------------------------------------------------------------------------------------------------------
# Trends
# ---------------------------------------------------------------------------------------------------------------
with trend_tab:
    monthly = _roi(version, role, key, roi_model, roi_level, basis, lookback_days, True, actor)
    st.caption(tr("reports.trends_help", model=_model_name(roi_model), basis=tr(f"reports.basis.{basis}")))
    if monthly.empty:
        st.info(tr("reports.no_costs"))
    else:
        sums = monthly.groupby("month", as_index=False)[["cost", "revenue", "leads", "mqls", "sqls",
                                                          "customers"]].sum()
        money_long = sums.melt(id_vars="month", value_vars=["cost", "revenue"], var_name="what", value_name="amount")
        money_long["what"] = money_long["what"].map(lambda c: tr(f"col.{c}"))
        figure = px.line(money_long, x="month", y="amount", color="what", markers=True,
                         labels={"month": tr("col.month"), "amount": tr("col.amount"), "what": ""},
                         title=tr("reports.chart.cost_revenue_trend"))
        st.plotly_chart(figure, width="stretch", key="trend_money")
        counts_long = sums.melt(id_vars="month", value_vars=["leads", "mqls", "sqls", "customers"], var_name="what",
                                value_name="count")
        counts_long["what"] = counts_long["what"].map(lambda c: tr(f"col.{c}"))
        figure = px.line(counts_long, x="month", y="count", color="what", markers=True,
                         labels={"month": tr("col.month"), "count": tr("col.leads"), "what": ""},
                         title=tr("reports.chart.volume_trend"))
        st.plotly_chart(figure, width="stretch", key="trend_volume")
        by_source = monthly.assign(source=monthly["source"].map(_source_name))
        figure = px.line(by_source, x="month", y="roi", color="source", markers=True,
                         labels={"month": tr("col.month"), "roi": tr("col.roi"), "source": tr(f"col.{roi_level}")},
                         title=tr("reports.chart.roi_trend"))
        figure.update_yaxes(tickformat=".0%")
        st.plotly_chart(figure, width="stretch", key="trend_roi")
        _table(by_source, filename=f"roi-by-month-{roi_level}", key="trend_export",
               money_columns=("cost", "revenue", "cost_per_lead", "cost_per_mql", "cost_per_sql",
                              "cost_per_customer"),
               percent_columns=("roi",), number_columns=("roas", "attributed_customers"))

