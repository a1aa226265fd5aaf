"""Channels, campaigns and their monthly costs (Admin), with the checks a marketer needs to see."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, func, insert, select, update
from sqlmodel import Session

from core import audit
from core.auth import Actor, require
from core.errors import FileFormatError, NotFound, ValidationError
from db.models import Campaign, Channel, ChannelCost, Lead

CHANNEL_KINDS = ("website", "wechat", "livestream", "tradeshow", "email", "sem", "referral", "social", "event",
                 "other")


def list_channels(*, session: Session) -> pd.DataFrame:
    """Channels with how many leads each brought."""
    lead_counts = (
        select(Lead.source_channel_id.label("channel_id"), func.count().label("leads"))
        .group_by(Lead.source_channel_id)
        .subquery()
    )
    rows = session.execute(
        select(Channel.id, Channel.name, Channel.kind, Channel.description, Channel.active,
               func.coalesce(lead_counts.c.leads, 0).label("leads"))
        .join(lead_counts, lead_counts.c.channel_id == Channel.id, isouter=True)
        .order_by(Channel.id)
    ).all()
    return pd.DataFrame([r._asdict() for r in rows],
                        columns=["id", "name", "kind", "description", "active", "leads"])


def create_channel(
    *, session: Session, actor: Actor, name: str, kind: str = "other", description: str = ""
) -> Channel:
    require(actor, "manage_channels")
    name = name.strip()
    if not name:
        raise ValidationError("A channel needs a name.", key="channels.name_required")
    if kind not in CHANNEL_KINDS:
        raise ValidationError(f"Unknown channel kind: {kind}.", key="channels.kind_invalid", kind=kind)
    if session.scalar(select(Channel.id).where(func.lower(Channel.name) == name.lower())):
        raise ValidationError(f"A channel named {name} exists already.", key="channels.name_taken", name=name)
    channel = Channel(name=name, kind=kind, description=description)
    session.add(channel)
    session.flush()
    audit.record(session, actor_id=actor.id or None, action="channel.create", entity="channel",
                 entity_id=channel.id, detail={"name": name, "kind": kind})
    return channel


def list_campaigns(*, session: Session, channel_id: int | None = None) -> pd.DataFrame:
    statement = (
        select(Campaign.id, Campaign.name, Channel.name.label("channel"), Campaign.channel_id,
               Campaign.utm_source, Campaign.utm_medium, Campaign.utm_campaign, Campaign.tracking_code,
               Campaign.product_line, Campaign.start_date, Campaign.end_date, Campaign.budget)
        .join(Channel, Channel.id == Campaign.channel_id)
        .order_by(Channel.id, Campaign.id)
    )
    if channel_id is not None:
        statement = statement.where(Campaign.channel_id == channel_id)
    rows = session.execute(statement).all()
    return pd.DataFrame([r._asdict() for r in rows],
                        columns=["id", "name", "channel", "channel_id", "utm_source", "utm_medium",
                                 "utm_campaign", "tracking_code", "product_line", "start_date", "end_date",
                                 "budget"])


def create_campaign(
    *, session: Session, actor: Actor, name: str, channel_id: int, utm_source: str | None = None,
    utm_medium: str | None = None, utm_campaign: str | None = None, product_line: str | None = None,
    start_date: date | None = None, end_date: date | None = None, budget: float | None = None,
) -> Campaign:
    require(actor, "manage_channels")
    name = name.strip()
    if not name:
        raise ValidationError("A campaign needs a name.", key="channels.campaign_name_required")
    if session.get(Channel, channel_id) is None:
        raise NotFound(f"Not found: channel {channel_id}.", what=str(channel_id))
    if start_date and end_date and end_date < start_date:
        raise ValidationError("The campaign ends before it starts.", key="channels.dates_reversed")
    campaign = Campaign(name=name, channel_id=channel_id, utm_source=utm_source or None,
                        utm_medium=utm_medium or None, utm_campaign=utm_campaign or None,
                        product_line=product_line or None, start_date=start_date, end_date=end_date,
                        budget=budget)
    session.add(campaign)
    session.flush()
    audit.record(session, actor_id=actor.id or None, action="campaign.create", entity="campaign",
                 entity_id=campaign.id, detail={"name": name, "channel_id": channel_id})
    return campaign


def list_costs(*, session: Session, months: int = 12) -> pd.DataFrame:
    """Monthly costs, one row per channel/campaign/month, newest month first."""
    rows = session.execute(
        select(ChannelCost.id, ChannelCost.month, Channel.name.label("channel"),
               Campaign.name.label("campaign"), ChannelCost.amount, ChannelCost.note)
        .join(Channel, Channel.id == ChannelCost.channel_id)
        .join(Campaign, Campaign.id == ChannelCost.campaign_id, isouter=True)
        .order_by(ChannelCost.month.desc(), Channel.id, Campaign.id)
    ).all()
    frame = pd.DataFrame([r._asdict() for r in rows],
                         columns=["id", "month", "channel", "campaign", "amount", "note"])
    if not frame.empty and months:
        recent = sorted(frame["month"].unique(), reverse=True)[:months]
        frame = frame[frame["month"].isin(recent)].reset_index(drop=True)
    return frame


def set_cost(
    *, session: Session, actor: Actor, channel_id: int, month: date, amount: float,
    campaign_id: int | None = None, note: str = "",
) -> ChannelCost:
    """Record what a channel (or one of its campaigns) cost in a month; a second entry replaces the first."""
    require(actor, "manage_costs")
    if amount < 0:
        raise ValidationError("A cost cannot be negative.", key="channels.cost_negative")
    if session.get(Channel, channel_id) is None:
        raise NotFound(f"Not found: channel {channel_id}.", what=str(channel_id))
    if campaign_id is not None:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None or campaign.channel_id != channel_id:
            raise ValidationError("The campaign does not belong to this channel.",
                                  key="channels.campaign_mismatch")
    month = month.replace(day=1)
    existing = session.scalars(
        select(ChannelCost).where(
            ChannelCost.channel_id == channel_id,
            ChannelCost.month == month,
            ChannelCost.campaign_id.is_(None) if campaign_id is None else ChannelCost.campaign_id == campaign_id,
        )
    ).first()
    cost = existing or ChannelCost(channel_id=channel_id, campaign_id=campaign_id, month=month, amount=amount)
    cost.amount = float(amount)
    cost.note = note
    session.add(cost)
    session.flush()
    audit.record(session, actor_id=actor.id or None, action="cost.set", entity="channelcost", entity_id=cost.id,
                 detail={"channel_id": channel_id, "campaign_id": campaign_id, "month": month.isoformat(),
                         "amount": float(amount)})
    return cost


# ---------------------------------------------------------------------------------------------------------------
# Importing monthly costs from CSV or Excel
# ---------------------------------------------------------------------------------------------------------------
# Accepted headers per column, compared after NFKC, lower case and without spaces/underscores.
COST_HEADERS: dict[str, tuple[str, ...]] = {
    "month": ("month", "period", "月份", "月", "年月", "月度", "日期"),
    "channel": ("channel", "channelname", "渠道", "渠道名称", "来源渠道"),
    "campaign": ("campaign", "campaignname", "活动", "营销活动", "活动名称", "推广活动"),
    "amount": ("amount", "cost", "spend", "金额", "费用", "成本", "花费", "投放金额", "费用金额"),
    "note": ("note", "notes", "comment", "备注", "说明"),
}
COST_REQUIRED = ("month", "channel", "amount")
COST_MAX_ROWS = 50_000
_MONTH_PATTERNS = (
    re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*(?:[-/.月]\s*(?:\d{1,2}\s*日?)?)?\s*(?:\d{1,2}:\d{2}(?::\d{2})?)?$"),
    re.compile(r"^(\d{4})(\d{2})$"),
)


class CostImportError(ValidationError):
    """The file was refused as a whole; ``problems`` says what is wrong in which row and column."""

    key = "costs.import_failed"

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the cost file; nothing was imported.",
                         key="costs.import_failed", count=len(problems))
        self.problems = problems

    def localized_problems(self, lang: str) -> pd.DataFrame:
        """One row per problem: row number, column and the message in ``lang``."""
        from core.i18n import t

        return pd.DataFrame(
            [{"row": p["row"], "column": t(f"costs.column.{p['column']}", lang) if p.get("column") else "",
              "problem": t(p["key"], lang, **p.get("params", {}))} for p in self.problems],
            columns=["row", "column", "problem"],
        )


def _header_key(text: object) -> str:
    return re.sub(r"[\s_\-]+", "", unicodedata.normalize("NFKC", str(text)).strip().lower())


def _read_cost_file(data: bytes, filename: str) -> tuple[pd.DataFrame, int]:
    """The file as text cells and the line number of its first data row (header = line 1)."""
    name = filename.lower()
    try:
        if name.endswith((".xlsx", ".xlsm")):
            frame = pd.read_excel(io.BytesIO(data), dtype=object, header=0)
        elif name.endswith(".xls"):
            raise FileFormatError("Save the file as .xlsx or .csv.", key="costs.old_excel")
        else:
            text = _decode(data)
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|") if text.strip() else csv.excel
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=dialect.delimiter,
                                skip_blank_lines=True)
    except FileFormatError:
        raise
    except (ValueError, csv.Error, OSError, KeyError) as error:
        raise FileFormatError(f"The file cannot be read: {error}", key="costs.unreadable",
                              detail=type(error).__name__) from error
    return frame, 2


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise FileFormatError("The file's text encoding is not recognised.", key="costs.encoding")
    # Chinese files from Excel on Windows are GBK; gb18030 is its superset.
    encoding = "gb18030" if best.encoding.lower() in ("gbk", "gb2312", "gb18030", "big5") else best.encoding
    return data.decode(encoding, errors="strict")


def _parse_month(value: object) -> date | None:
    if isinstance(value, datetime | pd.Timestamp):
        return date(value.year, value.month, 1)
    if isinstance(value, date):
        return value.replace(day=1)
    text = unicodedata.normalize("NFKC", str(value)).strip()
    for pattern in _MONTH_PATTERNS:
        match = pattern.match(text)
        if match:
            year, month = int(match.group(1)), int(match.group(2))
            if 2000 <= year <= 2100 and 1 <= month <= 12:
                return date(year, month, 1)
    return None


def _parse_amount(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None if pd.isna(value) else float(value)
    text = unicodedata.normalize("NFKC", str(value)).strip()
    text = re.sub(r"[\s,¥元]|RMB|CNY", "", text, flags=re.IGNORECASE)
    factor = 1.0
    if text.endswith("万"):
        factor, text = 10_000.0, text[:-1]
    try:
        amount = float(text) * factor
    except ValueError:
        return None
    return amount if np.isfinite(amount) else None


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == ""


def parse_costs(*, session: Session, data: bytes, filename: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read and check a cost file: (rows ready to save, problems). Reads channels and campaigns once."""
    frame, first_line = _read_cost_file(data, filename)
    columns: dict[str, str] = {}
    for header in frame.columns:
        key = _header_key(header)
        for field, aliases in COST_HEADERS.items():
            if key in {_header_key(a) for a in aliases} and field not in columns:
                columns[field] = header
    missing = [field for field in COST_REQUIRED if field not in columns]
    if missing:
        raise CostImportError([{"row": 1, "column": field, "key": "costs.missing_column", "params": {}}
                               for field in missing])
    if len(frame) > COST_MAX_ROWS:
        raise CostImportError([{"row": first_line + COST_MAX_ROWS, "column": "", "key": "costs.too_many_rows",
                                "params": {"n": COST_MAX_ROWS}}])
    channels = {unicodedata.normalize("NFKC", name).strip().lower(): cid
                for cid, name in session.execute(select(Channel.id, Channel.name)).all()}
    campaigns: dict[tuple[int, str], list[int]] = {}
    for cid, name, channel_id in session.execute(select(Campaign.id, Campaign.name, Campaign.channel_id)).all():
        campaigns.setdefault((channel_id, unicodedata.normalize("NFKC", name).strip().lower()), []).append(cid)

    rows: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    seen: dict[tuple[int, int | None, date], int] = {}
    for position, record in enumerate(frame.to_dict("records")):
        line = first_line + position
        cells = {field: record.get(header) for field, header in columns.items()}
        if all(_blank(v) for v in cells.values()):
            continue
        row_problems: list[dict[str, Any]] = []

        def problem(column: str, key: str, line: int = line, into: list = row_problems, **params: Any) -> None:
            into.append({"row": line, "column": column, "key": key, "params": params})

        month = None
        if _blank(cells.get("month")):
            problem("month", "costs.month_missing")
        else:
            month = _parse_month(cells["month"])
            if month is None:
                problem("month", "costs.month_invalid", value=str(cells["month"]).strip())
        channel_id = None
        channel_text = "" if _blank(cells.get("channel")) else str(cells["channel"]).strip()
        if not channel_text:
            problem("channel", "costs.channel_missing")
        else:
            channel_id = channels.get(unicodedata.normalize("NFKC", channel_text).lower())
            if channel_id is None:
                problem("channel", "costs.channel_unknown", channel=channel_text)
        campaign_id = None
        campaign_text = "" if _blank(cells.get("campaign")) else str(cells["campaign"]).strip()
        if campaign_text and channel_id is not None:
            found = campaigns.get((channel_id, unicodedata.normalize("NFKC", campaign_text).lower()), [])
            if not found:
                problem("campaign", "costs.campaign_unknown", campaign=campaign_text, channel=channel_text)
            elif len(found) > 1:
                problem("campaign", "costs.campaign_ambiguous", campaign=campaign_text, channel=channel_text)
            else:
                campaign_id = found[0]
        amount = None
        if _blank(cells.get("amount")):
            problem("amount", "costs.amount_missing")
        else:
            amount = _parse_amount(cells["amount"])
            if amount is None:
                problem("amount", "costs.amount_invalid", value=str(cells["amount"]).strip())
            elif amount < 0:
                problem("amount", "costs.amount_negative", value=str(cells["amount"]).strip())
        if not row_problems and month is not None and channel_id is not None and amount is not None:
            key = (channel_id, campaign_id, month)
            if key in seen:
                problem("month", "costs.duplicate_row", first=seen[key])
            else:
                seen[key] = line
                rows.append({"line": line, "channel_id": channel_id, "campaign_id": campaign_id, "month": month,
                             "amount": float(amount),
                             "note": "" if _blank(cells.get("note")) else str(cells["note"]).strip()[:500]})
        problems.extend(row_problems)
    if not rows and not problems:
        problems.append({"row": first_line, "column": "", "key": "costs.empty_file", "params": {}})
    return rows, problems


