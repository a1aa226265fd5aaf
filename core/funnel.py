"""The lifecycle funnel, counted from StageChange, with the filters every report shares. Read-only.

How the funnel counts (the Reports page states the same in words)
----------------------------------------------------------------
* Steps: lead (every valid lead) → MQL → SAL → SQL → opportunity → won, the main track of core.lifecycle.
* A lead counts at a step when it ever reached that step **or a later one**: a lead that went from new straight
  to SQL (a forward skip, which the stage machine allows) counts as having passed MQL and SAL, at the moment of
  the skip. What a lead reached is read from its StageChange rows; its current stage counts as well, so a lead
  created directly at a later stage (e.g. imported as an SQL) is not lost.
* Each lead counts at most once per step: a recycled lead that becomes an MQL again is still one MQL, and the
  first arrival is the one that counts for dates. Recycled, disqualified and lost are side tracks: they reach no
  new step (an SQL that is lost never counts as an opportunity).
* Conversion of a step = leads at the step ÷ leads at the step before; "of all leads" divides by the first step.
* Median time in a step: for the leads that actually entered the step (skipped steps have no time) and have
  moved on to a later step, the time from their last arrival at the step before moving on to the first arrival
  at any later step (a recycled spell is not counted as time in the step it left). Leads still in a step have
  no finished time and are left out. The lead step starts at the lead's creation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, case, exists, func, literal, or_, select, type_coerce
from sqlalchemy.types import String
from sqlmodel import Session

from core.auth import Actor, lead_scope, require
from core.clock import TEAM_TIMEZONE
from core.lifecycle import MAIN_TRACK
from db.models import (
    Campaign,
    Channel,
    ChannelCost,
    Lead,
    LeadStatus,
    Opportunity,
    Stage,
    StageChange,
    Touchpoint,
    User,
)

STAGE_ORDER = [s.value for s in Stage]
FUNNEL_STAGES: tuple[str, ...] = tuple(str(s) for s in MAIN_TRACK)
RANK: dict[str, int] = {stage: i for i, stage in enumerate(FUNNEL_STAGES)}
FUNNEL_COLUMNS = ["stage", "leads", "step_conversion", "overall_conversion", "median_days", "timed_leads"]
DRILL_COLUMNS = ["id", "name", "company", "province", "owner", "channel", "campaign", "stage", "created_at",
                 "reached_at"]


# ---------------------------------------------------------------------------------------------------------------
# Filters shared by the funnel, attribution and ROI
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportFilter:
    """What the Reports page filters on; hashable, so it can key a cache.

    Months are the team's calendar months (first day of the month). The funnel reads them as the lead cohort
    (month the lead was created); attribution as the months of the conversions; ROI as the months of costs and
    events (or cohorts, by its basis). Channels and campaigns select the leads' source in the funnel, and the
    rows shown in attribution and ROI.
    """

    channel_ids: tuple[int, ...] = ()
    campaign_ids: tuple[int, ...] = ()
    owner_ids: tuple[int, ...] = ()
    regions: tuple[str, ...] = ()
    month_from: date | None = None
    month_to: date | None = None

    def months(self) -> tuple[datetime | None, datetime | None]:
        """[start, end) in aware UTC for the month range (team time zone)."""
        return month_start_utc(self.month_from), month_start_utc(next_month(self.month_to))


def next_month(value: date | None) -> date | None:
    if value is None:
        return None
    return date(value.year + (value.month == 12), value.month % 12 + 1, 1)


def month_start_utc(value: date | None) -> datetime | None:
    """Midnight of the first day of ``value``'s month in the team's time zone, as aware UTC."""
    if value is None:
        return None
    local = datetime(value.year, value.month, 1, tzinfo=TEAM_TIMEZONE)
    return pd.Timestamp(local).tz_convert("UTC").to_pydatetime()


def month_label(values: pd.Series) -> pd.Series:
    """``YYYY-MM`` of each aware time in the team's time zone (missing stays missing)."""
    stamps = pd.to_datetime(values, utc=True)
    local = stamps.dt.tz_convert(TEAM_TIMEZONE)
    return local.dt.strftime("%Y-%m").where(stamps.notna(), None)


