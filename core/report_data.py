"""The rows every report reads, loaded once as DataFrames and filtered in memory.

Reading a million touches costs seconds; filtering them in pandas costs milliseconds. So the reports load the
leads, their stage changes, opportunities and touches once (one statement each) into a ``ReportData`` and
every filter, funnel, attribution and ROI figure is computed from it. The Reports page keeps one ``ReportData``
per data version (``core.funnel.data_version``) and computes each filter set from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, ColumnElement, Integer, String, cast, func, select, type_coerce
from sqlmodel import Session

from core.auth import Actor, lead_scope, require
from db.models import (
    Campaign,
    Channel,
    Lead,
    LeadStatus,
    Opportunity,
    StageChange,
    Touchpoint,
    TouchpointKind,
)

# An email we sent is something we did, not something the lead did: it earns no credit by default.
DEFAULT_EXCLUDED_KINDS: tuple[str, ...] = (TouchpointKind.EMAIL_SENT.value,)
PARTS = ("leads", "changes", "opportunities", "touches")


def raw_time(column: Any) -> Any:
    """A time column read without per-row conversion (text on SQLite); ``to_utc`` parses a whole column."""
    return type_coerce(column, String)


def to_utc(values: pd.Series | list[Any] | tuple[Any, ...]) -> pd.Series:
    """Parse a column of stored times (ISO text from SQLite, datetimes from PostgreSQL) to aware UTC at once."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if len(series) == 0:
        return pd.Series(pd.to_datetime([], utc=True), index=series.index)
    present = series.dropna()
    if len(present) and isinstance(present.iloc[0], str):
        try:  # SQLAlchemy's SQLite storage format; anything else falls back to ISO 8601 parsing
            return pd.to_datetime(series, utc=True, format="%Y-%m-%d %H:%M:%S.%f")
        except ValueError:
            return pd.to_datetime(series, utc=True, format="ISO8601")
    return pd.to_datetime(series, utc=True)


def epoch_us(column: Any, dialect: str) -> Any:
    """A stored time as integer microseconds since the epoch, computed by the database: exact, and a million of
    them become a datetime column at once instead of being parsed from text one by one."""
    if dialect == "sqlite":  # UTC text 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds, then the six digits
        return (cast(func.strftime("%s", column), BigInteger) * 1_000_000
                + cast(func.substr(column, 21, 6), Integer))
    return cast(func.round(func.extract("epoch", column) * 1_000_000), BigInteger)


def read_frame(session: Session, statement: Any, columns: list[str], times: tuple[str, ...] = (),
               ints: tuple[str, ...] = (), us_times: tuple[str, ...] = ()) -> pd.DataFrame:
    """Run one statement and build a DataFrame column by column (times parsed at once, not per row).

    Rows come straight from the driver's cursor: the selected columns need no per-row conversion (times are
    read with ``raw_time``, or as ``epoch_us`` integers for the columns in ``us_times``), which keeps a million
    rows to a fraction of the time Row objects would take. When every column is an integer (``ints`` and
    ``us_times``), the rows become one integer matrix in a single step.
    """
    result = session.connection().execute(statement)
    cursor = getattr(result, "cursor", None)
    rows = cursor.fetchall() if cursor is not None else [tuple(r) for r in result.all()]
    result.close()
    integers = set(ints) | set(us_times)
    if not rows:
        frame = pd.DataFrame({c: pd.Series(dtype="int64" if c in integers else object) for c in columns})
    elif integers >= set(columns):
        matrix = np.array(rows, dtype=np.int64).reshape(-1, len(columns))
        frame = pd.DataFrame({c: matrix[:, i] for i, c in enumerate(columns)})
    else:
        data = list(zip(*rows, strict=True))
        frame = pd.DataFrame({c: (np.array(data[i], dtype=np.int64) if c in integers
                                  else pd.Series(data[i], dtype=object)) for i, c in enumerate(columns)})
    for column in times:
        frame[column] = to_utc(frame[column])
    for column in us_times:
        frame[column] = pd.to_datetime(frame[column].to_numpy(dtype=np.int64), unit="us", utc=True)
    for column in ints:
        if frame[column].dtype == object:
            frame[column] = frame[column].astype("int64")
    return frame


