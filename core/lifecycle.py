"""The lifecycle stage machine: which stage may follow which, and the StageChange record of every move.

Main track: new → MQL → SAL → SQL → opportunity → won / lost. Side tracks: recycled (back in nurture; may
become MQL again) and disqualified (may be recycled when someone restores it). Forward skips on the main track
are allowed up to opportunity, because sales sometimes meet a lead directly (a trade-show conversation turns
into an SQL); the funnel counts a skipped stage as passed (see core.funnel). Won is final.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlmodel import Session

from core import audit
from core.auth import Actor, require
from core.errors import ConcurrentUpdate, NotFound, Term, ValidationError
from db.models import Assignment, AssignmentStatus, Lead, LeadStatus, Stage, StageChange

ALLOWED: dict[str, frozenset[str]] = {
    Stage.NEW: frozenset({Stage.MQL, Stage.SAL, Stage.SQL, Stage.DISQUALIFIED}),
    Stage.MQL: frozenset({Stage.SAL, Stage.SQL, Stage.RECYCLED, Stage.DISQUALIFIED}),
    Stage.SAL: frozenset({Stage.SQL, Stage.OPPORTUNITY, Stage.RECYCLED, Stage.DISQUALIFIED}),
    Stage.SQL: frozenset({Stage.OPPORTUNITY, Stage.LOST, Stage.RECYCLED, Stage.DISQUALIFIED}),
    Stage.OPPORTUNITY: frozenset({Stage.WON, Stage.LOST}),
    Stage.WON: frozenset(),
    Stage.LOST: frozenset({Stage.RECYCLED}),
    Stage.RECYCLED: frozenset({Stage.MQL, Stage.DISQUALIFIED}),
    Stage.DISQUALIFIED: frozenset({Stage.RECYCLED}),
}
# The main track in order: the funnel and "most advanced stage" comparisons read this.
MAIN_TRACK: tuple[str, ...] = (Stage.NEW, Stage.MQL, Stage.SAL, Stage.SQL, Stage.OPPORTUNITY, Stage.WON)
_CHUNK = 500


class InvalidTransition(ValidationError):
    key = "lifecycle.invalid_transition"


def can_move(from_stage: str, to_stage: str) -> bool:
    return to_stage in ALLOWED.get(from_stage, frozenset())


def stage_rank(stage: str) -> int:
    """Position on the main track (lost counts as reaching opportunity; side tracks as new)."""
    if stage == Stage.LOST:
        return MAIN_TRACK.index(Stage.OPPORTUNITY)
    return MAIN_TRACK.index(stage) if stage in MAIN_TRACK else 0


def change_stage(
    *,
    session: Session,
    lead_id: int,
    to_stage: str,
    now: datetime,
    by_user_id: int | None = None,
    by_rule: str | None = None,
    reason: str = "",
    expected_version: int | None = None,
) -> StageChange:
    """Move one lead, refusing a transition the machine does not allow.

    With ``expected_version`` the update only happens if nobody changed the lead since it was read
    (optimistic locking): two reps acting on the same MQL, exactly one wins and the other gets
    ``ConcurrentUpdate``.
    """
    lead = session.execute(select(Lead.stage, Lead.version).where(Lead.id == lead_id)).first()
    if lead is None:
        raise NotFound(f"Not found: lead {lead_id}.", what=f"#{lead_id}")
    if not can_move(lead.stage, to_stage):
        raise InvalidTransition(
            f"A lead cannot go from {lead.stage} to {to_stage}.",
            from_stage=Term("stage", lead.stage), to_stage=Term("stage", to_stage),
        )
    condition = [Lead.id == lead_id, Lead.stage == lead.stage]
    if expected_version is not None:
        condition.append(Lead.version == expected_version)
    result = session.execute(
        update(Lead)
        .where(*condition)
        .values(stage=to_stage, stage_changed_at=now, updated_at=now, version=Lead.version + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ConcurrentUpdate("Someone else changed this lead just now.", detail=f"#{lead_id}")
    change = StageChange(lead_id=lead_id, from_stage=lead.stage, to_stage=to_stage, by_user_id=by_user_id,
                         by_rule=by_rule, reason=reason, at=now)
    session.add(change)
    session.flush()
    return change


def change_stages(
    *,
    session: Session,
    lead_ids: Iterable[int],
    to_stage: str,
    now: datetime,
    by_user_id: int | None = None,
    by_rule: str | None = None,
    reason: str = "",
) -> list[int]:
    """Move many leads at once (set-based); leads for which the move is not allowed are left as they are.

    Returns the ids that moved. One SELECT, one UPDATE and one INSERT per chunk of 500.
    """
    allowed_from = [stage for stage, targets in ALLOWED.items() if to_stage in targets]
    moved: list[int] = []
    ids = sorted(set(lead_ids))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = session.execute(
            select(Lead.id, Lead.stage).where(Lead.id.in_(chunk), Lead.stage.in_(allowed_from))
        ).all()
        if not rows:
            continue
        movable = [row.id for row in rows]
        session.execute(
            update(Lead)
            .where(Lead.id.in_(movable), Lead.stage.in_(allowed_from))
            .values(stage=to_stage, stage_changed_at=now, updated_at=now, version=Lead.version + 1)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            insert(StageChange),
            [{"lead_id": row.id, "from_stage": row.stage, "to_stage": to_stage, "by_user_id": by_user_id,
              "by_rule": by_rule, "reason": reason, "at": now} for row in rows],
        )
        moved.extend(movable)
    return moved


# ---------------------------------------------------------------------------------------------------------------
# Marketing ↔ sales: becoming an MQL, going back to nurture, and the come-back of "not now" leads
# ---------------------------------------------------------------------------------------------------------------
# core.routing builds on change_stage, so the functions below import it when called (no import cycle).
# Stages in which sales holds a lead: crossing the MQL line again only tells its owner.
SALES_STAGES = frozenset({Stage.SAL, Stage.SQL, Stage.OPPORTUNITY})
MARKETING_STAGES = frozenset({Stage.NEW, Stage.RECYCLED})


@dataclass
class PromotionReport:
    """What ``promote_to_mql`` did with each lead it was given."""

    promoted: list[int] = field(default_factory=list)  # moved to MQL
    routed: dict[int, int] = field(default_factory=dict)  # lead → rep who got it
    unrouted: list[int] = field(default_factory=list)  # MQLs no rep could take (all full / away)
    owner_notified: dict[int, int] = field(default_factory=dict)  # lead → owner told instead of routing
    skipped: list[int] = field(default_factory=list)  # not valid, already with sales, won/lost …


def _notify_owners(session: Session, owners: dict[int, int], rows: dict[int, Any], *, now: datetime,
                   by_rule: str | None) -> None:
    """Tell the rep who already owns (or follows up) a lead that it just crossed the MQL line: once a day."""
    from core.clock import to_local
    from core.routing import notify

    if not owners:
        return
    people = notify.people(session, owners.values())
    day = to_local(now).date().isoformat()  # type: ignore[union-attr]
    messages = []
    for lead_id, owner_id in owners.items():
        person = people.get(owner_id)
        row = rows[lead_id]
        who = notify.lead_label(row.name, row.company)
        messages.append(notify.message(
            channel="notify", key=f"mql-owner:{lead_id}:{day}", now=now, user_id=owner_id, lead_id=lead_id,
            subject=notify.tr(person, "lifecycle.msg.owner_mql_subject", lead=who),
            body=notify.tr(person, "lifecycle.msg.owner_mql_body", lead=who, rule=by_rule or "—",
                           grade=row.grade or "—", engagement=int(row.engagement_score or 0)),
            payload={"kind": "owner_mql", "followup": row.owner_id is None},
        ))
        if person is not None and person.email and notify.email_enabled(session):
            messages.append(notify.message(
                channel="email", key=f"mql-owner-email:{lead_id}:{day}", now=now, to_address=person.email,
                user_id=owner_id, lead_id=lead_id,
                subject=notify.tr(person, "lifecycle.msg.owner_mql_subject", lead=who),
                body=notify.tr(person, "lifecycle.msg.owner_mql_body", lead=who, rule=by_rule or "—",
                               grade=row.grade or "—", engagement=int(row.engagement_score or 0)),
            ))
    notify.enqueue_many(session, messages)


def promote_to_mql(
    *,
    session: Session,
    lead_ids: Iterable[int],
    now: datetime,
    by_rule: str | None = None,
    actor: Actor | None = None,
    reason: str = "",
) -> PromotionReport:
    """Make leads MQLs and hand them to sales. Set-based; the caller commits.

    Called by scoring with the leads that crossed the MQL rule (``by_rule`` names it), or by a marketer by hand
    (``actor``, who needs the ``promote_mql`` permission; ``reason`` says why). For each valid lead:

    - new or recycled, nobody owns it → MQL, routed by the routing rules (``core.routing.engine``);
    - new or recycled but owned by a rep → MQL, assigned straight to that owner (``routed_by`` "owner: …");
    - with sales already (SAL, SQL, opportunity), or flagged as in follow-up by someone
      (``Lead.followup_owner_id``) → not routed again: the owner is notified instead;
    - already an MQL that no rep holds → routed again (everyone was full last time);
    - anything else (won, lost, disqualified, invalid, merged) → skipped.
    """
    from core.routing.engine import create_assignments, load_reps, route_leads, routed_by

    if actor is not None:
        require(actor, "promote_mql")
    ids = sorted({int(i) for i in lead_ids})
    report = PromotionReport()
    if not ids:
        return report
    rows: dict[int, Any] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for row in session.execute(
            select(Lead.id, Lead.stage, Lead.status, Lead.owner_id, Lead.followup_owner_id, Lead.name,
                   Lead.company, Lead.grade, Lead.engagement_score).where(Lead.id.in_(chunk))
        ).all():
            rows[row.id] = row
    pending = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        pending |= set(session.execute(
            select(Assignment.lead_id).where(Assignment.lead_id.in_(chunk),
                                             Assignment.status == AssignmentStatus.PENDING)
        ).scalars().all())
    owners = {row.owner_id for row in rows.values() if row.owner_id}
    reps = load_reps(session, extra_ids=owners) if owners else {}
    to_route: list[int] = []
    to_owner: dict[int, int] = {}
    notify_owner: dict[int, int] = {}
    for lead_id in ids:
        row = rows.get(lead_id)
        if row is None or row.status != LeadStatus.VALID:
            report.skipped.append(lead_id)
            continue
        owner = row.owner_id or row.followup_owner_id
        if row.stage in MARKETING_STAGES:
            if row.owner_id and row.owner_id in reps and reps[row.owner_id].active:
                to_owner[lead_id] = row.owner_id
            elif row.owner_id is None and row.followup_owner_id:
                notify_owner[lead_id] = row.followup_owner_id
            else:
                to_route.append(lead_id)
        elif row.stage == Stage.MQL and lead_id not in pending and row.owner_id is None and not row.followup_owner_id:
            to_route.append(lead_id)
        elif owner and (row.stage in SALES_STAGES or row.stage == Stage.MQL):
            notify_owner[lead_id] = owner
        else:
            report.skipped.append(lead_id)
    movable = [i for i in (*to_route, *to_owner) if rows[i].stage in MARKETING_STAGES]
    by_user = actor.id if actor is not None and actor.id else None
    text = reason.strip()[:2000] or (f"{by_rule}" if by_rule else "")
    report.promoted = sorted(change_stages(session=session, lead_ids=movable, to_stage=Stage.MQL, now=now,
                                           by_user_id=by_user, by_rule=by_rule, reason=text))
    moved = set(report.promoted)
    owned_choices = [{"lead_id": i, "rep_id": o, "routed_by": routed_by("owner", reps[o].name)}
                     for i, o in to_owner.items() if i in moved]
    if owned_choices:
        create_assignments(session=session, choices=owned_choices, now=now)
        report.routed.update({c["lead_id"]: c["rep_id"] for c in owned_choices})
    routable = [i for i in to_route if i in moved or rows[i].stage == Stage.MQL]
    outcome = route_leads(session=session, lead_ids=routable, now=now)
    report.routed.update(dict(zip(outcome.assignments["lead_id"].astype(int),
                                  outcome.assignments["rep_id"].astype(int), strict=True)))
    report.unrouted = sorted(outcome.unrouted)
    _notify_owners(session, notify_owner, rows, now=now, by_rule=by_rule)
    report.owner_notified = notify_owner
    if actor is not None:
        audit.record(session, actor_id=by_user, action="lead.promote_mql", entity="lead",
                     entity_id=ids[0] if len(ids) == 1 else None,
                     detail={"lead_ids": ids[:200], "promoted": len(report.promoted), "routed": len(report.routed),
                             "owner_notified": len(notify_owner), "reason": text}, now=now)
    return report


def _move_back(*, session: Session, actor: Actor, lead_ids: Iterable[int], to_stage: str, now: datetime,
               reason: str, recycle_at: datetime | None) -> list[int]:
    """Recycle or disqualify by hand. Leads waiting in a rep's inbox are left to the rep (or their manager)."""
    require(actor, "promote_mql")
    ids = sorted({int(i) for i in lead_ids})
    with_sales = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        with_sales |= set(session.execute(
            select(Assignment.lead_id).where(Assignment.lead_id.in_(chunk),
                                             Assignment.status == AssignmentStatus.PENDING)
        ).scalars().all())
    candidates = [i for i in ids if i not in with_sales]
    moved = change_stages(session=session, lead_ids=candidates, to_stage=to_stage, now=now,
                          by_user_id=actor.id or None, reason=reason.strip()[:2000])
    for start in range(0, len(moved), _CHUNK):
        chunk = moved[start : start + _CHUNK]
        session.execute(update(Lead).where(Lead.id.in_(chunk))
                        .values(owner_id=None, recycle_at=recycle_at)
                        .execution_options(synchronize_session=False))
    audit.record(session, actor_id=actor.id or None, action=f"lead.{to_stage}", entity="lead",
                 detail={"lead_ids": moved[:200], "moved": len(moved), "reason": reason}, now=now)
    return moved


