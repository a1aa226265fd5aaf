"""What a sales manager edits: the ordered routing rules, their reps' capacity, leave and coverage, the SLA
calendar and the CRM hand-over. Every change needs ``manage_routing`` and goes to the audit log.

A manager changes the reps of their own team; an admin anyone's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core import audit
from core.auth import Actor, require
from core.errors import NotFound, ValidationError
from core.routing.engine import PARAM_LISTS, RULE_KINDS, open_loads
from core.routing.sales_inbox import REJECT_REASONS
from core.routing.workhours import WorkCalendar
from core.settings import get_setting, set_setting
from db.models import Role, RoutingRule, User

RULE_COLUMNS = ["id", "position", "name", "kind", "params", "rep_ids", "reps", "active"]
REP_COLUMNS = ["id", "display_name", "username", "email", "manager_id", "territories", "industries", "product_lines",
               "capacity", "out_of_office", "active", "load"]


def _clean_list(values: Any) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = values.replace("，", ",").replace("、", ",").split(",")
    out: list[str] = []
    for value in values:
        text = str(value).strip()
        if text and text not in out:
            out.append(text)
    return out


def list_rules(*, session: Session, actor: Actor) -> pd.DataFrame:
    """The routing rules in the order they are tried, with their reps' names."""
    require(actor, "manage_routing")
    rules = session.execute(
        select(RoutingRule.id, RoutingRule.position, RoutingRule.name, RoutingRule.kind, RoutingRule.params,
               RoutingRule.rep_ids, RoutingRule.active).order_by(RoutingRule.position, RoutingRule.id)
    ).all()
    names = dict(session.execute(select(User.id, User.display_name)).all())
    frame = pd.DataFrame([r._asdict() for r in rules], columns=[c for c in RULE_COLUMNS if c != "reps"])
    frame["reps"] = [[names.get(int(i), f"#{i}") for i in ids or []] for ids in frame["rep_ids"]]
    return frame[RULE_COLUMNS]


def _check_reps(session: Session, rep_ids: list[int]) -> list[int]:
    ids = sorted({int(i) for i in rep_ids})
    if not ids:
        return []
    found = dict(session.execute(select(User.id, User.role).where(User.id.in_(ids), User.active.is_(True))).all())
    wrong = [i for i in ids if found.get(i) not in (Role.SALES, Role.MANAGER)]
    if wrong:
        raise ValidationError(f"Only active sales reps and managers can receive MQLs (#{wrong[0]}).",
                              key="routing.rule_rep_invalid", rep=f"#{wrong[0]}")
    return ids


def save_rule(
    *, session: Session, actor: Actor, now: datetime, name: str, kind: str, params: dict[str, Any] | None = None,
    rep_ids: list[int] | None = None, active: bool = True, rule_id: int | None = None,
) -> RoutingRule:
    """Create a rule (at the end of the order) or change one."""
    require(actor, "manage_routing")
    name = (name or "").strip()
    if not name:
        raise ValidationError("A routing rule needs a name.", key="routing.rule_name_required")
    if kind not in RULE_KINDS:
        raise ValidationError(f"Unknown kind of routing rule: {kind}.", key="routing.rule_kind_invalid", kind=kind)
    clean = {key: _clean_list((params or {}).get(key)) for key in PARAM_LISTS[kind]}
    clean = {key: values for key, values in clean.items() if values}
    reps = _check_reps(session, rep_ids or [])
    if kind == "round_robin" and not reps and not session.scalar(
            select(func.count()).where(User.role == Role.SALES, User.active.is_(True))):
        raise ValidationError("Round robin needs reps.", key="routing.rule_needs_reps")
    duplicate = session.scalar(select(RoutingRule.id).where(func.lower(RoutingRule.name) == name.lower(),
                                                            RoutingRule.id != (rule_id or 0)))
    if duplicate:
        raise ValidationError(f"A routing rule named {name} exists already.", key="routing.rule_name_taken",
                              name=name)
    if rule_id is None:
        last = session.scalar(select(func.max(RoutingRule.position))) or 0
        rule = RoutingRule(position=int(last) + 10, name=name, kind=kind, params=clean, rep_ids=reps,
                           active=bool(active))
        action = "routing_rule.create"
    else:
        found = session.get(RoutingRule, int(rule_id))
        if found is None:
            raise NotFound(f"Not found: routing rule {rule_id}.", what=f"#{rule_id}")
        rule = found
        rule.name, rule.kind, rule.params, rule.rep_ids, rule.active = name, kind, clean, reps, bool(active)
        action = "routing_rule.update"
    session.add(rule)
    session.flush()
    audit.record(session, actor_id=actor.id or None, action=action, entity="routing_rule", entity_id=rule.id,
                 detail={"name": name, "kind": kind, "params": clean, "rep_ids": reps, "active": bool(active)},
                 now=now)
    return rule