def lead_conditions(actor: Actor, filters: ReportFilter, *, source: bool = True,
                    cohort: bool = True) -> list[ColumnElement[bool]]:
    """WHERE conditions on Lead for ``filters``: valid leads the actor may see, by owner, region and, when asked,
    source channel/campaign and creation month."""
    conditions: list[ColumnElement[bool]] = [Lead.status == LeadStatus.VALID, lead_scope(actor)]
    if filters.owner_ids:
        conditions.append(Lead.owner_id.in_(filters.owner_ids))
    if filters.regions:
        conditions.append(Lead.province.in_(filters.regions))
    if source and filters.channel_ids:
        conditions.append(Lead.source_channel_id.in_(filters.channel_ids))
    if source and filters.campaign_ids:
        conditions.append(Lead.source_campaign_id.in_(filters.campaign_ids))
    if cohort:
        start, end = filters.months()
        if start is not None:
            conditions.append(Lead.created_at >= start)
        if end is not None:
            conditions.append(Lead.created_at < end)
    return conditions


def raw_time(column: Any) -> Any:
    """A time column read without per-row conversion (text on SQLite); ``to_utc`` parses a whole column."""
    return type_coerce(column, String)


def to_utc(values: pd.Series | list[Any]) -> pd.Series:
    """Parse a column of stored times (ISO text from SQLite, datetimes from PostgreSQL) to aware UTC at once."""
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    if len(series) == 0:
        return pd.Series(pd.to_datetime([], utc=True), index=series.index)
    first = series.dropna().iloc[0] if series.notna().any() else None
    if isinstance(first, str):
        return pd.to_datetime(series, utc=True, format="ISO8601")
    return pd.to_datetime(series, utc=True)


def read_frame(session: Session, statement: Any, columns: list[str], times: tuple[str, ...] = ()) -> pd.DataFrame:
    """Run one statement and return its rows as a DataFrame (times parsed column-wise)."""
    rows = session.execute(statement).all()
    frame = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    for column in times:
        frame[column] = to_utc(frame[column])
    return frame


def data_version(*, session: Session) -> tuple[Any, ...]:
    """A cheap fingerprint of everything the reports read: changes whenever a lead, touch, stage change,
    opportunity or cost is added or edited, so cached figures are recomputed exactly then. One statement."""
    scalar = lambda s: s.scalar_subquery()  # noqa: E731
    row = session.execute(select(
        scalar(select(func.count(Lead.id))), scalar(select(func.max(Lead.id))),
        scalar(select(func.max(raw_time(Lead.updated_at)))),
        scalar(select(func.max(Touchpoint.id))), scalar(select(func.count(Touchpoint.id))),
        scalar(select(func.max(StageChange.id))),
        scalar(select(func.count(Opportunity.id))), scalar(select(func.sum(Opportunity.amount))),
        scalar(select(func.max(raw_time(Opportunity.closed_at)))),
        scalar(select(func.count(Opportunity.id)).where(Opportunity.stage == "won")),
        scalar(select(func.count(ChannelCost.id))), scalar(select(func.sum(ChannelCost.amount))),
        scalar(select(func.max(ChannelCost.id))),
        scalar(select(func.count(Channel.id))), scalar(select(func.count(Campaign.id))),
    )).one()
    return tuple(str(v) for v in row)


# ---------------------------------------------------------------------------------------------------------------
# Stage history per lead
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class StageHistory:
    """Valid leads of a filter with when they first reached each funnel step (NaT when never)."""

    leads: pd.DataFrame  # id, stage, created_at, source_channel_id, source_campaign_id
    reached: pd.DataFrame  # index lead id, one column per funnel step: first arrival at it or beyond
    changes: pd.DataFrame = field(repr=False)  # lead_id, to_stage, at (main-track arrivals only)


