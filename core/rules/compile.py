"""Two evaluators from one AST: a SQLAlchemy boolean expression (bulk, in the database) and a Python predicate
(one lead's facts, in memory). Both use two-valued logic: a comparison on a missing value is false (``!=`` and
``not`` are the negation of that), so the two agree on every lead — a property test checks it.

Text matching is case-insensitive for ASCII letters on both sides (SQLite's ``lower()`` folds only ASCII).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, false, func, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from core.rules.language import FIELDS
from db.models import Campaign, Channel, Group, GroupMember, Lead, LeadTag, Tag, Touchpoint

DAY = timedelta(days=1)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_LOOKUP_TABLES = {"channel": Channel, "campaign": Campaign}
_LEAD_COLUMNS = ["id", "name", "email", "phone", "wechat_id", "company", "title", "industry", "province", "city",
                 "product_interest", "utm_source", "utm_medium", "utm_campaign", "stage", "grade", "company_size",
                 "fit_score", "engagement_score", "is_customer", "unsubscribed", "last_activity_at", "created_at",
                 "source_channel_id", "source_campaign_id", "status"]


def fold(value: str) -> str:
    return value.translate(_ASCII_LOWER)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------------------
# Static truth of a comparison on a missing value, and on a count of zero
# ---------------------------------------------------------------------------------------------------------------
def _compare_number(op: str, left: float, right: Any) -> bool:
    if op == "in":
        return any(left == v for v in right)
    return {"=": left == right, "!=": left != right, ">": left > right, ">=": left >= right, "<": left < right,
            "<=": left <= right}[op]


def _compare_text(op: str, left: str, right: Any) -> bool:
    if op == "in":
        return left in {fold(v) for v in right}
    needle = fold(right)
    if op == "=":
        return left == needle
    if op == "!=":
        return left != needle
    if op == "contains":
        return needle in left
    if op == "starts_with":
        return left.startswith(needle)
    return left.endswith(needle)


# ---------------------------------------------------------------------------------------------------------------
# SQL
# ---------------------------------------------------------------------------------------------------------------
def to_sql(ast: dict[str, Any], *, now: datetime, per_lead: bool = False) -> ColumnElement[bool]:
    """The AST as one boolean SQLAlchemy expression over ``Lead`` (and ``Touchpoint`` for engagement rules);
    every literal is a bound parameter. ``per_lead``: behaviour counts as correlated lookups (fast for a few
    leads) instead of one grouped pass over the touchpoints (fast for all of them)."""
    return _sql(ast, _aware(now), per_lead)


def _sql(node: dict[str, Any], now: datetime, per_lead: bool = False) -> ColumnElement[bool]:
    if "and" in node:
        return and_(*[_sql(child, now, per_lead) for child in node["and"]])
    if "or" in node:
        return or_(*[_sql(child, now, per_lead) for child in node["or"]])
    if "not" in node:
        return not_(_sql(node["not"], now, per_lead))
    if "fn" in node:
        name = node["args"][0].lower()
        if node["fn"] == "has_tag":
            ids = select(LeadTag.lead_id).join(Tag, Tag.id == LeadTag.tag_id).where(func.lower(Tag.name) == name)
        else:
            ids = (select(GroupMember.lead_id).join(Group, Group.id == GroupMember.group_id)
                   .where(func.lower(Group.name) == name))
        return Lead.id.in_(ids)
    op, left, right = node["cmp"], node["left"], node["right"]
    if op == "!=":
        return not_(_sql({**node, "cmp": "="}, now, per_lead))
    if "fn" in left:
        return _count_sql(op, left["args"], right, now, per_lead)
    spec = FIELDS[left["field"]]
    if spec.source == "days":
        return _days_sql(op, getattr(Lead, spec.column), right, now)
    if spec.source == "lookup":
        owner = Touchpoint if spec.context == "touchpoint" else Lead
        key = getattr(owner, spec.column)
        table = _LOOKUP_TABLES[spec.extra["table"]]
        if op == "empty":
            return key.is_(None)
        return and_(key.is_not(None), key.in_(select(table.id).where(_text_sql(op, table.name, right))))
    column = Lead.fit_score + Lead.engagement_score if spec.source == "score" else getattr(
        Touchpoint if spec.context == "touchpoint" else Lead, spec.column)
    if op == "empty":
        return or_(column.is_(None), column == "") if spec.type == "text" else column.is_(None)
    if spec.name == "kind" and op in ("=", "in"):
        # Touchpoint kinds are stored as their lower-case enum values: compare directly so the index is used.
        values = [fold(v) for v in (right if op == "in" else [right])]
        return and_(column.is_not(None), column.in_(values) if op == "in" else column == values[0])
    if spec.type == "text":
        return and_(column.is_not(None), _text_sql(op, column, right))
    if spec.type == "bool":
        return and_(column.is_not(None), column == bool(right))
    if op == "in":
        return and_(column.is_not(None), column.in_(list(right)))
    return and_(column.is_not(None), _number_op(op, column, right))


def _number_op(op: str, column: Any, value: Any) -> ColumnElement[bool]:
    return {"=": lambda: column == value, ">": lambda: column > value, ">=": lambda: column >= value,
            "<": lambda: column < value, "<=": lambda: column <= value}[op]()


def _text_sql(op: str, column: Any, value: Any) -> ColumnElement[bool]:
    lowered = func.lower(column)
    if op == "in":
        return lowered.in_([fold(v) for v in value])
    if op == "=":
        return lowered == fold(value)
    if op == "contains":
        return lowered.contains(fold(value), autoescape=True)
    if op == "starts_with":
        return lowered.startswith(fold(value), autoescape=True)
    return lowered.endswith(fold(value), autoescape=True)


def _days_sql(op: str, column: Any, value: Any, now: datetime) -> ColumnElement[bool]:
    """``days_since_x op N`` with days = floor(elapsed / 1 day), rewritten as a range on the timestamp so the
    index can be used and both databases agree without date arithmetic in SQL."""
    if op == "empty":
        return column.is_(None)

    def at_least(days: int) -> ColumnElement[bool]:  # floor(elapsed) >= days  ⇔  t <= now - days
        return and_(column.is_not(None), column <= now - days * DAY)

    def below(days: int) -> ColumnElement[bool]:
        return and_(column.is_not(None), column > now - days * DAY)

    if op == "in":
        return or_(false(), *[_days_sql("=", column, v, now) for v in value])
    if op == ">=":
        return at_least(math.ceil(value))
    if op == ">":
        return at_least(math.floor(value) + 1)
    if op == "<=":
        return below(math.floor(value) + 1)
    if op == "<":
        return below(math.ceil(value))
    if float(value).is_integer():
        return and_(at_least(int(value)), below(int(value) + 1))
    return false()


def _count_sql(op: str, args: list[Any], value: Any, now: datetime, per_lead: bool = False) -> ColumnElement[bool]:
    """``count(kind, Nd) op v`` as a grouped subquery over the touchpoints (one pass, no per-lead query): leads
    with no touchpoints of that kind have count 0, whose truth is known here."""
    kind, days = args
    grouped = select(Touchpoint.lead_id).where(Touchpoint.occurred_at <= now)
    if kind != "*":
        grouped = grouped.where(Touchpoint.kind == kind)
    if days is not None:
        grouped = grouped.where(Touchpoint.occurred_at >= now - days * DAY)
    if per_lead:
        counted_here = grouped.with_only_columns(func.count()).where(Touchpoint.lead_id == Lead.id).scalar_subquery()
        return counted_here.in_(list(value)) if op == "in" else _number_op(op, counted_here, value)
    counted = func.count()
    holds = counted.in_(list(value)) if op == "in" else _number_op(op, counted, value)
    if _compare_number(op, 0, value):
        return Lead.id.not_in(grouped.group_by(Touchpoint.lead_id).having(not_(holds)))
    return Lead.id.in_(grouped.group_by(Touchpoint.lead_id).having(holds))


# ---------------------------------------------------------------------------------------------------------------
# Python
# ---------------------------------------------------------------------------------------------------------------
def predicate(ast: dict[str, Any], *, now: datetime) -> Callable[[Mapping[str, Any]], bool]:
    """The AST as a function of one lead's facts (see :func:`lead_facts`; engagement rules also read the
    touchpoint's ``kind``, ``channel``, ``campaign`` from the same mapping)."""
    return _py(ast, _aware(now))