def move_rule(*, session: Session, actor: Actor, rule_id: int, step: int, now: datetime) -> None:
    """Move a rule earlier (``step`` < 0) or later in the order; positions are renumbered 10, 20, 30 …"""
    require(actor, "manage_routing")
    rules = list(session.execute(select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id)).scalars())
    index = next((i for i, r in enumerate(rules) if r.id == rule_id), None)
    if index is None:
        raise NotFound(f"Not found: routing rule {rule_id}.", what=f"#{rule_id}")
    target = max(0, min(len(rules) - 1, index + step))
    rules.insert(target, rules.pop(index))
    for position, rule in enumerate(rules, start=1):
        rule.position = position * 10
        session.add(rule)
    audit.record(session, actor_id=actor.id or None, action="routing_rule.move", entity="routing_rule",
                 entity_id=rule_id, detail={"order": [r.id for r in rules]}, now=now)


def delete_rule(*, session: Session, actor: Actor, rule_id: int, now: datetime) -> None:
    require(actor, "manage_routing")
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound(f"Not found: routing rule {rule_id}.", what=f"#{rule_id}")
    audit.record(session, actor_id=actor.id or None, action="routing_rule.delete", entity="routing_rule",
                 entity_id=rule_id, detail={"name": rule.name, "kind": rule.kind, "params": rule.params,
                                            "rep_ids": rule.rep_ids}, now=now)
    session.delete(rule)


def _rep_scope(actor: Actor):  # noqa: ANN202 - a SQLAlchemy condition
    condition = User.role.in_([Role.SALES, Role.MANAGER])
    if actor.role == Role.MANAGER:
        condition = condition & User.id.in_((actor.id, *actor.team_ids))
    return condition


def list_reps(*, session: Session, actor: Actor) -> pd.DataFrame:
    """Reps (a manager: their team and themselves) with coverage, capacity, leave and open MQLs."""
    require(actor, "manage_routing")
    rows = session.execute(
        select(User.id, User.display_name, User.username, User.email, User.manager_id, User.territories,
               User.industries, User.product_lines, User.capacity, User.out_of_office, User.active)
        .where(_rep_scope(actor)).order_by(User.id)
    ).all()
    frame = pd.DataFrame([r._asdict() for r in rows], columns=[c for c in REP_COLUMNS if c != "load"])
    loads = open_loads(session, frame["id"].astype(int).tolist())
    frame["load"] = frame["id"].map(lambda i: loads.get(int(i), 0)).astype(int)
    return frame[REP_COLUMNS]


def update_rep(
    *, session: Session, actor: Actor, rep_id: int, now: datetime, capacity: int | None = None,
    out_of_office: bool | None = None, territories: Any = None, industries: Any = None, product_lines: Any = None,
) -> User:
    """Change what routing reads about a rep: capacity, out of office, territories, industries, product lines."""
    require(actor, "manage_routing")
    rep = session.scalars(select(User).where(User.id == rep_id, _rep_scope(actor))).first()
    if rep is None:
        raise NotFound(f"Not found: rep {rep_id}.", what=f"#{rep_id}")
    changes: dict[str, Any] = {}
    if capacity is not None:
        if int(capacity) < 0 or int(capacity) > 10_000:
            raise ValidationError("Capacity is a number of open MQLs between 0 and 10000.",
                                  key="routing.capacity_invalid")
        changes["capacity"] = int(capacity)
    if out_of_office is not None:
        changes["out_of_office"] = bool(out_of_office)
    for name, value in (("territories", territories), ("industries", industries), ("product_lines", product_lines)):
        if value is not None:
            changes[name] = _clean_list(value)
    changes = {k: v for k, v in changes.items() if getattr(rep, k) != v}
    for name, value in changes.items():
        setattr(rep, name, value)
    if changes:
        session.add(rep)
        audit.record(session, actor_id=actor.id or None, action="rep.routing_update", entity="user",
                     entity_id=rep_id, detail=changes, now=now)
    return rep


def sla_settings(*, session: Session, actor: Actor) -> dict[str, Any]:
    require(actor, "manage_routing")
    return {"sla": get_setting(session, "sla"), "handoff": get_setting(session, "handoff"),
            "crm": get_setting(session, "crm")}