def import_costs(*, session: Session, actor: Actor, data: bytes, filename: str) -> dict[str, Any]:
    """Import monthly costs (columns month, channel, campaign, amount; Chinese or English headers).

    All or nothing: any problem in any row raises ``CostImportError`` listing every problem, and nothing is
    written. Otherwise each row sets the cost of its channel (or campaign) and month, replacing an earlier
    entry, in set-based statements and one audit record.
    """
    require(actor, "manage_costs")
    rows, problems = parse_costs(session=session, data=data, filename=filename)
    if problems:
        raise CostImportError(problems)
    months = sorted({row["month"] for row in rows})
    channel_ids = sorted({row["channel_id"] for row in rows})
    existing = {
        (channel_id, campaign_id, month): cost_id
        for cost_id, channel_id, campaign_id, month in session.execute(
            select(ChannelCost.id, ChannelCost.channel_id, ChannelCost.campaign_id, ChannelCost.month)
            .where(ChannelCost.month.in_(months), ChannelCost.channel_id.in_(channel_ids))
        ).all()
    }
    updates = [{"cost_id": existing[(r["channel_id"], r["campaign_id"], r["month"])], "amount": r["amount"],
                "note": r["note"]} for r in rows if (r["channel_id"], r["campaign_id"], r["month"]) in existing]
    inserts = [{k: r[k] for k in ("channel_id", "campaign_id", "month", "amount", "note")}
               for r in rows if (r["channel_id"], r["campaign_id"], r["month"]) not in existing]
    connection = session.connection()  # Core executemany in the session's transaction
    if updates:
        connection.execute(
            update(ChannelCost.__table__).where(ChannelCost.__table__.c.id == bindparam("cost_id"))
            .values(amount=bindparam("amount"), note=bindparam("note")),
            updates,
        )
    for start in range(0, len(inserts), 1000):
        connection.execute(insert(ChannelCost.__table__).values(inserts[start:start + 1000]))
    summary = {"rows": len(rows), "inserted": len(inserts), "updated": len(updates),
               "amount": float(sum(r["amount"] for r in rows)), "months": [m.isoformat() for m in months]}
    audit.record(session, actor_id=actor.id or None, action="cost.import", entity="channelcost",
                 detail={"filename": filename[:200], **summary})
    session.flush()
    return summary


def cost_template(lang: str) -> pd.DataFrame:
    """An example cost sheet with the headers of ``lang``, for people to fill in."""
    if lang == "zh":
        return pd.DataFrame({"月份": ["2026-01", "2026-01"], "渠道": ["展会", "展会"],
                             "活动": ["", "2026 上海工博会"], "金额": [20000, 150000], "备注": ["", ""]})
    return pd.DataFrame({"month": ["2026-01", "2026-01"], "channel": ["Trade show", "Trade show"],
                         "campaign": ["", "Shanghai Expo 2026"], "amount": [20000, 150000], "note": ["", ""]})
