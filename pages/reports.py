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
from core.i18n import t
from core.report_data import ReportData, load_report_data
from core.roi import BASES, LEVELS, roi_table, roi_totals, summarize_months
from ui.common import (
    db_session,
    export_buttons,
    for_display,
    label,
    lang,
    money,
    number,
    percent,
    require_permission,
    shown_name,
    shown_source,
    tr,
)

DRILL_PAGE = 100

actor = require_permission("reports")
st.title(tr("reports.title"))
# Widgets call their format functions later too (AppTest does so outside the run): bind the language now.
language = lang()


def _tt(key: str, **params: Any) -> str:
    return t(key, language, **params)


def _stage_name(stage: str) -> str:
    return _tt(f"stage.{stage}")


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


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def _funnel_drill(version: tuple, role: str, key: tuple, stage: str, page: int, cohort: bool, in_months: bool,
                  source: tuple, _actor: Any) -> tuple[pd.DataFrame, int]:
    with db_session() as session:
        return funnel_leads(session=session, actor=_actor, filters=ReportFilter(*key), stage=stage, cohort=cohort,
                            reached_in_months=in_months, limit=DRILL_PAGE, offset=(page - 1) * DRILL_PAGE,
                            **dict(source))


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def _credit_drill(version: tuple, role: str, key: tuple, conversion: str, lookback: float | None, level: str,
                  source: str, _actor: Any) -> tuple[pd.DataFrame, int]:
    filters = ReportFilter(*key)
    journeys = journey_data_from(_data(version, role, _actor), filters, conversion)
    with db_session() as session:
        return attribution_leads(session=session, actor=_actor, filters=filters, conversion=conversion,
                                 lookback_days=lookback, channel=source, level=level, data=journeys)


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


def _lines(frame: pd.DataFrame, columns: list[str], title: str, y_title: str) -> go.Figure:
    """One line per column over the months (graph objects: much cheaper to build than plotly.express)."""
    figure = go.Figure([go.Scatter(x=frame["month"], y=frame[c], mode="lines+markers", name=tr(f"col.{c}"))
                        for c in columns])
    figure.update_layout(title=tr(title), xaxis_title=tr("col.month"), yaxis_title=tr(y_title))
    return figure


def _model_name(model: str) -> str:
    return _tt(f"attribution.model.{model}")


def _source_name(value: str) -> str:
    return _tt("reports.unattributed") if value == UNATTRIBUTED else shown_source(value)


# ---------------------------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------------------------
with db_session() as session:
    version = data_version(session=session)