def stage_history(*, session: Session, actor: Actor, filters: ReportFilter = ReportFilter(),
                  cohort: bool = True, source: bool = True) -> StageHistory:
    """Two statements: the filtered leads, and their arrivals on the main track."""
    require(actor, "reports")
    conditions = lead_conditions(actor, filters, source=source, cohort=cohort)
    leads = read_frame(
        session,
        select(Lead.id, Lead.stage, raw_time(Lead.created_at), Lead.source_channel_id, Lead.source_campaign_id)
        .where(*conditions),
        ["id", "stage", "created_at", "source_channel_id", "source_campaign_id"], times=("created_at",),
    )
    changes = read_frame(
        session,
        select(StageChange.lead_id, StageChange.to_stage, raw_time(StageChange.at))
        .join(Lead, Lead.id == StageChange.lead_id)
        .where(*conditions, StageChange.to_stage.in_(FUNNEL_STAGES[1:])),
        ["lead_id", "to_stage", "at"], times=("at",),
    )
    return StageHistory(leads=leads, reached=_first_arrivals(leads, changes), changes=changes)


def _first_arrivals(leads: pd.DataFrame, changes: pd.DataFrame) -> pd.DataFrame:
    """Per lead, the first time it reached each step or a later one (skips count as passing)."""
    ids = leads["id"].to_numpy(dtype=np.int64)
    reached = pd.DataFrame(index=pd.Index(ids, name="id"))
    reached[FUNNEL_STAGES[0]] = leads["created_at"].to_numpy()
    rank = changes["to_stage"].map(RANK).to_numpy()
    current_rank = leads["stage"].map(RANK).to_numpy()
    for stage in FUNNEL_STAGES[1:]:
        mask = rank >= RANK[stage]
        first = changes.loc[mask].groupby("lead_id")["at"].min()
        column = first.reindex(ids)
        # A lead whose current stage is at or beyond this step but has no StageChange for it (created there):
        # counted as reached at its creation.
        missing = column.isna().to_numpy() & (np.nan_to_num(current_rank, nan=-1) >= RANK[stage])
        column = column.where(~missing, leads["created_at"].to_numpy())
        reached[stage] = column.to_numpy()
    for stage in FUNNEL_STAGES:
        reached[stage] = pd.to_datetime(reached[stage], utc=True)
    return reached


def _median_days(history: StageHistory) -> dict[str, tuple[float | None, int]]:
    """Median days in each step and how many leads it is based on (see the module docstring)."""
    out: dict[str, tuple[float | None, int]] = {}
    changes = history.changes
    lead = changes["lead_id"].to_numpy(dtype=np.int64)
    seconds = _seconds(changes["at"])
    rank = changes["to_stage"].map(RANK).to_numpy(dtype=float)
    created = pd.Series(_seconds(history.leads["created_at"]), index=history.leads["id"].to_numpy(dtype=np.int64))
    for stage in FUNNEL_STAGES[:-1]:
        later_mask = rank > RANK[stage]
        later = pd.Series(seconds[later_mask]).groupby(lead[later_mask]).min()
        if stage == FUNNEL_STAGES[0]:
            entered = created.reindex(later.index).dropna()
        else:
            own = changes["to_stage"].to_numpy() == stage
            own_lead, own_at = lead[own], seconds[own]
            next_at = later.reindex(own_lead).to_numpy()
            valid = ~np.isnan(next_at) & (own_at <= next_at)
            entered = pd.Series(own_at[valid]).groupby(own_lead[valid]).max()
        if entered.empty:
            out[stage] = (None, 0)
            continue
        days = (later.reindex(entered.index).to_numpy() - entered.to_numpy()) / 86_400.0
        days = days[days >= 0]
        out[stage] = (float(np.median(days)) if len(days) else None, int(len(days)))
    out[FUNNEL_STAGES[-1]] = (None, 0)  # won is final: no time "in" it
    return out


