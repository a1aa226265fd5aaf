"""Channel ROI: what each channel (or campaign) cost, what it brought, and what that means per lead and per yuan.

Conventions (the Reports page states them too)
---------------------------------------------
* Costs are the monthly ChannelCost rows. A campaign's cost rolls up to its channel; a cost entered for the
  whole channel (no campaign) stays on the channel and, per campaign, shows as the row "渠道 / —".
* Leads, MQLs, SQLs and customers are counted by the lead's **source** channel/campaign (where it came from),
  each lead at most once per step, with the funnel's convention (a forward skip counts as passing the step).
* Revenue is **attributed**: the value of won deals (Opportunity.amount) split over the channels of each
  customer's journey by the chosen model (core.attribution) and lookback window. "Attributed customers" is the
  same split applied to the number of customers.
* Months and costs in other months. Two bases:
  - ``event`` (default, the cash view): each figure falls in the month it happened — a cost in its month, a lead
    in the month it was created, an MQL in the month of its first MQL, revenue in the month the deal was won. A
    trade show paid in March whose customers sign in June shows its cost in March and its revenue in June; a
    period that covers both months matches them, a single month does not. Nothing is moved between months.
  - ``cohort``: every outcome is booked to the month its lead was created, whenever it happened, and set against
    that month's cost: "what did March's spend eventually bring". Recent cohorts are still maturing.
* Ratios: cost per X = cost ÷ X (empty when X is 0); ROAS = revenue ÷ cost; ROI = (revenue − cost) ÷ cost (both
  empty when the cost is 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from core.attribution import UNATTRIBUTED, AttributionError, attribute_by_key, journey_data_from
from core.auth import Actor, require
from core.funnel import FUNNEL_STAGES, ReportFilter, history_from, month_label
from core.report_data import ReportData, campaign_label, load_report_data
from db.models import Campaign, Channel, ChannelCost

BASES = ("event", "cohort")
LEVELS = ("channel", "campaign")
COUNT_COLUMNS = {"new": "leads", "mql": "mqls", "sql": "sqls", "won": "customers"}
ROI_COLUMNS = ["cost", "leads", "mqls", "sqls", "customers", "attributed_customers", "revenue", "cost_per_lead",
               "cost_per_mql", "cost_per_sql", "cost_per_customer", "roas", "roi"]


def _check(level: str, basis: str) -> None:
    if level not in LEVELS:
        raise AttributionError(f"Unknown level: {level}.", key="attribution.unknown_level", level=level)
    if basis not in BASES:
        raise AttributionError(f"Unknown basis: {basis}.", key="roi.unknown_basis", basis=basis)


def _month_range(filters: ReportFilter) -> tuple[str | None, str | None]:
    low = filters.month_from.strftime("%Y-%m") if filters.month_from else None
    high = filters.month_to.strftime("%Y-%m") if filters.month_to else None
    return low, high


def _in_range(months: pd.Series, filters: ReportFilter) -> pd.Series:
    low, high = _month_range(filters)
    keep = months.notna()
    if low:
        keep &= months >= low
    if high:
        keep &= months <= high
    return keep


def _source_labels(channel_ids: pd.Series, campaign_ids: pd.Series, level: str,
                   channels: dict[int, str], campaigns: dict[int, str]) -> pd.Series:
    """The row label of each (channel, campaign) pair: the channel name, or "channel / campaign"."""
    pairs = pd.DataFrame({"ch": channel_ids.astype("Int64"), "ca": campaign_ids.astype("Int64")})
    unique = pairs.drop_duplicates()

    def one(ch: object, ca: object) -> str:
        channel = channels.get(int(ch)) if pd.notna(ch) else None
        if level == "channel":
            return channel or UNATTRIBUTED
        if channel is None and pd.isna(ca):
            return UNATTRIBUTED
        return campaign_label(channel, campaigns.get(int(ca)) if pd.notna(ca) else None)

    unique = unique.assign(label=[one(ch, ca) for ch, ca in zip(unique["ch"], unique["ca"], strict=True)])
    return pairs.merge(unique, on=["ch", "ca"], how="left")["label"].set_axis(channel_ids.index)


def load_costs(*, session: Session, actor: Actor, filters: ReportFilter = ReportFilter(),
               level: str = "channel") -> pd.DataFrame:
    """Costs in the filter's months, one row per month and channel (or campaign label): month, source, cost."""
    require(actor, "reports")
    statement = select(ChannelCost.month, ChannelCost.channel_id, ChannelCost.campaign_id, ChannelCost.amount)
    if filters.month_from:
        statement = statement.where(ChannelCost.month >= filters.month_from.replace(day=1))
    if filters.month_to:
        statement = statement.where(ChannelCost.month <= filters.month_to.replace(day=1))
    rows = session.execute(statement).all()
    frame = pd.DataFrame(rows, columns=["month", "channel_id", "campaign_id", "amount"])
    if frame.empty:
        return pd.DataFrame(columns=["month", "source", "cost"])
    channels = dict(session.execute(select(Channel.id, Channel.name)).all())
    campaigns = dict(session.execute(select(Campaign.id, Campaign.name)).all())
    frame["source"] = _source_labels(frame["channel_id"], frame["campaign_id"], level, channels, campaigns)
    frame["month"] = pd.to_datetime(frame["month"]).dt.strftime("%Y-%m")
    return (frame.groupby(["month", "source"], as_index=False)["amount"].sum()
            .rename(columns={"amount": "cost"}))