role = actor.role
options = _options(version, role, actor)
months: list[date] = options["months"] or [date.today().replace(day=1)]
channel_names = {cid: shown_name("channel", name) for cid, name in options["channels"]}
campaign_names = {cid: shown_source(name) for cid, name, _ in options["campaigns"]}
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
    drill_stage = d1.selectbox(tr("reports.drill_stage"), list(FUNNEL_STAGES), index=None,
                               format_func=_stage_name, key="drill_stage",
                               placeholder=tr("reports.choose"))
    drill_page = d2.number_input(tr("reports.page"), min_value=1, value=1, step=1, key="drill_page")
    if drill_stage:
        leads, total = _funnel_drill(version, role, key, drill_stage, int(drill_page), True, False, (), actor)
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
                              format_func=lambda c: _tt(f"attribution.conversion.{c}"), key="attr_conversion")
    lookback = a2.number_input(tr("reports.lookback"), min_value=0, max_value=3650, value=90, step=15,
                               key="attr_lookback", help=tr("reports.lookback_help"))
    level = a3.radio(tr("reports.level"), list(LEVELS), format_func=lambda v: _tt(f"attribution.level.{v}"),
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
                      format_func=lambda m: _tt(f"col.{m}"), horizontal=True, key="attr_metric")
    if credit.empty or credit["conversions"].sum() == 0:
        st.info(tr("reports.no_conversions"))
    else:
        long = credit.assign(source=credit[level].astype(str).map(_source_name))
        figure = go.Figure([go.Bar(name=_model_name(model), x=part["source"], y=part[metric])
                            for model, part in ((m, long[long["model"] == m]) for m in MODELS if m in chosen_models)])
        figure.update_layout(barmode="group", height=440, legend_title_text=tr("col.model"),
                             title=tr("reports.chart.attribution", conversion=tr(f"attribution.conversion.{conversion}")),
                             xaxis_title=tr(f"col.{level}"), yaxis_title=tr(f"col.{metric}"))
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
        drill_source = st.selectbox(tr("reports.drill_credit"), sources, index=None, format_func=_source_name,
                                    key="attr_drill", placeholder=tr("reports.choose"))
        leads, total = (_credit_drill(version, role, key, conversion, lookback_days, level, drill_source, actor)
                        if drill_source else (pd.DataFrame(), 0))
        if drill_source:
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
    roi_level = r2.radio(tr("reports.level"), list(LEVELS), format_func=lambda v: _tt(f"attribution.level.{v}"),
                         horizontal=True, key="roi_level")
    basis = r3.radio(tr("reports.basis"), list(BASES), format_func=lambda b: _tt(f"reports.basis.{b}"),
                     horizontal=True, key="roi_basis")
    st.caption(tr(f"reports.basis_help.{basis}"))
    monthly = _roi(version, role, key, roi_model, roi_level, basis, lookback_days, True, actor)
    roi = summarize_months(monthly)
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
        size = shown["leads"].clip(lower=1)
        top = float(max(shown["cost"].max(), shown["revenue"].max(), 1.0))
        figure = go.Figure([
            go.Scatter(x=shown["cost"], y=shown["revenue"], mode="markers+text", text=shown["source"],
                       textposition="top center", name=tr("col.source"),
                       marker={"size": size, "sizemode": "area", "sizeref": 2.0 * float(size.max()) / 40 ** 2,
                               "sizemin": 4},
                       customdata=shown["leads"],
                       hovertemplate=f"%{{text}}<br>{tr('col.cost')}: %{{x:,.0f}}<br>{tr('col.revenue')}: "
                                     f"%{{y:,.0f}}<br>{tr('col.leads')}: %{{customdata}}<extra></extra>"),
            go.Scatter(x=[0, top], y=[0, top], mode="lines", name=tr("reports.break_even"),
                       line={"dash": "dot", "color": "gray"}),
        ])
        figure.update_layout(height=440, title=tr("reports.chart.cost_revenue"), xaxis_title=tr("col.cost"),
                             yaxis_title=tr("col.revenue"))
        st.plotly_chart(figure, width="stretch", key="roi_chart")
        _table(shown, filename=f"roi-{roi_level}", key="roi_export",
               money_columns=("cost", "revenue", "cost_per_lead", "cost_per_mql", "cost_per_sql",
                              "cost_per_customer"),
               percent_columns=("roi",), number_columns=("roas", "attributed_customers"))
        st.caption(tr("reports.roi_convention"))
        o1, o2 = st.columns(2)
        roi_source = o1.selectbox(tr("reports.drill_source"), roi["source"].tolist(), index=None,
                                  format_func=_source_name, key="roi_drill_source", placeholder=tr("reports.choose"))
        roi_stage = o2.selectbox(tr("reports.drill_stage"), ["new", "mql", "sql", "won"],
                                 format_func=_stage_name, key="roi_drill_stage")
        total = 0
        if roi_source:
            narrowed = ReportFilter(owner_ids=filters.owner_ids, regions=filters.regions,
                                    month_from=filters.month_from, month_to=filters.month_to)
            source = tuple(sorted(source_ids(options, roi_level, roi_source).items()))
            leads, total = _funnel_drill(version, role, astuple(narrowed), roi_stage, 1, True, basis == "event",
                                         source, actor)
            st.caption(tr("reports.drill_count", count=number(total), stage=label("stage", roi_stage)))
        if total:
            _table(leads, filename="roi-leads", key="roi_drill_export", values={"stage": "stage"},
                   times=("created_at", "reached_at"))

# ---------------------------------------------------------------------------------------------------------------
# Trends
# ---------------------------------------------------------------------------------------------------------------
with trend_tab:
    st.caption(tr("reports.trends_help", model=_model_name(roi_model), basis=tr(f"reports.basis.{basis}")))
    if monthly.empty:
        st.info(tr("reports.no_costs"))
    else:
        sums = monthly.groupby("month", as_index=False)[["cost", "revenue", "leads", "mqls", "sqls",
                                                          "customers"]].sum()
        st.plotly_chart(_lines(sums, ["cost", "revenue"], "reports.chart.cost_revenue_trend", "col.amount"),
                        width="stretch", key="trend_money")
        st.plotly_chart(_lines(sums, ["leads", "mqls", "sqls", "customers"], "reports.chart.volume_trend",
                               "col.leads"), width="stretch", key="trend_volume")
        by_source = monthly.assign(source=monthly["source"].map(_source_name))
        figure = go.Figure([go.Scatter(x=part["month"], y=part["roi"], mode="lines+markers", name=source)
                            for source, part in by_source.groupby("source", sort=True)])
        figure.update_layout(title=tr("reports.chart.roi_trend"), xaxis_title=tr("col.month"),
                             yaxis_title=tr("col.roi"), legend_title_text=tr(f"col.{roi_level}"))
        figure.update_yaxes(tickformat=".0%")
        st.plotly_chart(figure, width="stretch", key="trend_roi")
        _table(by_source, filename=f"roi-by-month-{roi_level}", key="trend_export",
               money_columns=("cost", "revenue", "cost_per_lead", "cost_per_mql", "cost_per_sql",
                              "cost_per_customer"),
               percent_columns=("roi",), number_columns=("roas", "attributed_customers"))