def _seconds(values: pd.Series) -> np.ndarray:
    """Aware times as float epoch seconds (NaN for missing)."""
    stamps = pd.to_datetime(values, utc=True)
    out = np.full(len(stamps), np.nan)
    mask = stamps.notna().to_numpy()
    if mask.any():
        out[mask] = stamps[mask].dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9
    return out


def funnel_table(history: StageHistory) -> pd.DataFrame:
    """Counts, conversions and median days per step, in funnel order."""
    counts = [int(history.reached[stage].notna().sum()) for stage in FUNNEL_STAGES]
    medians = _median_days(history)
    rows = []
    for i, stage in enumerate(FUNNEL_STAGES):
        previous = counts[i - 1] if i else counts[0]
        rows.append({
            "stage": stage,
            "leads": counts[i],
            "step_conversion": (counts[i] / previous) if previous else None,
            "overall_conversion": (counts[i] / counts[0]) if counts[0] else None,
            "median_days": medians[stage][0],
            "timed_leads": medians[stage][1],
        })
    return pd.DataFrame(rows, columns=FUNNEL_COLUMNS)


def funnel(*, session: Session, actor: Actor, filters: ReportFilter = ReportFilter()) -> pd.DataFrame:
    """The funnel of the filtered cohort (see the module docstring for the conventions)."""
    return funnel_table(stage_history(session=session, actor=actor, filters=filters))


def side_tracks(*, session: Session, actor: Actor, filters: ReportFilter = ReportFilter()) -> dict[str, int]:
    """How many of the filtered leads were ever recycled, became an MQL more than once, were disqualified or
    lost — the leads the funnel's "count once" convention folds in. One statement."""
    require(actor, "reports")
    conditions = lead_conditions(actor, filters)
    per_lead = (
        select(
            StageChange.lead_id,
            func.sum(case((StageChange.to_stage == Stage.RECYCLED, 1), else_=0)).label("recycled"),
            func.sum(case((StageChange.to_stage == Stage.MQL, 1), else_=0)).label("mql"),
            func.sum(case((StageChange.to_stage == Stage.DISQUALIFIED, 1), else_=0)).label("disqualified"),
            func.sum(case((StageChange.to_stage == Stage.LOST, 1), else_=0)).label("lost"),
        )
        .join(Lead, Lead.id == StageChange.lead_id)
        .where(*conditions)
        .group_by(StageChange.lead_id)
        .subquery()
    )
    row = session.execute(select(
        func.coalesce(func.sum(case((per_lead.c.recycled > 0, 1), else_=0)), 0),
        func.coalesce(func.sum(case((per_lead.c.mql > 1, 1), else_=0)), 0),
        func.coalesce(func.sum(case((per_lead.c.disqualified > 0, 1), else_=0)), 0),
        func.coalesce(func.sum(case((per_lead.c.lost > 0, 1), else_=0)), 0),
    )).one()
    return {"recycled": int(row[0]), "mql_again": int(row[1]), "disqualified": int(row[2]), "lost": int(row[3])}


# ---------------------------------------------------------------------------------------------------------------
# Drill-down: the leads behind a number
# ---------------------------------------------------------------------------------------------------------------
def reached_condition(stage: str) -> ColumnElement[bool]:
    """Lead reached ``stage`` or a later step, by the funnel's convention (same rule as the counts)."""
    if stage not in RANK:
        from core.errors import ValidationError

        raise ValidationError(f"Unknown funnel step: {stage}.", key="reports.unknown_stage", stage=stage)
    if RANK[stage] == 0:
        return literal(True)
    later = list(FUNNEL_STAGES[RANK[stage]:])
    return or_(
        Lead.stage.in_(later),
        exists().where(StageChange.lead_id == Lead.id, StageChange.to_stage.in_(later)),
    )


