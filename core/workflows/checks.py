"""Yes/no checks over many enrollments at once: the condition step, exit goals and the simulator share them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core.errors import RuleError
from db.models import Group, GroupMember, Lead, LeadTag, Tag, Touchpoint, TouchpointKind

_CHUNK = 500
_TOUCH_KINDS = {"opened": TouchpointKind.EMAIL_OPEN, "clicked": TouchpointKind.EMAIL_CLICK,
                "registered": TouchpointKind.REGISTERED}


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def matching(session: Session, check: dict[str, Any], frame: pd.DataFrame, *, now: datetime) -> set[int]:
    """The enrollment ids of ``frame`` (columns ``id``, ``lead_id``, ``entered_at``) whose lead passes ``check``.

    Opened/clicked look at email touchpoints since the lead entered the workflow (what the email platform
    reported back); registered at any registration (optionally within ``days``). One query per 500 leads.
    """
    if frame.empty:
        return set()
    kind = check.get("kind")
    leads = sorted({int(x) for x in frame["lead_id"]})
    if kind in _TOUCH_KINDS:
        latest: dict[int, datetime] = {}
        days = check.get("days")
        for chunk in _chunks(leads):
            query = (select(Touchpoint.lead_id, func.max(Touchpoint.occurred_at))
                     .where(Touchpoint.lead_id.in_(chunk), Touchpoint.kind == _TOUCH_KINDS[kind],
                            Touchpoint.occurred_at <= now)
                     .group_by(Touchpoint.lead_id))
            if days:
                query = query.where(Touchpoint.occurred_at >= now - timedelta(days=float(days)))
            latest.update({int(lead): at for lead, at in session.execute(query).all()})
        if not latest:
            return set()
        seen = frame["lead_id"].map(lambda lead: latest.get(int(lead)))
        if kind == "registered":
            return set(frame.loc[seen.notna(), "id"].astype(int))
        seen_at = pd.to_datetime(seen, utc=True)
        entered = pd.to_datetime(frame["entered_at"], utc=True)
        return set(frame.loc[seen_at.notna() & (seen_at >= entered), "id"].astype(int))
    passing: set[int] = set()
    if kind == "has_tag":
        for chunk in _chunks(leads):
            passing.update(session.scalars(
                select(LeadTag.lead_id).join(Tag, Tag.id == LeadTag.tag_id)
                .where(LeadTag.lead_id.in_(chunk), Tag.name == str(check.get("tag")))))
    elif kind == "in_group":
        for chunk in _chunks(leads):
            passing.update(session.scalars(
                select(GroupMember.lead_id).join(Group, Group.id == GroupMember.group_id)
                .where(GroupMember.lead_id.in_(chunk), Group.name == str(check.get("group")))))
    elif kind == "stage_is":
        stages = check.get("stage")
        stages = stages if isinstance(stages, list) else [stages]
        for chunk in _chunks(leads):
            passing.update(session.scalars(select(Lead.id).where(Lead.id.in_(chunk), Lead.stage.in_(stages))))
    elif kind == "rule":
        passing = rule_matches(session, str(check.get("rule") or ""), leads, now=now)
    else:
        raise RuleError(f"Unknown check: {kind}", key="workflows.problem.check_kind", kind=kind or "")
    return set(frame.loc[frame["lead_id"].astype(int).isin(passing), "id"].astype(int))


def rule_matches(session: Session, rule: str, lead_ids: list[int], *, now: datetime) -> set[int]:
    """Leads among ``lead_ids`` matching a rule-language condition (``core.rules``, one SQL statement per 5,000)."""
    from core.rules import matching_lead_ids

    return {int(i) for i in matching_lead_ids(rule, session=session, now=now, lead_ids=lead_ids)}
