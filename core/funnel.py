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
from sqlalchemy import ColumnElement, Float, case, cast, exists, func, literal, or_, select
from sqlmodel import Session

from core.auth import Actor, lead_scope, require
from core.clock import TEAM_TIMEZONE
from core.lifecycle import MAIN_TRACK
from core.report_data import ReportData, campaign_label, load_report_data, raw_time, read_frame, to_utc
from db.models import (
    Campaign,
    Channel,
    ChannelCost,
    ImportBatch,
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
    """``YYYY-MM`` of each aware time in the team's time zone (missing stays missing).

    Formats each distinct month once: strftime over 100,000 times is slow, over 12 months it is not."""
    stamps = pd.to_datetime(pd.Series(values), utc=True).dt.tz_convert(TEAM_TIMEZONE)
    code = (stamps.dt.year * 12 + stamps.dt.month - 1).astype("float64").to_numpy()
    labels = {c: f"{int(c) // 12:04d}-{int(c) % 12 + 1:02d}" for c in np.unique(code[~np.isnan(code)])}
    return pd.Series([labels.get(c) for c in code] if len(labels) > 1 else
                     np.where(np.isnan(code), None, next(iter(labels.values()), None)).tolist(),
                     index=stamps.index, dtype=object)


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


def data_version(*, session: Session) -> tuple[Any, ...]:
    """A cheap fingerprint of everything the reports read: changes whenever a lead, touch, stage change,
    opportunity or cost is added or edited, or an import is undone, so cached figures are recomputed exactly
    then. One statement."""
    scalar = lambda s: s.scalar_subquery()  # noqa: E731
    row = session.execute(select(
        scalar(select(func.count(Lead.id))), scalar(select(func.max(Lead.id))),
        scalar(select(func.max(raw_time(Lead.updated_at)))),
        # Touches are only ever removed by undoing an import: its time stands for their count, which would mean
        # reading a million index entries on every run of the Reports page.
        scalar(select(func.max(Touchpoint.id))), scalar(select(func.max(raw_time(ImportBatch.undone_at)))),
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
    """Two statements: the filtered leads, and their stage changes."""
    data = load_report_data(session=session, actor=actor, owner_ids=filters.owner_ids, regions=filters.regions,
                            parts=("leads", "changes"))
    return history_from(data, filters, cohort=cohort, source=source)


def filtered_leads(data: ReportData, filters: ReportFilter, *, cohort: bool = True,
                   source: bool = True) -> pd.DataFrame:
    """The rows of ``data.leads`` that ``filters`` keep (the in-memory twin of ``lead_conditions``)."""
    start, end = filters.months() if cohort else (None, None)
    mask = data.lead_mask(
        owner_ids=filters.owner_ids, regions=filters.regions,
        channel_ids=filters.channel_ids if source else (), campaign_ids=filters.campaign_ids if source else (),
        created_from=pd.Timestamp(start) if start is not None else None,
        created_to=pd.Timestamp(end) if end is not None else None,
    )
    return data.leads[mask]


def history_from(data: ReportData, filters: ReportFilter = ReportFilter(), *, cohort: bool = True,
                 source: bool = True) -> StageHistory:
    """The stage history of the leads ``filters`` keep, from loaded report data."""
    leads = filtered_leads(data, filters, cohort=cohort, source=source).reset_index(drop=True)
    changes = data.changes
    keep = changes["to_stage"].isin(FUNNEL_STAGES[1:]).to_numpy() & changes["lead_id"].isin(leads["id"]).to_numpy()
    changes = changes[keep].reset_index(drop=True)
    return StageHistory(leads=leads, reached=_first_arrivals(leads, changes), changes=changes)


_NAT = np.iinfo(np.int64).max  # "never" in int64 nanoseconds, so minima work without NaN handling


def _ns(values: pd.Series) -> np.ndarray:
    """Aware times as int64 nanoseconds since the epoch (``_NAT`` for missing)."""
    stamps = pd.to_datetime(values, utc=True)
    out = stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view("int64").copy()
    out[stamps.isna().to_numpy()] = _NAT
    return out


def _first_arrivals(leads: pd.DataFrame, changes: pd.DataFrame) -> pd.DataFrame:
    """Per lead, the first time it reached each step or a later one (skips count as passing)."""
    ids = leads["id"].to_numpy(dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    created = _ns(leads["created_at"])
    position = order[np.searchsorted(ids[order], changes["lead_id"].to_numpy(dtype=np.int64))]
    at = _ns(changes["at"])
    rank = changes["to_stage"].map(RANK).to_numpy(dtype=float)
    current_rank = leads["stage"].map(RANK).fillna(-1).to_numpy(dtype=float)
    reached = pd.DataFrame(index=pd.Index(ids, name="id"))
    reached[FUNNEL_STAGES[0]] = created
    for stage in FUNNEL_STAGES[1:]:
        first = np.full(len(ids), _NAT, dtype=np.int64)
        mask = rank >= RANK[stage]
        np.minimum.at(first, position[mask], at[mask])
        # A lead whose current stage is at or beyond this step without a StageChange for it was created there.
        missing = (first == _NAT) & (current_rank >= RANK[stage])
        first[missing] = created[missing]
        reached[stage] = first
    for stage in FUNNEL_STAGES:
        values = reached[stage].to_numpy()
        reached[stage] = pd.to_datetime(np.where(values == _NAT, np.iinfo(np.int64).min, values), utc=True)
    return reached


def _median_days(history: StageHistory) -> dict[str, tuple[float | None, int]]:
    """Median days in each step and how many leads it is based on (see the module docstring)."""
    changes = history.changes
    lead_ids = history.leads["id"].to_numpy(dtype=np.int64)
    order = np.argsort(lead_ids, kind="stable")
    lead = order[np.searchsorted(lead_ids[order], changes["lead_id"].to_numpy(dtype=np.int64))]
    return step_medians(lead=lead, rank=changes["to_stage"].map(RANK).to_numpy(dtype=np.int64),
                        at=_seconds(changes["at"]) / 86_400.0,
                        created=_seconds(history.leads["created_at"]) / 86_400.0)


def step_medians(*, lead: np.ndarray, rank: np.ndarray, at: np.ndarray,
                 created: np.ndarray) -> dict[str, tuple[float | None, int]]:
    """Median days in each step, and how many leads each median is based on, from the main-track arrivals.

    ``lead`` (a position in ``created``), ``rank`` (funnel rank, 1 or more) and ``at`` (days) describe one arrival
    each; ``created`` is each lead's creation in days. A lead's time in step k runs from its last arrival at k that
    is not after its first arrival beyond k (its creation for the first step) to that first arrival beyond k;
    leads that never went beyond k have no finished time."""
    out: dict[str, tuple[float | None, int]] = {}
    for k, stage in enumerate(FUNNEL_STAGES[:-1]):
        later = np.full(len(created), np.inf)
        beyond = rank > k
        np.minimum.at(later, lead[beyond], at[beyond])
        moved_on = np.isfinite(later)
        if k == 0:
            entered = created
        else:
            own = (rank == k) & (at <= later[lead])
            entered = np.full(len(created), -np.inf)
            np.maximum.at(entered, lead[own], at[own])
        timed = moved_on & np.isfinite(entered)
        days = later[timed] - entered[timed]
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
    return _table(counts, _median_days(history))


def _table(counts: list[int], medians: dict[str, tuple[float | None, int]]) -> pd.DataFrame:
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


# ---------------------------------------------------------------------------------------------------------------
# The same funnel counted in the database (what the Reports page opens with)
# ---------------------------------------------------------------------------------------------------------------
SIDE_TRACKS: tuple[tuple[str, str, int], ...] = (
    ("recycled", Stage.RECYCLED, 0), ("mql_again", Stage.MQL, 1), ("disqualified", Stage.DISQUALIFIED, 0),
    ("lost", Stage.LOST, 0),
)


def _rank(column: Any, *, steps: tuple[str, ...] = FUNNEL_STAGES) -> Any:
    """The funnel rank of a stage column; NULL for a stage off the main track."""
    return case({stage: RANK[stage] for stage in steps}, value=column, else_=None)


def _day_number(column: Any, dialect: str) -> Any:
    """A stored time as a number of days (any origin: only differences are used), computed by the database so
    that no time string is parsed in Python."""
    if dialect == "sqlite":
        return func.julianday(column)
    return cast(func.extract("epoch", column), Float) / 86_400.0


def _raw_rows(session: Session, statement: Any) -> list[tuple[Any, ...]]:
    """Plain tuples from the driver's cursor: a Row object per stage change would cost more than the query."""
    result = session.connection().execute(statement)
    cursor = getattr(result, "cursor", None)
    rows = cursor.fetchall() if cursor is not None else [tuple(r) for r in result.all()]
    result.close()
    return rows


def funnel_summary(*, session: Session, actor: Actor, filters: ReportFilter = ReportFilter()
                   ) -> tuple[pd.DataFrame, dict[str, int]]:
    """``funnel`` and ``side_tracks`` of the filtered cohort without loading every lead and stage change.

    The same conventions as the in-memory ``funnel_table`` (module docstring), in three statements: the leads by
    their current stage (an index count), the main-track arrivals of the cohort (the only rows read: a fraction
    of all stage changes, with times as day numbers), and the side tracks counted by the database.
    """
    require(actor, "reports")
    conditions = lead_conditions(actor, filters)
    dialect = session.get_bind().dialect.name
    by_stage = dict(session.execute(select(Lead.stage, func.count()).where(*conditions).group_by(Lead.stage)).all())
    # Stage conditions written so that no index on the stage can serve them: with an index condition on both
    # the lead and the stage, PostgreSQL without fresh statistics (after a bulk load) probes the whole stage
    # index once per lead; a lead's changes are found through its own index instead.
    main_track = _rank(StageChange.to_stage, steps=FUNNEL_STAGES[1:])
    side_track = case({stage: 1 for _, stage, more in SIDE_TRACKS if not more}, value=StageChange.to_stage,
                      else_=None)
    rows = _raw_rows(session, (
        select(StageChange.lead_id, main_track,
               _day_number(StageChange.at, dialect), func.coalesce(_rank(Lead.stage), -1),
               _day_number(Lead.created_at, dialect))
        .join(Lead, Lead.id == StageChange.lead_id)
        .where(*conditions, main_track.is_not(None))
    ))
    side = dict(session.execute(
        select(StageChange.to_stage, func.count(func.distinct(StageChange.lead_id)))
        .join(Lead, Lead.id == StageChange.lead_id)
        .where(*conditions, side_track.is_not(None))
        .group_by(StageChange.to_stage)
    ).all())

    changes = np.array(rows, dtype=float).reshape(-1, 5)
    lead_ids, lead = np.unique(changes[:, 0].astype(np.int64), return_inverse=True)
    rank = changes[:, 1].astype(np.int64)
    own = np.full(len(lead_ids), -1, dtype=np.int64)
    own[lead] = changes[:, 3].astype(np.int64)
    created = np.full(len(lead_ids), np.nan)
    created[lead] = changes[:, 4]
    moved = np.full(len(lead_ids), -1, dtype=np.int64)
    np.maximum.at(moved, lead, rank)

    # A lead counts at a step when its current stage or one of its arrivals is at or beyond it.
    total = int(sum(by_stage.values()))
    counts = [total]
    for k in range(1, len(FUNNEL_STAGES)):
        at_or_beyond = sum(n for stage, n in by_stage.items() if RANK.get(stage, -1) >= k)
        counts.append(int(at_or_beyond + ((own < k) & (moved >= k)).sum()))
    tracks: dict[str, int] = {}
    for name, stage, more_than in SIDE_TRACKS:
        if more_than:  # "became an MQL more than once" comes from the arrivals already read
            tracks[name] = int((np.bincount(lead[rank == RANK[stage]], minlength=len(lead_ids)) > more_than).sum())
        else:
            tracks[name] = int(side.get(stage, 0))
    medians = step_medians(lead=lead, rank=rank, at=changes[:, 2], created=created)
    return _table(counts, medians), tracks


def funnel(*, session: Session | None = None, actor: Actor | None = None, filters: ReportFilter = ReportFilter(),
           data: ReportData | None = None) -> pd.DataFrame:
    """The funnel of the filtered cohort (see the module docstring for the conventions); from ``data`` when
    given, else counted by the database (``funnel_summary``)."""
    if data is not None:
        return funnel_table(history_from(data, filters))
    assert session is not None and actor is not None
    return funnel_summary(session=session, actor=actor, filters=filters)[0]


def side_tracks(*, session: Session | None = None, actor: Actor | None = None,
                filters: ReportFilter = ReportFilter(), data: ReportData | None = None) -> dict[str, int]:
    """How many of the filtered leads were ever recycled, became an MQL more than once, were disqualified or
    lost — the leads the funnel's "count once" convention folds in."""
    if data is None:
        assert session is not None and actor is not None
        return funnel_summary(session=session, actor=actor, filters=filters)[1]
    leads = filtered_leads(data, filters)
    changes = data.changes[data.changes["lead_id"].isin(leads["id"]).to_numpy()]
    lead_codes, _ = pd.factorize(changes["lead_id"])
    counts: dict[str, int] = {}
    for name, stage, more_than in SIDE_TRACKS:
        per_lead = np.bincount(lead_codes[(changes["to_stage"] == stage).to_numpy()])
        counts[name] = int((per_lead > more_than).sum())
    return counts


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
    no_source: bool = False,
    no_campaign: bool = False,
    cohort: bool = True,
    reached_in_months: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> tuple[pd.DataFrame, int]:
    """One page of the leads behind a funnel number (and how many there are in all), newest arrival first.

    ``channel_id`` / ``campaign_id`` narrow to one source, ``no_source`` to leads without one (the drill-down
    of an ROI row). ``reached_in_months`` counts leads whose first arrival at the step falls in the filter's
    months (ROI's event basis) instead of leads created in them.
    """
    require(actor, "reports")
    conditions = [*lead_conditions(actor, filters, cohort=cohort and not reached_in_months),
                  reached_condition(stage)]
    if no_source:
        conditions.append(Lead.source_channel_id.is_(None))
    if no_campaign:
        conditions.append(Lead.source_campaign_id.is_(None))
    if channel_id is not None:
        conditions.append(Lead.source_channel_id == channel_id)
    if campaign_id is not None:
        conditions.append(Lead.source_campaign_id == campaign_id)
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
    if reached_in_months:
        start, end = filters.months()
        if start is not None:
            conditions.append(reached_at >= start)
        if end is not None:
            conditions.append(reached_at < end)
    statement = (
        select(Lead.id, Lead.name, Lead.company, Lead.province, User.display_name.label("owner"),
               Channel.name.label("channel"), Campaign.name.label("campaign"), Lead.stage, Lead.created_at,
               reached_at.label("reached_at"))
        .join(User, User.id == Lead.owner_id, isouter=True)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .join(Campaign, Campaign.id == Lead.source_campaign_id, isouter=True)
        .where(*conditions)
    )
    counting = select(func.count(Lead.id)).where(*conditions)
    if reached is not None:
        statement = statement.join(reached, reached.c.lead_id == Lead.id, isouter=True)
        counting = counting.join(reached, reached.c.lead_id == Lead.id, isouter=True)
    total = int(session.scalar(counting) or 0)
    statement = statement.order_by(reached_at.desc(), Lead.id.desc()).limit(limit).offset(offset)
    frame = read_frame(session, statement, DRILL_COLUMNS)
    for column in ("created_at", "reached_at"):
        frame[column] = to_utc(frame[column])
    return frame, total


# ---------------------------------------------------------------------------------------------------------------
# Snapshot by channel (kept for the channel overview)
# ---------------------------------------------------------------------------------------------------------------
def filter_options(*, session: Session, actor: Actor) -> dict[str, Any]:
    """What the report filters offer: channels, campaigns, lead owners, regions and the months with leads."""
    require(actor, "reports")
    channels = session.execute(select(Channel.id, Channel.name).order_by(Channel.id)).all()
    campaigns = session.execute(select(Campaign.id, Campaign.name, Campaign.channel_id).order_by(Campaign.id)).all()
    owners = session.execute(
        select(User.id, User.display_name, User.username)
        .where(User.id.in_(select(Lead.owner_id).where(Lead.owner_id.is_not(None)).distinct()))
        .order_by(User.id)
    ).all()
    regions = [r for (r,) in session.execute(select(Lead.province).where(Lead.province.is_not(None))
                                             .distinct().order_by(Lead.province)).all() if r]
    first, last = session.execute(select(func.min(raw_time(Lead.created_at)), func.max(raw_time(Lead.created_at)))
                                  .where(Lead.status == LeadStatus.VALID)).one()
    months: list[date] = []
    if first is not None:
        low, high = month_label(to_utc([first, last])).tolist()
        year, month = int(low[:4]), int(low[5:])
        while f"{year:04d}-{month:02d}" <= high:
            months.append(date(year, month, 1))
            year, month = year + (month == 12), month % 12 + 1
    names = {cid: name for cid, name in channels}
    return {
        "channels": [(cid, name) for cid, name in channels],
        "campaigns": [(cid, campaign_label(names.get(ch), name), ch) for cid, name, ch in campaigns],
        "owners": [(uid, display or username) for uid, display, username in owners],
        "regions": regions,
        "months": months,
    }


def source_ids(options: dict[str, Any], level: str, label: str) -> dict[str, Any]:
    """The ``funnel_leads`` arguments that select the leads of an ROI row label (its drill-down)."""
    channels = {name: cid for cid, name in options["channels"]}
    if level == "channel":
        return {"channel_id": channels[label]} if label in channels else {"no_source": True}
    for cid, campaign, channel_id in options["campaigns"]:
        if campaign == label:
            return {"channel_id": channel_id, "campaign_id": cid}
    channel_name = label.rsplit(" / ", 1)[0]
    if channel_name in channels:
        return {"channel_id": channels[channel_name], "no_campaign": True}
    return {"no_source": True}


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