def _py(node: dict[str, Any], now: datetime) -> Callable[[Mapping[str, Any]], bool]:
    if "and" in node:
        parts = [_py(child, now) for child in node["and"]]
        return lambda facts: all(p(facts) for p in parts)
    if "or" in node:
        parts = [_py(child, now) for child in node["or"]]
        return lambda facts: any(p(facts) for p in parts)
    if "not" in node:
        inner = _py(node["not"], now)
        return lambda facts: not inner(facts)
    if "fn" in node:
        key, name = ("tags" if node["fn"] == "has_tag" else "groups"), fold(node["args"][0])
        return lambda facts: name in {fold(v) for v in facts.get(key, ())}
    op, left, right = node["cmp"], node["left"], node["right"]
    if op == "!=":
        inner = _py({**node, "cmp": "="}, now)
        return lambda facts: not inner(facts)
    if "fn" in left:
        kind, days = left["args"]
        start = None if days is None else now - days * DAY

        def count_holds(facts: Mapping[str, Any]) -> bool:
            count = sum(1 for k, at in facts.get("touchpoints", ())
                        if (kind == "*" or k == kind) and _aware(at) <= now and (start is None or _aware(at) >= start))
            return _compare_number(op, count, right)
        return count_holds
    spec = FIELDS[left["field"]]
    name = spec.name

    def holds(facts: Mapping[str, Any]) -> bool:
        value = facts.get(name)
        if spec.source == "days":
            if value is None:
                return op == "empty"
            if op == "empty":
                return False
            value = math.floor((now - _aware(value)) / DAY)
        if op == "empty":
            return value is None or value == ""
        if value is None:
            return False
        if spec.type == "text":
            return _compare_text(op, fold(str(value)), right)
        if spec.type == "bool":
            return bool(value) == bool(right)
        return _compare_number(op, float(value), right)
    return holds