def masked(url: str) -> str:
    """A webhook address for the audit log: robot and CRM URLs carry access tokens, so only the host is kept."""
    from urllib.parse import urlsplit

    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def _url(value: Any) -> str:
    text = str(value or "").strip()
    if text and not text.startswith(("http://", "https://")):
        raise ValidationError(f"A webhook address starts with http:// or https://: {text}.",
                              key="routing.url_invalid", url=text)
    return text


def save_sla_settings(
    *, session: Session, actor: Actor, now: datetime, hours: float, work_start: float, work_end: float,
    workdays: list[int], remind_before_hours: float, holidays: Any = (), extra_workdays: Any = (),
    email: bool = True, robots: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Check and store the SLA: its length in working hours, the working calendar, reminders and robots."""
    require(actor, "manage_routing")
    if not (0 < float(hours) <= 24 * 30):
        raise ValidationError("The SLA is a number of working hours above 0.", key="routing.sla_hours_invalid")
    if float(remind_before_hours) < 0 or float(remind_before_hours) >= float(hours):
        raise ValidationError("Remind before the SLA runs out: fewer hours than the SLA itself.",
                              key="routing.remind_invalid")
    value = {
        "hours": float(hours), "work_start": float(work_start), "work_end": float(work_end),
        "workdays": sorted({int(d) for d in workdays}), "remind_before_hours": float(remind_before_hours),
        "holidays": sorted(str(d) for d in _clean_list(holidays)),
        "extra_workdays": sorted(str(d) for d in _clean_list(extra_workdays)), "email": bool(email),
        "robots": {channel: _url((robots or {}).get(channel)) for channel in ("wecom", "dingtalk", "feishu")},
    }
    calendar = WorkCalendar.from_settings(value)  # raises on a bad calendar or date
    value["holidays"] = sorted(d.isoformat() for d in calendar.holidays)
    value["extra_workdays"] = sorted(d.isoformat() for d in calendar.extra_workdays)
    set_setting(session, "sla", value, actor_id=actor.id or None)
    audit.record(session, actor_id=actor.id or None, action="settings.sla", entity="setting", entity_id="sla",
                 detail={**value, "robots": {k: masked(v) for k, v in value["robots"].items()}}, now=now)
    return value


def save_handoff_settings(
    *, session: Session, actor: Actor, now: datetime, crm_webhook_url: str, disqualify_reasons: list[str],
    recycle_days: dict[str, int], alert_kinds: list[str], score_jump: float,
) -> None:
    """The CRM webhook, what each reject reason does, and which lead activity alerts the rep."""
    require(actor, "manage_routing")
    unknown = [r for r in disqualify_reasons if r not in REJECT_REASONS]
    if unknown:
        raise ValidationError(f"Unknown reason: {unknown[0]}.", key="routing.reason_required")
    days = {}
    for reason, value in (recycle_days or {}).items():
        if reason not in REJECT_REASONS or int(value) < 1 or int(value) > 3650:
            raise ValidationError("Nurture days are between 1 and 3650.", key="routing.recycle_days_invalid")
        days[reason] = int(value)
    if float(score_jump) < 0:
        raise ValidationError("The score jump cannot be negative.", key="routing.score_jump_invalid")
    url = _url(crm_webhook_url)
    set_setting(session, "crm", {"webhook_url": url}, actor_id=actor.id or None)
    handoff = {"disqualify_reasons": sorted(set(disqualify_reasons)), "recycle_days": days,
               "alert_kinds": sorted({str(k) for k in alert_kinds}), "score_jump": float(score_jump)}
    set_setting(session, "handoff", handoff, actor_id=actor.id or None)
    audit.record(session, actor_id=actor.id or None, action="settings.handoff", entity="setting",
                 entity_id="handoff", detail={**handoff, "crm_webhook_url": masked(url)}, now=now)


def update_reps(*, session: Session, actor: Actor, now: datetime, changes: list[dict[str, Any]]) -> int:
    """Several reps' routing attributes at once (one edit of the table = one transaction). Returns reps changed."""
    require(actor, "manage_routing")
    changed = 0
    for change in changes:
        values = {k: v for k, v in change.items() if k in ("capacity", "out_of_office", "territories", "industries",
                                                              "product_lines")}
        before = session.execute(select(User.capacity, User.out_of_office, User.territories, User.industries,
                                        User.product_lines).where(User.id == int(change["id"]))).first()
        update_rep(session=session, actor=actor, rep_id=int(change["id"]), now=now, **values)
        after = session.execute(select(User.capacity, User.out_of_office, User.territories, User.industries,
                                       User.product_lines).where(User.id == int(change["id"]))).first()
        changed += int(tuple(before or ()) != tuple(after or ()))
    return changed