def funnel_leads(
    *,
    session: Session,
    actor: Actor,
    filters: ReportFilter = ReportFilter(),
    stage: str = FUNNEL_STAGES[0],
    channel_id: int | None = None,
    campaign_id: int | None = None,
    cohort: bool = True,
    limit: int = 100,
    offset: int = 0,
) -> tuple[pd.DataFrame, int]:
    """One page of the leads behind a funnel number (and how many there are in all), newest arrival first.

    ``channel_id`` / ``campaign_id`` narrow to one source (the drill-down of a channel row in ROI).
    """
    require(actor, "reports")
    conditions = [*lead_conditions(actor, filters, cohort=cohort), reached_condition(stage)]
    if channel_id is not None:
        conditions.append(Lead.source_channel_id == channel_id)
    if campaign_id is not None:
        conditions.append(Lead.source_campaign_id == campaign_id)
    total = int(session.scalar(select(func.count(Lead.id)).where(*conditions)) or 0)
    if RANK.get(stage, 0) == 0:
        reached_at = Lead.created_at
        reached = None
    else:
        reached = (
            select(StageChange.lead_id, func.min(StageChange.at).label("at"))
            .where(StageChange.to_stage.in_(FUNNEL_STAGES[RANK[stage]:]))
            .group_by(StageChange.lead_id)
            .subquery()
        )
        reached_at = func.coalesce(reached.c.at, Lead.created_at)
    statement = (
        select(Lead.id, Lead.name, Lead.company, Lead.province, User.display_name.label("owner"),
               Channel.name.label("channel"), Campaign.name.label("campaign"), Lead.stage, Lead.created_at,
               reached_at.label("reached_at"))
        .join(User, User.id == Lead.owner_id, isouter=True)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .join(Campaign, Campaign.id == Lead.source_campaign_id, isouter=True)
        .where(*conditions)
    )
    if reached is not None:
        statement = statement.join(reached, reached.c.lead_id == Lead.id, isouter=True)
    statement = statement.order_by(reached_at.desc(), Lead.id.desc()).limit(limit).offset(offset)
    frame = read_frame(session, statement, DRILL_COLUMNS)
    for column in ("created_at", "reached_at"):
        frame[column] = to_utc(frame[column])
    return frame, total


# ---------------------------------------------------------------------------------------------------------------
# Snapshot by channel (kept for the channel overview)
# ---------------------------------------------------------------------------------------------------------------
def stage_counts_by_channel(*, session: Session, actor: Actor, filters: ReportFilter = ReportFilter()
                            ) -> pd.DataFrame:
    """Valid leads by source channel (rows) and current stage (columns, in stage order), with a total column."""
    require(actor, "reports")
    rows = session.execute(
        select(func.coalesce(Channel.name, "—").label("channel"), Lead.stage, func.count().label("n"))
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .where(*lead_conditions(actor, filters))
        .group_by(Channel.name, Lead.stage)
    ).all()
    frame = pd.DataFrame(rows, columns=["channel", "stage", "n"])
    table = frame.pivot_table(index="channel", columns="stage", values="n", aggfunc="sum", fill_value=0)
    table = table.reindex(columns=STAGE_ORDER, fill_value=0).astype(int)
    table["total"] = table.sum(axis=1)
    return table.sort_values("total", ascending=False)


def funnel_by_source(history: StageHistory, *, level: str = "channel") -> pd.DataFrame:
    """Leads reaching each step per source channel (or campaign): rows = source id, columns = steps."""
    column = "source_channel_id" if level == "channel" else "source_campaign_id"
    reached = history.reached.notna()
    reached[column] = history.leads.set_index("id")[column].reindex(reached.index).to_numpy()
    return reached.groupby(column, dropna=False)[list(FUNNEL_STAGES)].sum().astype(int)
