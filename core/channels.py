"""Channels, campaigns and their monthly costs (Admin), with the checks a marketer needs to see."""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core import audit
from core.auth import Actor, require
from core.errors import NotFound, ValidationError
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