def _lead_counts(data: ReportData, filters: ReportFilter, level: str, basis: str) -> pd.DataFrame:
    """Leads, MQLs, SQLs and customers per month and source (columns month, source, leads, mqls, sqls,
    customers)."""
    history = history_from(data, filters, cohort=basis == "cohort", source=False)
    campaigns = {cid: name for cid, (name, _) in data.campaigns.items()}
    leads = history.leads.set_index("id")
    source = _source_labels(leads["source_channel_id"], leads["source_campaign_id"], level, data.channels,
                            campaigns)
    cohort_month = month_label(history.reached[FUNNEL_STAGES[0]])
    parts = []
    for stage, column in COUNT_COLUMNS.items():
        when = history.reached[stage]
        months = cohort_month.where(when.notna(), None) if basis == "cohort" else month_label(when)
        frame = pd.DataFrame({"month": months.to_numpy(), "source": source.reindex(when.index).to_numpy()})
        frame = frame[_in_range(frame["month"], filters).to_numpy()]
        parts.append(frame.groupby(["month", "source"]).size().rename(column))
    table = pd.concat(parts, axis=1).fillna(0).astype(int).reset_index()
    return table if len(table) else pd.DataFrame(columns=["month", "source", *COUNT_COLUMNS.values()])


def _revenue(data: ReportData, filters: ReportFilter, level: str, basis: str, model: str,
             lookback_days: float | None) -> pd.DataFrame:
    """Attributed customers and revenue of won deals per month and source."""
    cohort = basis == "cohort"
    touches, conversions = journey_data_from(data, filters, "won", cohort=cohort).inputs(lookback_days)
    # Event basis: the month the deal was won; cohort basis: the month the lead was created.
    conversions = conversions.assign(month=month_label(conversions["lead_created_at" if cohort else "converted_at"]))
    if cohort:
        conversions = conversions[_in_range(conversions["month"], filters).to_numpy()]
    if conversions.empty:
        return pd.DataFrame(columns=["month", "source", "attributed_customers", "revenue"])
    credit = attribute_by_key(touches, conversions, model, key="month", by=level, lookback_days=lookback_days)
    return credit.rename(columns={level: "source", "conversions": "attributed_customers", "value": "revenue"})