def lead_facts(*, session: Session, lead_ids: Iterable[int], now: datetime) -> dict[int, dict[str, Any]]:
    """Everything a rule can read about each lead, loaded in bulk (a handful of queries for any number of leads):
    its fields, ``fit``/``engagement``/``score``, ``tags``/``groups`` (names) and ``touchpoints`` (kind, time)."""
    ids = sorted({int(i) for i in lead_ids})
    facts: dict[int, dict[str, Any]] = {}
    if not ids:
        return facts
    names = {("channel", i): n for i, n in session.execute(select(Channel.id, Channel.name)).all()}
    names.update({("campaign", i): n for i, n in session.execute(select(Campaign.id, Campaign.name)).all()})
    for chunk in _chunks(ids):
        rows = session.execute(select(*[getattr(Lead, c) for c in _LEAD_COLUMNS]).where(Lead.id.in_(chunk)))
        for row in rows.mappings():
            item = dict(row)
            item["fit"] = float(item.pop("fit_score") or 0)
            item["engagement"] = float(item.pop("engagement_score") or 0)
            item["score"] = item["fit"] + item["engagement"]
            item["days_since_last_activity"] = item.pop("last_activity_at")
            item["days_since_created"] = item.pop("created_at")
            item["source_channel"] = names.get(("channel", item.pop("source_channel_id")))
            item["source_campaign"] = names.get(("campaign", item.pop("source_campaign_id")))
            item.update(tags=set(), groups=set(), touchpoints=[])
            facts[item["id"]] = item
        for lead_id, tag in session.execute(select(LeadTag.lead_id, Tag.name).join(Tag, Tag.id == LeadTag.tag_id)
                                            .where(LeadTag.lead_id.in_(chunk))):
            facts[lead_id]["tags"].add(tag)
        for lead_id, group in session.execute(select(GroupMember.lead_id, Group.name)
                                              .join(Group, Group.id == GroupMember.group_id)
                                              .where(GroupMember.lead_id.in_(chunk))):
            facts[lead_id]["groups"].add(group)
        touched: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
        for lead_id, kind, at in session.execute(select(Touchpoint.lead_id, Touchpoint.kind, Touchpoint.occurred_at)
                                                 .where(Touchpoint.lead_id.in_(chunk))):
            touched[lead_id].append((kind, at))
        for lead_id, items in touched.items():
            facts[lead_id]["touchpoints"] = items
    return facts


def touchpoint_facts(*, session: Session, touchpoint_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The touchpoint's own fields for engagement rules: ``lead_id``, ``kind``, ``channel``, ``campaign``,
    ``occurred_at``."""
    ids = sorted({int(i) for i in touchpoint_ids})
    out: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        query = (select(Touchpoint.id, Touchpoint.lead_id, Touchpoint.kind, Channel.name.label("channel"),
                        Campaign.name.label("campaign"), Touchpoint.occurred_at)
                 .join(Channel, Channel.id == Touchpoint.channel_id, isouter=True)
                 .join(Campaign, Campaign.id == Touchpoint.campaign_id, isouter=True)
                 .where(Touchpoint.id.in_(chunk)))
        for row in session.execute(query).mappings():
            out[row["id"]] = dict(row)
    return out


def _chunks(ids: list[int], size: int = 5000) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


__all__ = ["fold", "lead_facts", "predicate", "to_sql", "touchpoint_facts"]