def recycle(*, session: Session, actor: Actor, lead_ids: Iterable[int], now: datetime, reason: str = "",
            until: datetime | None = None) -> list[int]:
    """Send leads back to nurture (no owner); ``until``: when they may qualify again. Returns the ids moved."""
    return _move_back(session=session, actor=actor, lead_ids=lead_ids, to_stage=Stage.RECYCLED, now=now,
                      reason=reason, recycle_at=until)


def disqualify(*, session: Session, actor: Actor, lead_ids: Iterable[int], now: datetime, reason: str) -> list[int]:
    """Take leads out of marketing and sales for good (a restore recycles them). Returns the ids moved."""
    if not reason.strip():
        raise ValidationError("Say why these leads are disqualified.", key="lifecycle.reason_required")
    return _move_back(session=session, actor=actor, lead_ids=lead_ids, to_stage=Stage.DISQUALIFIED, now=now,
                      reason=reason, recycle_at=None)


@dataclass
class ComeBackReport:
    returned: list[int] = field(default_factory=list)
    to_same_rep: int = 0
    unrouted: list[int] = field(default_factory=list)


def return_due(*, session: Session, now: datetime) -> ComeBackReport:
    """Bring back the "not now" leads whose come-back date has come: MQL again, and to the rep who asked.

    A lead qualifies when its latest assignment was rejected as ``not_now`` with ``come_back_at`` ≤ ``now``
    and it is still recycled (a lead that qualified again meanwhile has a newer assignment). When that rep is
    away or gone, the routing rules choose. Set-based; the caller commits (the SLA check runs this).
    """
    from core.routing.engine import route_leads

    latest = (select(Assignment.lead_id, func.max(Assignment.id).label("id"))
              .group_by(Assignment.lead_id).subquery())
    rows = session.execute(
        select(Assignment.lead_id, Assignment.rep_id, Assignment.note, Assignment.come_back_at)
        .join(latest, latest.c.id == Assignment.id)
        .join(Lead, Lead.id == Assignment.lead_id)
        .where(Assignment.status == AssignmentStatus.REJECTED, Assignment.reason == "not_now",
               Assignment.come_back_at <= now, Lead.stage == Stage.RECYCLED, Lead.status == LeadStatus.VALID)
        .order_by(Assignment.come_back_at, Assignment.lead_id)
    ).all()
    report = ComeBackReport()
    if not rows:
        return report
    preferred = {row.lead_id: row.rep_id for row in rows}
    moved = change_stages(session=session, lead_ids=list(preferred), to_stage=Stage.MQL, now=now,
                          by_rule="come_back", reason="not_now")
    outcome = route_leads(session=session, lead_ids=moved, now=now, preferred=preferred)
    report.returned = sorted(moved)
    report.to_same_rep = int(outcome.assignments["routed_by"].str.startswith("come_back:").sum())
    report.unrouted = outcome.unrouted
    return report