def shown_labels(data: ReportData, filters: ReportFilter, level: str) -> set[str] | None:
    """Row labels the channel/campaign filter keeps (None keeps all)."""
    if not filters.channel_ids and not filters.campaign_ids:
        return None
    channels, campaigns = data.channels, data.campaigns
    if level == "channel":
        ids = set(filters.channel_ids) | {ch for cid, (_, ch) in campaigns.items() if cid in filters.campaign_ids}
        return {channels[i] for i in ids if i in channels}
    if filters.campaign_ids:
        return {campaign_label(channels.get(ch), name) for cid, (name, ch) in campaigns.items()
                if cid in filters.campaign_ids}
    return ({campaign_label(channels.get(ch), name) for name, ch in campaigns.values() if ch in filters.channel_ids}
            | {campaign_label(channels.get(ch), None) for ch in filters.channel_ids})


def roi_table(
    *,
    session: Session,
    actor: Actor,
    filters: ReportFilter = ReportFilter(),
    model: str = "linear",
    level: str = "channel",
    basis: str = "event",
    lookback_days: float | None = 90,
    by_month: bool = False,
    data: ReportData | None = None,
) -> pd.DataFrame:
    """ROI per source (channel or campaign label) over the filter's months, or per month and source.

    Columns: ``source`` (and ``month``), then ROI_COLUMNS. The channel/campaign filter chooses the rows.
    ``data`` may carry the already loaded report data (``core.report_data.load_report_data``).
    """
    require(actor, "reports")
    _check(level, basis)
    if data is None:
        data = load_report_data(session=session, actor=actor, owner_ids=filters.owner_ids, regions=filters.regions)
    costs = load_costs(session=session, actor=actor, filters=filters, level=level)
    counts = _lead_counts(data, filters, level, basis)
    revenue = _revenue(data, filters, level, basis, model, lookback_days)
    keys = ["month", "source"]
    table = costs.merge(counts, on=keys, how="outer").merge(revenue, on=keys, how="outer")
    for column in ("cost", *COUNT_COLUMNS.values(), "attributed_customers", "revenue"):
        if column not in table:
            table[column] = 0.0
        table[column] = table[column].astype(float).fillna(0.0)
    table = add_ratios(table)
    shown = shown_labels(data, filters, level)
    if shown is not None:
        table = table[table["source"].isin(shown)]
    table = table.sort_values(["month", "source"])[["month", "source", *ROI_COLUMNS]].reset_index(drop=True)
    return table if by_month else summarize_months(table)


def summarize_months(monthly: pd.DataFrame) -> pd.DataFrame:
    """The per-source table of the whole period from a per-month ROI table (ratios recomputed from the sums,
    never averaged), biggest spenders first."""
    sums = ["cost", *COUNT_COLUMNS.values(), "attributed_customers", "revenue"]
    table = add_ratios(monthly.groupby("source", as_index=False)[sums].sum())
    return table.sort_values(["cost", "revenue"], ascending=False)[["source", *ROI_COLUMNS]].reset_index(drop=True)


def add_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Cost per lead/MQL/SQL/customer, ROAS and ROI; empty (NaN) where the divisor is 0."""
    out = table.copy()
    for column, divisor in (("cost_per_lead", "leads"), ("cost_per_mql", "mqls"), ("cost_per_sql", "sqls"),
                            ("cost_per_customer", "customers")):
        out[column] = _ratio(out["cost"], out[divisor])
    out["roas"] = _ratio(out["revenue"], out["cost"])
    out["roi"] = _ratio(out["revenue"] - out["cost"], out["cost"])
    for column in ("leads", "mqls", "sqls", "customers"):
        out[column] = out[column].astype(int)
    return out


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    denominator = denominator.astype(float)
    return (numerator.astype(float) / denominator.where(denominator != 0, np.nan)).astype(float)


def roi_totals(table: pd.DataFrame) -> dict[str, float | None]:
    """The whole period's figures across the rows of an ROI table (ratios recomputed, never averaged)."""
    sums = table[["cost", "leads", "mqls", "sqls", "customers", "attributed_customers", "revenue"]].sum()
    total = add_ratios(pd.DataFrame([sums]))
    return {column: (None if pd.isna(value) else float(value)) for column, value in total.iloc[0].items()}
