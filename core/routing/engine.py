"""Who gets an MQL: ordered routing rules, then round robin among eligible reps.

Rules are tried in ``position`` order and the first rule that matches a lead *and* has an eligible rep wins;
a rule whose reps are all out of office or full lets the lead fall through to the next rule.

- ``account``: the lead's account has an owner (account-based marketing) → that owner. The owner keeps their
  accounts even above capacity, but not while out of office.
- ``territory``: the lead's province or city is in ``params.provinces`` / ``params.cities``.
- ``industry``: the lead's industry is in ``params.industries``.
- ``product_line``: the product line the lead is interested in is in ``params.product_lines``.
- ``round_robin``: every lead.

Who a rule may choose: its ``rep_ids``; without them, the active sales reps whose own territories /
industries / product lines cover the lead (a rule with empty lists matches by those rep attributes alone).
Among several candidates the one served longest ago *by this rule* gets the lead (round robin that survives
restarts, because it is read from the Assignment history, and stays fair when some reps are full or away).
Eligible: active, not out of office, and fewer open (pending) MQLs than their capacity.

Every assignment records the rule that chose the rep in ``routed_by`` as ``"<kind>: <rule name>"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import bindparam, func, insert, select, update
from sqlmodel import Session

from core.clock import ensure_utc
from core.routing import notify
from core.routing.workhours import WorkCalendar
from core.settings import get_setting
from db.models import Account, Assignment, AssignmentStatus, Lead, Role, RoutingRule, User

RULE_KINDS = ("account", "territory", "industry", "product_line", "round_robin")
# Kinds of ``routed_by`` that are not routing rules: the lead's existing owner, a manager's choice, the rep
# who asked to hear from a "not now" lead again.
OTHER_ROUTES = ("owner", "manual", "come_back")
# The rule params each kind reads, and the User attribute that lets a rep cover a lead without rep_ids.
PARAM_LISTS: dict[str, tuple[str, ...]] = {
    "territory": ("provinces", "cities"),
    "industry": ("industries",),
    "product_line": ("product_lines",),
    "account": (),
    "round_robin": (),
}
REP_ATTRIBUTE = {"territory": "territories", "industry": "industries", "product_line": "product_lines"}
_CHUNK = 500


def routed_by(kind: str, name: str) -> str:
    return f"{kind}: {name}"[:128]


def split_routed_by(value: str | None) -> tuple[str, str]:
    """``"territory: 华东区域"`` → ``("territory", "华东区域")``; anything else → ``("", value)``."""
    text = value or ""
    kind, sep, name = text.partition(": ")
    if sep and kind in (*RULE_KINDS, *OTHER_ROUTES):
        return kind, name
    return "", text


@dataclass
class RoutingOutcome:
    """What ``route_leads`` did: one row per new assignment, and the leads no rep could take."""

    assignments: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["assignment_id", "lead_id", "rep_id", "routed_by",
                                                      "sla_due_at"])
    )
    unrouted: list[int] = field(default_factory=list)

    @property
    def routed(self) -> int:
        return len(self.assignments)


# ---------------------------------------------------------------------------------------------------------------
# The decision (pure: frames in, frame out — tested without a database)
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Rep:
    id: int
    name: str
    capacity: int
    load: int
    out_of_office: bool
    active: bool
    territories: frozenset[str]
    industries: frozenset[str]
    product_lines: frozenset[str]
    is_sales: bool = True

    def available(self) -> bool:
        return self.active and not self.out_of_office

    def has_room(self) -> bool:
        return self.available() and self.load < self.capacity


def _clean(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _rule_matches(rule: dict[str, Any], lead: dict[str, Any]) -> bool:
    kind, params = rule["kind"], rule.get("params") or {}
    if kind == "round_robin":
        return True
    if kind == "account":
        return bool(lead.get("account_owner_id"))
    if kind == "territory":
        provinces, cities = set(params.get("provinces") or []), set(params.get("cities") or [])
        if not provinces and not cities:
            return True  # matched by the reps' own territories
        return lead.get("province") in provinces or lead.get("city") in cities
    if kind == "industry":
        values = set(params.get("industries") or [])
        return not values or lead.get("industry") in values
    if kind == "product_line":
        values = set(params.get("product_lines") or [])
        return not values or lead.get("product_interest") in values
    return False


def _covers(rep: Rep, kind: str, lead: dict[str, Any]) -> bool:
    if kind == "territory":
        return bool({lead.get("province"), lead.get("city")} & rep.territories - {None})
    if kind == "industry":
        return lead.get("industry") in rep.industries
    if kind == "product_line":
        return lead.get("product_interest") in rep.product_lines
    return True


def plan_routes(
    leads: Sequence[dict[str, Any]],
    rules: Sequence[dict[str, Any]],
    reps: dict[int, Rep],
    *,
    last_served: dict[str, dict[int, float]] | None = None,
    preferred: dict[int, int] | None = None,
) -> tuple[list[dict[str, Any]], list[int]]:
    """Choose a rep for each lead. Returns (``[{lead_id, rep_id, routed_by}]``, unrouted lead ids).

    ``reps`` carries each rep's current load, which this updates as leads are handed out, so one batch
    never overfills a rep. ``last_served[routed_by][rep_id]`` orders the round robin of each rule.
    ``preferred`` maps a lead to the rep who asked to get it back ("not now" come-backs).
    """
    served = {key: dict(value) for key, value in (last_served or {}).items()}
    # Hand-outs in this batch come after every earlier one (earlier ones are ordered by assignment id).
    tick = max((v for value in served.values() for v in value.values()), default=0.0)
    sales_pool = sorted(rep.id for rep in reps.values() if rep.active and rep.is_sales)
    chosen: list[dict[str, Any]] = []
    unrouted: list[int] = []
    for lead in leads:
        lead_id = int(lead["id"])
        pick: tuple[int, str] | None = None
        wanted = (preferred or {}).get(lead_id)
        if wanted and wanted in reps and reps[wanted].available():
            pick = (wanted, routed_by("come_back", reps[wanted].name))
        for rule in rules if pick is None else ():
            if not _rule_matches(rule, lead):
                continue
            label = routed_by(rule["kind"], rule["name"])
            if rule["kind"] == "account":
                owner = reps.get(int(lead["account_owner_id"]))
                if owner is not None and owner.available():
                    pick = (owner.id, label)
                    break
                continue
            candidates = [int(i) for i in rule.get("rep_ids") or [] if int(i) in reps]
            if not candidates:
                candidates = [i for i in sales_pool if _covers(reps[i], rule["kind"], lead)]
            eligible = [i for i in candidates if reps[i].has_room()]
            if not eligible:
                continue
            order = served.setdefault(label, {})
            best = min(eligible, key=lambda i: (order.get(i, float("-inf")), i))
            tick += 1.0
            order[best] = tick  # served now: to the back of this rule's queue
            pick = (best, label)
            break
        if pick is None:
            unrouted.append(lead_id)
            continue
        reps[pick[0]].load += 1
        chosen.append({"lead_id": lead_id, "rep_id": pick[0], "routed_by": pick[1]})
    return chosen, unrouted


# ---------------------------------------------------------------------------------------------------------------
# Reading what the decision needs (a handful of statements, whatever the number of leads)
# ---------------------------------------------------------------------------------------------------------------
def active_rules(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(RoutingRule.id, RoutingRule.name, RoutingRule.kind, RoutingRule.params, RoutingRule.rep_ids)
        .where(RoutingRule.active.is_(True))
        .order_by(RoutingRule.position, RoutingRule.id)
    ).all()
    return [dict(r._mapping) for r in rows]


def open_loads(session: Session, rep_ids: Iterable[int] | None = None) -> dict[int, int]:
    """Pending MQLs per rep (capacity counts these)."""
    statement = (
        select(Assignment.rep_id, func.count())
        .where(Assignment.status == AssignmentStatus.PENDING)
        .group_by(Assignment.rep_id)
    )
    if rep_ids is not None:
        statement = statement.where(Assignment.rep_id.in_(list(rep_ids)))
    return {int(rep): int(n) for rep, n in session.execute(statement).all()}


def load_reps(session: Session, extra_ids: Iterable[int] = ()) -> dict[int, Rep]:
    """Active sales reps (the default pool), plus any other users a rule names or a lead is owned by."""
    extra = sorted({int(i) for i in extra_ids if i})
    condition = User.role == Role.SALES
    if extra:
        condition = condition | User.id.in_(extra)
    rows = session.execute(
        select(User.id, User.display_name, User.username, User.capacity, User.out_of_office, User.active,
               User.role, User.territories, User.industries, User.product_lines).where(condition)
    ).all()
    loads = open_loads(session)
    reps: dict[int, Rep] = {}
    for r in rows:
        reps[r.id] = Rep(
            id=r.id, name=r.display_name or r.username, capacity=int(r.capacity or 0), load=loads.get(r.id, 0),
            out_of_office=bool(r.out_of_office), active=bool(r.active) and r.role in (Role.SALES, Role.MANAGER),
            territories=frozenset(r.territories or []), industries=frozenset(r.industries or []),
            product_lines=frozenset(r.product_lines or []), is_sales=r.role == Role.SALES,
        )
    return reps


def last_served(session: Session, labels: Iterable[str]) -> dict[str, dict[int, float]]:
    """When each rep last got a lead from each rule (one grouped statement)."""
    names = sorted(set(labels))
    if not names:
        return {}
    rows = session.execute(
        select(Assignment.routed_by, Assignment.rep_id, func.max(Assignment.id))
        .where(Assignment.routed_by.in_(names))
        .group_by(Assignment.routed_by, Assignment.rep_id)
    ).all()
    out: dict[str, dict[int, float]] = {}
    for label, rep, last_id in rows:
        # The assignment id orders hand-outs exactly (two in the same second stay in order).
        out.setdefault(label, {})[int(rep)] = float(last_id)
    return out


def _lead_rows(session: Session, lead_ids: list[int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for start in range(0, len(lead_ids), _CHUNK):
        chunk = lead_ids[start : start + _CHUNK]
        rows += [
            dict(r._mapping)
            for r in session.execute(
                select(Lead.id, Lead.name, Lead.company, Lead.province, Lead.city, Lead.industry,
                       Lead.product_interest, Account.owner_id.label("account_owner_id"))
                .join(Account, Account.id == Lead.account_id, isouter=True)
                .where(Lead.id.in_(chunk))
                .order_by(Lead.id)
            ).all()
        ]
    for row in rows:
        for key in ("province", "city", "industry", "product_interest"):
            row[key] = _clean(row[key])
    return rows


def sla_calendar(session: Session) -> tuple[WorkCalendar, float]:
    sla = get_setting(session, "sla")
    return WorkCalendar.from_settings(sla), float(sla.get("hours", 8))


# ---------------------------------------------------------------------------------------------------------------
# Writing the assignments
# ---------------------------------------------------------------------------------------------------------------
def create_assignments(
    *, session: Session, choices: list[dict[str, Any]], now: datetime, leads: dict[int, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Insert one pending Assignment per choice (``lead_id``, ``rep_id``, ``routed_by``), make the rep the
    lead's owner (bumping ``Lead.version``) and tell each rep. Set-based: one INSERT and one UPDATE per chunk."""
    if not choices:
        return RoutingOutcome().assignments
    calendar, hours = sla_calendar(session)
    due = calendar.add(now, hours)
    rows = [{"lead_id": c["lead_id"], "rep_id": c["rep_id"], "routed_by": c["routed_by"],
             "status": AssignmentStatus.PENDING, "note": "", "assigned_at": now, "sla_due_at": due,
             "breached": False} for c in choices]
    # A plain executemany (RETURNING would make SQLite insert row by row); the new ids are read back after,
    # each lead having at most one pending assignment.
    session.connection().execute(insert(Assignment.__table__), rows)
    new_ids: dict[int, int] = {}
    lead_ids = [c["lead_id"] for c in choices]
    for start in range(0, len(lead_ids), _CHUNK):
        chunk = lead_ids[start : start + _CHUNK]
        new_ids.update({lead: aid for aid, lead in session.execute(
            select(Assignment.id, Assignment.lead_id)
            .where(Assignment.lead_id.in_(chunk), Assignment.status == AssignmentStatus.PENDING)
        ).all()})
    ids = [new_ids[lead] for lead in lead_ids]
    lead_table = Lead.__table__
    session.connection().execute(
        update(lead_table)
        .where(lead_table.c.id == bindparam("b_id"))
        .values(owner_id=bindparam("b_owner"), updated_at=now, version=lead_table.c.version + 1),
        [{"b_id": c["lead_id"], "b_owner": c["rep_id"]} for c in choices],
    )
    frame = pd.DataFrame(rows)[["lead_id", "rep_id", "routed_by", "sla_due_at"]]
    frame.insert(0, "assignment_id", ids)
    _tell_reps(session, frame, now=now, leads=leads)
    return frame