def _nullable_ints(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").astype("Int64")


@dataclass
class ReportData:
    """Valid leads the actor may see, and what happened to them."""

    leads: pd.DataFrame  # id, stage, created_at, source_channel_id, source_campaign_id, owner_id, province
    changes: pd.DataFrame  # lead_id, to_stage, at (every stage change, time order)
    opportunities: pd.DataFrame  # lead_id, amount, stage, created_at
    touches: pd.DataFrame  # lead_id, channel_id, campaign_id, occurred_at, channel, campaign
    channels: dict[int, str] = field(default_factory=dict)
    campaigns: dict[int, tuple[str, int]] = field(default_factory=dict)  # id → (name, channel id)

    def lead_mask(self, *, owner_ids: Iterable[int] = (), regions: Iterable[str] = (),
                  channel_ids: Iterable[int] = (), campaign_ids: Iterable[int] = (),
                  created_from: pd.Timestamp | None = None, created_to: pd.Timestamp | None = None) -> np.ndarray:
        """Which rows of ``leads`` pass the given conditions (the same rules as ``core.funnel.lead_conditions``)."""
        leads = self.leads
        keep = np.ones(len(leads), dtype=bool)
        if owner_ids := tuple(owner_ids):
            keep &= leads["owner_id"].isin(owner_ids).to_numpy()
        if regions := tuple(regions):
            keep &= leads["province"].isin(regions).to_numpy()
        if channel_ids := tuple(channel_ids):
            keep &= leads["source_channel_id"].isin(channel_ids).to_numpy()
        if campaign_ids := tuple(campaign_ids):
            keep &= leads["source_campaign_id"].isin(campaign_ids).to_numpy()
        if created_from is not None:
            keep &= (leads["created_at"] >= created_from).to_numpy()
        if created_to is not None:
            keep &= (leads["created_at"] < created_to).to_numpy()
        return keep

    def label_touches(self) -> None:
        """Add ``channel`` and ``campaign`` names to the touches, as categoricals (a million touches share a
        few dozen names, and the models factorize categoricals for free)."""
        touches = self.touches
        channel_ids = touches["channel_id"].fillna(-1).to_numpy(dtype=np.int64)
        campaign_ids = touches["campaign_id"].fillna(-1).to_numpy(dtype=np.int64)
        channels, campaigns = self.channels, self.campaigns
        touches["channel"] = categorical(channel_ids, lambda i: channels.get(i, f"#{i}") if i >= 0 else None)
        stride = max(campaigns, default=0) + 2  # (channel, campaign) pairs as one integer key
        touches["campaign"] = categorical(
            channel_ids * stride + (campaign_ids + 1),
            lambda key: campaign_label(channels.get(key // stride),
                                       campaigns.get(key % stride - 1, (None, 0))[0]))


def campaign_label(channel: str | None, campaign: str | None) -> str:
    """How a campaign is named in per-campaign reports: campaign names repeat across channels, so both."""
    return f"{channel or '—'} / {campaign or '—'}"


def categorical(keys: np.ndarray, name_of: Callable[[int], str | None]) -> pd.Categorical:
    """A categorical of ``name_of(key)`` per key, computing each distinct name once."""
    codes, uniques = pd.factorize(keys)
    names = pd.Series([name_of(int(key)) for key in uniques], dtype=object)
    categories = pd.Index(names.drop_duplicates().dropna())
    name_codes = categories.get_indexer(names)
    return pd.Categorical.from_codes(name_codes[codes] if len(codes) else codes, categories=categories)


def _lead_conditions(actor: Actor, owner_ids: tuple[int, ...], regions: tuple[str, ...]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Lead.status == LeadStatus.VALID, lead_scope(actor)]
    if owner_ids:
        conditions.append(Lead.owner_id.in_(owner_ids))
    if regions:
        conditions.append(Lead.province.in_(regions))
    return conditions


def load_report_data(
    *,
    session: Session,
    actor: Actor,
    owner_ids: Iterable[int] = (),
    regions: Iterable[str] = (),
    parts: Iterable[str] = PARTS,
    exclude_kinds: Iterable[str] = DEFAULT_EXCLUDED_KINDS,
) -> ReportData:
    """One statement per part (plus two tiny name look-ups). Owners and regions narrow the leads in SQL; every
    other filter is applied in memory. Touches without a channel cannot be credited and are not loaded, nor are
    the kinds in ``exclude_kinds``."""
    require(actor, "reports")
    parts = set(parts)
    conditions = _lead_conditions(actor, tuple(owner_ids), tuple(regions))
    dialect = session.get_bind().dialect.name
    leads = read_frame(
        session,
        select(Lead.id, Lead.stage, epoch_us(Lead.created_at, dialect), Lead.source_channel_id,
               Lead.source_campaign_id, Lead.owner_id, Lead.province).where(*conditions).order_by(Lead.id),
        ["id", "stage", "created_at", "source_channel_id", "source_campaign_id", "owner_id", "province"],
        ints=("id",), us_times=("created_at",),
    )
    for column in ("source_channel_id", "source_campaign_id", "owner_id"):
        leads[column] = _nullable_ints(leads[column])
    changes = pd.DataFrame({"lead_id": pd.Series(dtype="int64"), "to_stage": pd.Series(dtype=object),
                            "at": pd.Series(dtype="datetime64[ns, UTC]")})
    if "changes" in parts:
        changes = read_frame(
            session,
            select(StageChange.lead_id, StageChange.to_stage, epoch_us(StageChange.at, dialect))
            .join(Lead, Lead.id == StageChange.lead_id).where(*conditions)
            .order_by(StageChange.at, StageChange.id),
            ["lead_id", "to_stage", "at"], ints=("lead_id",), us_times=("at",),
        )
    opportunities = pd.DataFrame({"lead_id": pd.Series(dtype="int64"), "amount": pd.Series(dtype=float),
                                  "stage": pd.Series(dtype=object),
                                  "created_at": pd.Series(dtype="datetime64[ns, UTC]")})
    if "opportunities" in parts:
        opportunities = read_frame(
            session,
            select(Opportunity.lead_id, Opportunity.amount, Opportunity.stage, raw_time(Opportunity.created_at))
            .join(Lead, Lead.id == Opportunity.lead_id).where(*conditions),
            ["lead_id", "amount", "stage", "created_at"], times=("created_at",), ints=("lead_id",),
        )
        opportunities["amount"] = opportunities["amount"].astype(float)
    touches = pd.DataFrame({"lead_id": pd.Series(dtype="int64"), "channel_id": pd.Series(dtype="Int64"),
                            "campaign_id": pd.Series(dtype="Int64"),
                            "occurred_at": pd.Series(dtype="datetime64[ns, UTC]")})
    if "touches" in parts:
        touch_conditions = [*conditions, Touchpoint.channel_id.is_not(None)]
        if excluded := list(exclude_kinds):
            touch_conditions.append(Touchpoint.kind.not_in(excluded))
        # Every column an integer (no campaign: -1), so a million touches load as one integer matrix.
        touches = read_frame(
            session,
            select(Touchpoint.lead_id, Touchpoint.channel_id, func.coalesce(Touchpoint.campaign_id, -1),
                   epoch_us(Touchpoint.occurred_at, dialect))
            .join(Lead, Lead.id == Touchpoint.lead_id).where(*touch_conditions).order_by(Touchpoint.id),
            ["lead_id", "channel_id", "campaign_id", "occurred_at"], ints=("lead_id", "channel_id", "campaign_id"),
            us_times=("occurred_at",),
        )
        campaign_ids = touches["campaign_id"].to_numpy(dtype=np.int64)
        touches["campaign_id"] = pd.arrays.IntegerArray(campaign_ids, campaign_ids < 0)
    data = ReportData(
        leads=leads, changes=changes, opportunities=opportunities, touches=touches,
        channels=dict(session.execute(select(Channel.id, Channel.name)).all()),
        campaigns={cid: (name, channel_id) for cid, name, channel_id in
                   session.execute(select(Campaign.id, Campaign.name, Campaign.channel_id)).all()},
    )
    data.label_touches()
    return data
