"""Lead search, the 360° profile and the timeline assembled from the tables that record each event."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pandas as pd
from sqlalchemy import String, cast, literal, select, union_all
from sqlmodel import Session

from core.auth import Actor, lead_scope, require
from core.errors import NotFound
from db.models import (
    Account,
    Assignment,
    Campaign,
    Channel,
    Group,
    GroupMember,
    Lead,
    LeadStatus,
    LeadTag,
    MergeRecord,
    Message,
    ScoreEvent,
    StageChange,
    Tag,
    Touchpoint,
    User,
)

SEARCH_COLUMNS = ["id", "name", "company", "title", "phone", "email", "stage", "grade", "fit_score",
                  "engagement_score", "owner", "channel", "status"]
TIMELINE_COLUMNS = ["at", "kind", "what", "detail", "channel", "ref_id"]
TIMELINE_KINDS = ("touchpoint", "stage", "score", "message", "assignment", "merge")


def _like_pattern(text: str) -> str:
    """``%text%`` with LIKE wildcards in the text escaped, so ``50%`` searches for a literal percent."""
    escaped = re.sub(r"([\\%_])", r"\\\1", text)
    return f"%{escaped}%"


def search_leads(*, session: Session, actor: Actor, query: str, limit: int = 50) -> pd.DataFrame:
    """Leads whose name (characters, pinyin or initials), phone fragment, email or company contains ``query``.

    One statement over ``Lead.search_text`` (maintained by ``core.normalize``), limited to what ``actor``
    may see; the text is a bound parameter, never part of the SQL.
    """
    require(actor, "journeys")
    # NFKC folds full-width letters and digits typed by a Chinese input method.
    words = [w for w in unicodedata.normalize("NFKC", query).lower().split() if w][:5]
    statement = (
        select(Lead.id, Lead.name, Lead.company, Lead.title, Lead.phone, Lead.email, Lead.stage, Lead.grade,
               Lead.fit_score, Lead.engagement_score, User.display_name.label("owner"),
               Channel.name.label("channel"), Lead.status)
        .join(User, User.id == Lead.owner_id, isouter=True)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .where(lead_scope(actor), Lead.status != LeadStatus.MERGED)
    )
    for word in words:
        # A phone typed with spaces or dashes still matches: digits are searched as digits.
        digits = re.sub(r"[\s\-()+]", "", word)
        term = digits if digits.isdigit() else word
        statement = statement.where(Lead.search_text.like(_like_pattern(term), escape="\\"))
    statement = statement.order_by(Lead.last_activity_at.desc().nulls_last(), Lead.id.desc()).limit(limit)
    rows = session.execute(statement).all()
    return pd.DataFrame([r._asdict() for r in rows], columns=SEARCH_COLUMNS)


def get_visible_lead(*, session: Session, actor: Actor, lead_id: int) -> Lead:
    """The lead, or ``NotFound`` when it does not exist or ``actor`` may not see it (same answer for both)."""
    lead = session.scalars(select(Lead).where(Lead.id == lead_id, lead_scope(actor))).first()
    if lead is None:
        raise NotFound(f"Not found: lead {lead_id}.", what=f"#{lead_id}")
    return lead


def lead_profile(*, session: Session, actor: Actor, lead_id: int) -> dict[str, Any]:
    """Identity, account, owner, source, tags and groups of one lead."""
    require(actor, "journeys")
    lead = get_visible_lead(session=session, actor=actor, lead_id=lead_id)
    profile: dict[str, Any] = lead.model_dump()
    profile["owner"] = session.scalar(select(User.display_name).where(User.id == lead.owner_id))
    profile["account"] = session.scalar(select(Account.name).where(Account.id == lead.account_id))
    profile["channel"] = session.scalar(select(Channel.name).where(Channel.id == lead.source_channel_id))
    profile["campaign"] = session.scalar(select(Campaign.name).where(Campaign.id == lead.source_campaign_id))
    profile["referrer"] = session.scalar(select(User.display_name).where(User.id == lead.referrer_id))
    profile["followup_owner"] = session.scalar(select(User.display_name).where(User.id == lead.followup_owner_id))
    profile["tags"] = list(
        session.scalars(select(Tag.name).join(LeadTag, LeadTag.tag_id == Tag.id).where(LeadTag.lead_id == lead_id))
    )
    profile["groups"] = list(
        session.scalars(
            select(Group.name).join(GroupMember, GroupMember.group_id == Group.id).where(
                GroupMember.lead_id == lead_id
            )
        )
    )
    return profile


def timeline(
    *, session: Session, actor: Actor, lead_id: int, kinds: tuple[str, ...] = TIMELINE_KINDS,
    limit: int = 500, offset: int = 0,
) -> pd.DataFrame:
    """Everything that happened to one lead, newest first, read from the tables that record each event.

    One UNION ALL statement; ``what`` is a machine value (touchpoint kind, stage, rule …) that the page
    translates, ``detail`` a short free text.
    """
    require(actor, "journeys")
    get_visible_lead(session=session, actor=actor, lead_id=lead_id)
    parts = []
    if "touchpoint" in kinds:
        parts.append(
            select(Touchpoint.occurred_at.label("at"), literal("touchpoint").label("kind"),
                   Touchpoint.kind.label("what"), Campaign.name.label("detail"), Channel.name.label("channel"),
                   Touchpoint.id.label("ref_id"))
            .join(Channel, Channel.id == Touchpoint.channel_id, isouter=True)
            .join(Campaign, Campaign.id == Touchpoint.campaign_id, isouter=True)
            .where(Touchpoint.lead_id == lead_id)
        )
    if "stage" in kinds:
        parts.append(
            select(StageChange.at, literal("stage"), StageChange.to_stage, StageChange.reason,
                   literal(None), StageChange.id)
            .where(StageChange.lead_id == lead_id)
        )
    if "score" in kinds:
        parts.append(
            select(ScoreEvent.occurred_at, literal("score"), ScoreEvent.component, ScoreEvent.reason,
                   literal(None), ScoreEvent.id)
            .where(ScoreEvent.lead_id == lead_id)
        )
    if "message" in kinds:
        parts.append(
            select(Message.created_at, literal("message"), Message.channel, Message.subject, literal(None),
                   Message.id)
            .where(Message.lead_id == lead_id)
        )
    if "assignment" in kinds:
        parts.append(
            select(Assignment.assigned_at, literal("assignment"), Assignment.status, User.display_name,
                   literal(None), Assignment.id)
            .join(User, User.id == Assignment.rep_id)
            .where(Assignment.lead_id == lead_id)
        )
    if "merge" in kinds:
        parts.append(
            select(MergeRecord.merged_at, literal("merge"), literal("merged"), cast(MergeRecord.merged_id, String),
                   literal(None), MergeRecord.id)
            .where((MergeRecord.survivor_id == lead_id) | (MergeRecord.merged_id == lead_id))
        )
    if not parts:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    union = union_all(*parts).subquery()
    rows = session.execute(
        select(*union.c).order_by(union.c.at.desc(), union.c.kind).limit(limit).offset(offset)
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=TIMELINE_COLUMNS)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame
