"""Rules as stored data: list, save (a new version each time), versions, restore, activate; matching and the
live preview while typing."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import exists, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from core import audit, display_names
from core.auth import Actor, require
from core.errors import NotFound, ValidationError
from core.rules.compile import to_sql
from core.rules.language import RuleSyntaxError, check, parse, uses_touchpoint
from db.models import Lead, LeadStatus, Rule, RuleKind, RuleVersion, Touchpoint, User

RULE_COLUMNS = ["id", "name", "kind", "text", "points", "params", "active", "version", "author", "updated_at"]
SAMPLE_COLUMNS = ["id", "name", "company", "title", "industry", "province", "company_size", "fit_score",
                  "engagement_score", "grade", "stage"]
KIND_ORDER = {"mql": 0, "fit": 1, "engagement": 2, "decay": 3, "tag": 4}


def context_of(kind: str) -> str:
    """Engagement rules score one touchpoint at a time, so they may read the touchpoint's own fields."""
    return "touchpoint" if kind == RuleKind.ENGAGEMENT else "lead"


def list_rules(*, session: Session, kind: str | None = None) -> pd.DataFrame:
    """Every rule with its author, grouped by kind (MQL line first, then fit, engagement, decay, tags)."""
    query = (
        select(Rule.id, Rule.name, Rule.kind, Rule.text, Rule.points, Rule.params, Rule.active, Rule.version,
               User.display_name.label("author"), Rule.updated_at)
        .join(User, User.id == Rule.author_id, isouter=True)
        .order_by(Rule.kind, Rule.id)
    )
    if kind:
        query = query.where(Rule.kind == kind)
    frame = pd.DataFrame([r._asdict() for r in session.execute(query).all()], columns=RULE_COLUMNS)
    return frame.sort_values(["kind", "id"], key=lambda s: s.map(KIND_ORDER) if s.name == "kind" else s,
                             ignore_index=True)


def rule_ast(rule: Rule) -> dict[str, Any] | None:
    """The stored AST of a rule (parsed again when missing, e.g. rows written before ASTs were stored); None for a
    rule without a condition (a decay rule may have none)."""
    if not (rule.text or "").strip():
        return None
    if rule.ast:
        try:
            check(rule.ast, context=context_of(rule.kind))
            return rule.ast
        except RuleSyntaxError:
            pass
    return parse(rule.text, context=context_of(rule.kind))


def lead_condition(rule: str | dict[str, Any], *, now: datetime, context: str = "lead",
                   per_lead: bool = False) -> ColumnElement[bool]:
    """A rule (text or AST) as a condition on ``Lead``; a touchpoint condition holds when any of the lead's
    touchpoints satisfies it."""
    ast = parse(rule, context=context) if isinstance(rule, str) else rule
    condition = to_sql(ast, now=now, per_lead=per_lead)
    if uses_touchpoint(ast):
        return exists(select(Touchpoint.id).where(Touchpoint.lead_id == Lead.id, Touchpoint.occurred_at <= now,
                                                  condition))
    return condition


def matching_lead_ids(rule: str | dict[str, Any], *, session: Session, now: datetime,
                      lead_ids: Iterable[int] | None = None, context: str = "lead") -> set[int]:
    """Ids of the (not merged) leads that satisfy ``rule`` (text or AST), among ``lead_ids`` when given."""
    query = select(Lead.id).where(lead_condition(rule, now=now, context=context),
                                  Lead.status != LeadStatus.MERGED)
    if lead_ids is None:
        return set(session.scalars(query))
    ids = sorted({int(i) for i in lead_ids})
    found: set[int] = set()
    for start in range(0, len(ids), 5000):
        found.update(session.scalars(query.where(Lead.id.in_(ids[start:start + 5000]))))
    return found


@dataclass
class Preview:
    """What a rule would match now: ``count`` leads, ``delta`` against the saved text (None without one)."""

    count: int
    delta: int | None
    sample: pd.DataFrame


def _count(session: Session, text: str, now: datetime, context: str) -> int:
    query = select(func.count()).select_from(Lead).where(lead_condition(text, now=now, context=context),
                                                         Lead.status != LeadStatus.MERGED)
    return int(session.scalar(query) or 0)


def preview(text: str, *, session: Session, now: datetime, saved_text: str | None = None, sample: int = 10,
            kind: str = RuleKind.FIT) -> Preview:
    """How many leads ``text`` matches, the change against ``saved_text`` and a few of them; raises
    ``RuleSyntaxError`` for invalid text (the saved text, if invalid, gives no delta)."""
    context = context_of(kind)
    count = _count(session, text, now, context)
    delta = None
    if saved_text and saved_text.strip():
        try:
            delta = count - _count(session, saved_text, now, context)
        except RuleSyntaxError:
            delta = None
    columns = [getattr(Lead, c) for c in SAMPLE_COLUMNS]
    rows = session.execute(select(*columns).where(lead_condition(text, now=now, context=context),
                                                  Lead.status != LeadStatus.MERGED)
                           .order_by(Lead.id.desc()).limit(sample)).all()
    frame = pd.DataFrame([r._asdict() for r in rows], columns=SAMPLE_COLUMNS)
    for column in ("fit_score", "engagement_score"):  # decay leaves fractions; people read one decimal
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").round(1)
    return Preview(count=count, delta=delta, sample=frame)


# ---------------------------------------------------------------------------------------------------------------
# Saving, versions, restore
# ---------------------------------------------------------------------------------------------------------------
def _validate(kind: str, name: str, text: str, points: float, params: dict[str, Any]) -> dict[str, Any] | None:
    if kind not in {k.value for k in RuleKind}:
        raise ValidationError(f"unknown rule kind {kind}", key="rules.error.kind", kind=kind)
    if not name.strip():
        raise ValidationError("a rule needs a name", key="rules.error.name")
    if not isinstance(points, int | float) or abs(points) > 10_000:
        raise ValidationError("points must be a number between -10000 and 10000", key="rules.error.points")
    if kind == RuleKind.TAG and not str(params.get("tag") or "").strip():
        raise ValidationError("a tag rule needs the tag to add", key="rules.error.tag_missing")
    for key in ("cap", "period_days", "half_life_days", "idle_days", "idle_points"):
        value = params.get(key)
        if value is not None and (not isinstance(value, int | float) or value < 0):
            raise ValidationError(f"{key} must be a positive number", key="rules.error.param", param=key)
    if kind == RuleKind.DECAY and not (params.get("half_life_days") or params.get("idle_days")):
        raise ValidationError("a decay rule needs a half-life or idle days", key="rules.error.decay_params")
    if kind == RuleKind.DECAY and not text.strip():
        return None
    return parse(text, context=context_of(kind))


def _permission(actor: Actor, kind: str) -> None:
    # Marketing and sales agree on the MQL line: managers may change it, not the other rules.
    if kind == RuleKind.MQL and actor.can("edit_mql"):
        return
    require(actor, "rules")


def save_rule(*, session: Session, actor: Actor, rule_id: int | None, name: str, kind: str, text: str,
              points: float = 0, params: dict[str, Any] | None = None, active: bool = True, now: datetime,
              note: str = "") -> Rule:
    """Create a rule or save a new version of one (text, points, params, active); every save is a RuleVersion
    and an audit entry. Invalid text raises ``RuleSyntaxError`` and nothing is written."""
    params = dict(params or {})
    _permission(actor, kind)
    ast = _validate(kind, name, text, float(points), params)
    if rule_id is None:
        rule = Rule(name=name.strip(), kind=kind, text=text, ast=ast or {}, points=float(points), params=params,
                    active=active, version=1, author_id=actor.id or None, created_at=now, updated_at=now)
        session.add(rule)
        session.flush()
        before: dict[str, Any] = {}
    else:
        rule = session.get(Rule, rule_id)
        if rule is None:
            raise NotFound(key="rules.error.not_found", rule_id=rule_id)
        if rule.kind != kind:
            raise ValidationError("the kind of a rule cannot change", key="rules.error.kind_change")
        before = {"name": rule.name, "text": rule.text, "points": rule.points, "params": copy.deepcopy(rule.params),
                  "active": rule.active}
        display_names.rename(session, "rule", rule.name, name.strip())
        rule.name, rule.text, rule.ast, rule.points = name.strip(), text, ast or {}, float(points)
        rule.params, rule.active = params, active
        rule.version = int(rule.version) + 1
        rule.author_id = actor.id or None
        rule.updated_at = now
        session.add(rule)
    session.add(RuleVersion(rule_id=rule.id, version=rule.version, name=rule.name, text=rule.text,
                            ast=copy.deepcopy(rule.ast), points=rule.points, params=copy.deepcopy(rule.params),
                            active=rule.active, author_id=actor.id or None, note=note, created_at=now))
    after = {"name": rule.name, "text": rule.text, "points": rule.points, "params": rule.params,
             "active": rule.active}
    changed = {k: {"from": before.get(k), "to": v} for k, v in after.items() if before.get(k) != v}
    audit.record(session, actor_id=actor.id or None, action="rules.save", entity="rule", entity_id=rule.id,
                 detail={"version": rule.version, "kind": kind, "changed": changed, "note": note}, now=now)
    session.flush()
    return rule


def set_active(*, session: Session, actor: Actor, rule_id: int, active: bool, now: datetime) -> Rule:
    """Activate or deactivate a rule (a new version, so the history shows who switched it and when)."""
    rule = session.get(Rule, rule_id)
    if rule is None:
        raise NotFound(key="rules.error.not_found", rule_id=rule_id)
    return save_rule(session=session, actor=actor, rule_id=rule_id, name=rule.name, kind=rule.kind,
                     text=rule.text, points=rule.points, params=dict(rule.params), active=active, now=now,
                     note="activated" if active else "deactivated")


VERSION_COLUMNS = ["version", "name", "text", "points", "params", "active", "author", "note", "created_at"]


def rule_versions(*, session: Session, rule_id: int) -> pd.DataFrame:
    """Every saved version of a rule, newest first, with its author."""
    query = (select(RuleVersion.version, RuleVersion.name, RuleVersion.text, RuleVersion.points,
                    RuleVersion.params, RuleVersion.active, User.display_name.label("author"), RuleVersion.note,
                    RuleVersion.created_at)
             .join(User, User.id == RuleVersion.author_id, isouter=True)
             .where(RuleVersion.rule_id == rule_id).order_by(RuleVersion.version.desc()))
    return pd.DataFrame([r._asdict() for r in session.execute(query).all()], columns=VERSION_COLUMNS)


def restore_version(*, session: Session, actor: Actor, rule_id: int, version: int, now: datetime) -> Rule:
    """Make an old version current again — as a new version, so nothing in the history is lost."""
    old = session.scalar(select(RuleVersion).where(RuleVersion.rule_id == rule_id, RuleVersion.version == version))
    rule = session.get(Rule, rule_id)
    if old is None or rule is None:
        raise NotFound(key="rules.error.version_not_found", rule_id=rule_id, version=version)
    return save_rule(session=session, actor=actor, rule_id=rule_id, name=old.name, kind=rule.kind, text=old.text,
                     points=old.points, params=dict(old.params), active=old.active, now=now,
                     note=f"restored v{version}")