def _tell_reps(session: Session, frame: pd.DataFrame, *, now: datetime,
               leads: dict[int, dict[str, Any]] | None) -> None:
    """An in-app note per new MQL, and one email per rep listing this batch's MQLs."""
    if leads is None:
        leads = {row["id"]: row for row in _lead_rows(session, frame["lead_id"].astype(int).tolist())}
    reps = notify.people(session, frame["rep_id"].astype(int).tolist())
    calendar, _ = sla_calendar(session)
    messages = []
    for row in frame.itertuples(index=False):
        person = reps.get(int(row.rep_id))
        lead = leads.get(int(row.lead_id), {})
        who = notify.lead_label(lead.get("name"), lead.get("company"))
        messages.append(notify.message(
            channel="notify", key=f"mql-assigned:{row.assignment_id}", now=now, user_id=int(row.rep_id),
            lead_id=int(row.lead_id), subject=notify.tr(person, "routing.msg.assigned_subject", lead=who),
            body=notify.tr(person, "routing.msg.assigned_body", lead=who,
                           due=calendar_text(row.sla_due_at, calendar)),
            payload={"kind": "mql_assigned", "assignment_id": int(row.assignment_id)},
        ))
    if notify.email_enabled(session):
        for rep_id, group in frame.groupby("rep_id"):
            person = reps.get(int(rep_id))
            if person is None or not person.email:
                continue
            lines = [
                f"- {notify.lead_label(leads.get(int(r.lead_id), {}).get('name'), leads.get(int(r.lead_id), {}).get('company'))}"
                for r in group.itertuples(index=False)
            ]
            first, last = int(group["assignment_id"].min()), int(group["assignment_id"].max())
            messages.append(notify.message(
                channel="email", key=f"mql-assigned-email:{rep_id}:{first}-{last}", now=now,
                to_address=person.email, user_id=person.id,
                subject=notify.tr(person, "routing.msg.assigned_email_subject", n=len(group)),
                body=notify.tr(person, "routing.msg.assigned_email_body", n=len(group),
                               due=calendar_text(group["sla_due_at"].min(), calendar)) + "\n\n" + "\n".join(lines),
            ))
    notify.enqueue_many(session, messages)


def calendar_text(value: datetime, calendar: WorkCalendar) -> str:
    """A due time as the team reads it: local date and time."""
    moment = value.to_pydatetime() if isinstance(value, pd.Timestamp) else value
    return ensure_utc(moment).astimezone(calendar.tz).strftime("%Y-%m-%d %H:%M")


def route_leads(
    *, session: Session, lead_ids: Iterable[int], now: datetime, preferred: dict[int, int] | None = None,
) -> RoutingOutcome:
    """Hand each lead to a rep by the routing rules and create its pending assignment with the SLA due time.

    System work (callers check permissions): ``core.lifecycle.promote_to_mql`` and the come-back of "not now"
    leads call this for MQLs that have no owner; the SLA check retries MQLs no rep could take.
    """
    ids = sorted({int(i) for i in lead_ids})
    if not ids:
        return RoutingOutcome()
    rules = active_rules(session)
    leads = _lead_rows(session, ids)
    named = {int(i) for rule in rules for i in (rule.get("rep_ids") or [])}
    owners = {int(lead["account_owner_id"]) for lead in leads if lead.get("account_owner_id")}
    reps = load_reps(session, extra_ids=named | owners | set((preferred or {}).values()))
    labels = [routed_by(rule["kind"], rule["name"]) for rule in rules]
    choices, unrouted = plan_routes(leads, rules, reps, last_served=last_served(session, labels),
                                    preferred=preferred)
    frame = create_assignments(session=session, choices=choices, now=now,
                               leads={lead["id"]: lead for lead in leads})
    return RoutingOutcome(assignments=frame, unrouted=unrouted)
