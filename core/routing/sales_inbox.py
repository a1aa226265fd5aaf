"""The sales inbox: what a rep (or a manager's team) has to decide, and the decisions themselves.

Accept, reject and reassign are each one transaction (the caller commits): the Assignment, the lead's stage
(a StageChange), its owner and the audit entry change together or not at all. Two people acting on the same
MQL — two reps, a rep and their manager, or one rep in two browser tabs — race on two conditions: the
assignment must still be pending (``UPDATE … WHERE status = 'pending'``) and the lead must still be at the
version the page showed (``Lead.version``). Exactly one wins; the other gets ``AlreadyDecided`` saying who did
what and when, or ``LeadChanged``.

A sales rep sees and acts only on their own assignments, a manager on their own and their team's, admins and
marketers (read-only, no ``inbox`` actions) on all — checked here, whatever page calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import aliased
from sqlmodel import Session

from core import audit
from core.auth import Actor, assignment_scope, require
from core.clock import ensure_utc, to_local
from core.errors import ConcurrentUpdate, NotFound, Term, ValidationError
from core.lifecycle import change_stage
from core.routing import crm
from core.routing.engine import create_assignments, open_loads, routed_by, sla_calendar
from core.routing.errors import AlreadyDecided, LeadChanged, NotYourLead
from core.settings import get_setting
from db.models import (
    Account,
    Assignment,
    AssignmentStatus,
    Channel,
    Lead,
    LeadStatus,
    Message,
    Role,
    ScoreEvent,
    Stage,
    StageChange,
    Touchpoint,
    User,
)

REJECT_REASONS = ("cannot_reach", "no_budget", "wrong_person", "competitor", "duplicate", "not_now")
INBOX_COLUMNS = ["assignment_id", "lead_id", "name", "company", "title", "phone", "email", "province", "city",
                 "industry", "product_interest", "account", "grade", "fit_score", "engagement_score", "channel",
                 "rep_id", "rep", "routed_by", "status", "reason", "note", "assigned_at", "sla_due_at",
                 "sla_hours_left", "breached", "decided_at", "come_back_at", "crm_status", "stage",
                 "why_rule", "why_reason", "why_by", "why_at", "version"]
HISTORY_ROWS = 8  # touchpoints and score lines per lead on a card


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------
def _why_qualified(session: Session, lead_ids: list[int]) -> pd.DataFrame:
    """The most recent move to MQL of each of ``lead_ids`` (why it qualified), in one statement.

    Grouped over the shown leads only: grouping every MQL change in the base before the page of rows is cut
    cost more than the rest of the inbox."""
    columns = ["lead_id", "why_rule", "why_reason", "why_by", "why_at"]
    if not lead_ids:
        return pd.DataFrame(columns=columns)
    latest = (
        select(func.max(StageChange.id))
        .where(StageChange.to_stage == Stage.MQL, StageChange.lead_id.in_(lead_ids))
        .group_by(StageChange.lead_id)
    )
    promoter = aliased(User)
    rows = session.execute(
        select(StageChange.lead_id, StageChange.by_rule.label("why_rule"), StageChange.reason.label("why_reason"),
               promoter.display_name.label("why_by"), StageChange.at.label("why_at"))
        .join(promoter, promoter.id == StageChange.by_user_id, isouter=True)
        .where(StageChange.id.in_(latest))
    ).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def inbox(
    *, session: Session, actor: Actor, now: datetime, status: str | None = AssignmentStatus.PENDING,
    limit: int = 100, offset: int = 0, rep_id: int | None = None,
) -> pd.DataFrame:
    """The MQLs routed to ``actor`` (a manager: their team; admin: everyone), most urgent first.

    Pending ones are ordered by the SLA due time (overdue first), decided ones newest first.
    ``sla_hours_left`` counts working hours (negative: overdue).
    """
    require(actor, "inbox")
    # The page of assignments is cut on the assignment table alone, then joined: sorting a rep's whole history
    # joined to leads, accounts and channels to keep a hundred rows cost more than the rest of the page.
    page = select(Assignment.id).where(assignment_scope(actor))
    if status:
        page = page.where(Assignment.status == status)
    if rep_id is not None:
        page = page.where(Assignment.rep_id == rep_id)
    if status == AssignmentStatus.PENDING:
        order = (Assignment.sla_due_at.asc().nulls_last(), Assignment.assigned_at.desc(), Assignment.id.desc())
    else:
        order = (func.coalesce(Assignment.decided_at, Assignment.assigned_at).desc(), Assignment.id.desc())
    page = page.order_by(*order).limit(limit).offset(offset)
    statement = (
        select(Assignment.id.label("assignment_id"), Lead.id.label("lead_id"), Lead.name, Lead.company,
               Lead.title, Lead.phone, Lead.email, Lead.province, Lead.city, Lead.industry, Lead.product_interest,
               Account.name.label("account"), Lead.grade, Lead.fit_score, Lead.engagement_score,
               Channel.name.label("channel"), Assignment.rep_id, User.display_name.label("rep"),
               Assignment.routed_by, Assignment.status, Assignment.reason, Assignment.note, Assignment.assigned_at,
               Assignment.sla_due_at, Assignment.breached, Assignment.decided_at, Assignment.come_back_at,
               Assignment.crm_status, Lead.stage, Lead.version)
        .join(Lead, Lead.id == Assignment.lead_id)
        .join(User, User.id == Assignment.rep_id)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .join(Account, Account.id == Lead.account_id, isouter=True)
        .where(Assignment.id.in_(page.scalar_subquery()))
        .order_by(*order)
    )
    rows = session.execute(statement).all()
    frame = pd.DataFrame([r._asdict() for r in rows])
    if frame.empty:
        return pd.DataFrame(columns=INBOX_COLUMNS)
    frame = frame.merge(_why_qualified(session, frame["lead_id"].astype(int).tolist()), on="lead_id", how="left")
    calendar, _ = sla_calendar(session)
    frame["sla_hours_left"] = [
        round(calendar.between(now, due), 1) if status_ == AssignmentStatus.PENDING and due is not None else None
        for due, status_ in zip(frame["sla_due_at"], frame["status"], strict=True)
    ]
    return frame[INBOX_COLUMNS]


def inbox_count(*, session: Session, actor: Actor, status: str | None = AssignmentStatus.PENDING,
                rep_id: int | None = None) -> int:
    require(actor, "inbox")
    statement = select(func.count()).select_from(Assignment).where(assignment_scope(actor))
    if status:
        statement = statement.where(Assignment.status == status)
    if rep_id is not None:
        statement = statement.where(Assignment.rep_id == rep_id)
    return int(session.scalar(statement) or 0)


@dataclass
class LeadHistory:
    """Everything a card shows about its leads, loaded for all visible leads at once."""

    scores: pd.DataFrame  # lead_id, occurred_at, component, points, reason, kind
    touchpoints: pd.DataFrame  # lead_id, occurred_at, kind, channel, properties
    owners: pd.DataFrame  # lead_id, assignment_id, rep, status, reason, note, assigned_at, decided_at
    stages: pd.DataFrame  # lead_id, at, from_stage, to_stage, by_rule, by, reason
    score_totals: pd.DataFrame  # lead_id, component, points

    def of(self, lead_id: int) -> dict[str, pd.DataFrame]:
        return {name: frame[frame["lead_id"] == lead_id] for name, frame in
                (("scores", self.scores), ("touchpoints", self.touchpoints), ("owners", self.owners),
                 ("stages", self.stages), ("score_totals", self.score_totals))}


def _visible_leads(session: Session, actor: Actor, lead_ids: list[int]) -> list[int]:
    if not lead_ids:
        return []
    return sorted(session.execute(
        select(Assignment.lead_id).where(Assignment.lead_id.in_(lead_ids), assignment_scope(actor)).distinct()
    ).scalars().all())


def _frame(rows: Any, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([r._asdict() for r in rows], columns=columns)


def lead_history(*, session: Session, actor: Actor, lead_ids: list[int], per_lead: int = HISTORY_ROWS) -> LeadHistory:
    """Score ledger lines, touchpoints, earlier owners with their notes, and stage moves of the given leads.

    Only leads that were routed to someone in ``actor``'s scope; five statements whatever the number of leads
    (the latest ``per_lead`` touchpoints and score lines of each, by a window function).
    """
    require(actor, "inbox")
    ids = _visible_leads(session, actor, [int(i) for i in lead_ids])
    if not ids:
        ids = [-1]
    rank = func.row_number().over(partition_by=ScoreEvent.lead_id,
                                  order_by=(ScoreEvent.occurred_at.desc(), ScoreEvent.id.desc())).label("rank")
    ranked = (select(ScoreEvent.lead_id, ScoreEvent.occurred_at, ScoreEvent.component, ScoreEvent.points,
                     ScoreEvent.reason, ScoreEvent.kind, rank)
              .where(ScoreEvent.lead_id.in_(ids)).subquery())
    scores = _frame(session.execute(select(ranked).where(ranked.c.rank <= per_lead)
                                    .order_by(ranked.c.lead_id, ranked.c.rank)).all(),
                    ["lead_id", "occurred_at", "component", "points", "reason", "kind", "rank"])
    totals = _frame(session.execute(
        select(ScoreEvent.lead_id, ScoreEvent.component, func.sum(ScoreEvent.points).label("points"))
        .where(ScoreEvent.lead_id.in_(ids)).group_by(ScoreEvent.lead_id, ScoreEvent.component)
    ).all(), ["lead_id", "component", "points"])
    trank = func.row_number().over(partition_by=Touchpoint.lead_id,
                                   order_by=(Touchpoint.occurred_at.desc(), Touchpoint.id.desc())).label("rank")
    tranked = (select(Touchpoint.lead_id, Touchpoint.occurred_at, Touchpoint.kind,
                      Channel.name.label("channel"), Touchpoint.properties, trank)
               .join(Channel, Channel.id == Touchpoint.channel_id, isouter=True)
               .where(Touchpoint.lead_id.in_(ids)).subquery())
    touchpoints = _frame(session.execute(select(tranked).where(tranked.c.rank <= per_lead)
                                         .order_by(tranked.c.lead_id, tranked.c.rank)).all(),
                         ["lead_id", "occurred_at", "kind", "channel", "properties", "rank"])
    owners = _frame(session.execute(
        select(Assignment.lead_id, Assignment.id.label("assignment_id"), User.display_name.label("rep"),
               Assignment.status, Assignment.reason, Assignment.note, Assignment.routed_by,
               Assignment.assigned_at, Assignment.decided_at)
        .join(User, User.id == Assignment.rep_id)
        .where(Assignment.lead_id.in_(ids))
        .order_by(Assignment.lead_id, Assignment.assigned_at.desc(), Assignment.id.desc())
    ).all(), ["lead_id", "assignment_id", "rep", "status", "reason", "note", "routed_by", "assigned_at",
              "decided_at"])
    by = aliased(User)
    stages = _frame(session.execute(
        select(StageChange.lead_id, StageChange.at, StageChange.from_stage, StageChange.to_stage,
               StageChange.by_rule, by.display_name.label("by"), StageChange.reason)
        .join(by, by.id == StageChange.by_user_id, isouter=True)
        .where(StageChange.lead_id.in_(ids))
        .order_by(StageChange.lead_id, StageChange.at.desc(), StageChange.id.desc())
    ).all(), ["lead_id", "at", "from_stage", "to_stage", "by_rule", "by", "reason"])
    return LeadHistory(scores=scores, touchpoints=touchpoints, owners=owners, stages=stages, score_totals=totals)


# ---------------------------------------------------------------------------------------------------------------
# Acting
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Seen:
    assignment_id: int
    lead_id: int
    rep_id: int
    status: str
    sla_due_at: datetime | None
    lead_version: int
    lead_stage: str


def _load(session: Session, actor: Actor, assignment_id: int) -> _Seen:
    row = session.execute(
        select(Assignment.id, Assignment.lead_id, Assignment.rep_id, Assignment.status, Assignment.sla_due_at,
               Lead.version, Lead.stage)
        .join(Lead, Lead.id == Assignment.lead_id)
        .where(Assignment.id == assignment_id)
    ).first()
    if row is None:
        raise NotFound(f"Not found: MQL assignment {assignment_id}.", what=f"#{assignment_id}")
    in_scope = session.scalar(select(Assignment.id).where(Assignment.id == assignment_id, assignment_scope(actor)))
    if in_scope is None:
        raise NotYourLead("This MQL is in another rep's inbox.", role=actor.role, action="inbox")
    seen = _Seen(row.id, row.lead_id, row.rep_id, row.status, row.sla_due_at, row.version, row.stage)
    if seen.status != AssignmentStatus.PENDING:
        raise _already_decided(session, actor, assignment_id)
    return seen


def _already_decided(session: Session, actor: Actor, assignment_id: int) -> AlreadyDecided:
    """Tell the loser what happened: who decided, what, when (and to whom it went on a reassignment)."""
    decider = aliased(User)
    row = session.execute(
        select(Assignment.status, Assignment.decided_at, Assignment.reason, decider.display_name.label("who"),
               decider.id.label("who_id"))
        .join(decider, decider.id == Assignment.decided_by_id, isouter=True)
        .where(Assignment.id == assignment_id)
    ).one()
    when = _local_text(row.decided_at)
    who = row.who or "—"
    if row.who_id == actor.id:
        who = Term("routing.you", "self")
    if row.status == AssignmentStatus.REASSIGNED:
        successor = session.execute(
            select(User.display_name).join(Assignment, Assignment.rep_id == User.id)
            .where(Assignment.lead_id == select(Assignment.lead_id).where(Assignment.id == assignment_id)
                   .scalar_subquery(), Assignment.id > assignment_id)
            .order_by(Assignment.id).limit(1)
        ).scalar()
        return AlreadyDecided(f"{who} reassigned this MQL to {successor} at {when}.",
                              key="routing.already_reassigned", who=who, rep=successor or "—", when=when)
    return AlreadyDecided(f"{who} already handled this MQL at {when}: {row.status}.", who=who, when=when,
                          outcome=Term("assignment_status", row.status))


def _local_text(value: datetime | None) -> str:
    if value is None:
        return "—"
    local = to_local(value)
    return local.strftime("%Y-%m-%d %H:%M") if local else "—"


def _close(session: Session, actor: Actor, seen: _Seen, *, status: str, now: datetime,
           **values: Any) -> None:
    """Move the assignment out of pending, unless someone else did first."""
    table = Assignment.__table__
    breached = bool(seen.sla_due_at is not None and ensure_utc(seen.sla_due_at) < now)
    result = session.execute(
        update(table)
        .where(table.c.id == seen.assignment_id, table.c.status == AssignmentStatus.PENDING)
        .values(status=status, decided_at=now, decided_by_id=actor.id or None,
                breached=table.c.breached | breached, **values)
    )
    if result.rowcount != 1:
        raise _already_decided(session, actor, seen.assignment_id)


def _check_version(seen: _Seen, expected_version: int | None) -> int:
    if expected_version is not None and int(expected_version) != seen.lead_version:
        raise LeadChanged("This lead changed since your page showed it. Refresh and look again.",
                          detail=f"#{seen.lead_id}")
    return seen.lead_version


def _move(session: Session, seen: _Seen, *, to_stage: str, now: datetime, actor: Actor, version: int,
          reason: str, **lead_values: Any) -> None:
    try:
        change_stage(session=session, lead_id=seen.lead_id, to_stage=to_stage, now=now,
                     by_user_id=actor.id or None, reason=reason, expected_version=version)
    except ConcurrentUpdate as error:
        raise LeadChanged("This lead changed since your page showed it. Refresh and look again.",
                          detail=f"#{seen.lead_id}") from error
    if lead_values:
        table = Lead.__table__
        session.execute(update(table).where(table.c.id == seen.lead_id).values(**lead_values))


def accept(*, session: Session, actor: Actor, assignment_id: int, now: datetime,
           expected_version: int | None = None) -> str:
    """The rep takes the MQL: it becomes SAL, the rep stays its owner, and it goes to the CRM.

    Returns the CRM hand-over status (``queued`` for the webhook, ``export`` without one).
    """
    require(actor, "inbox")
    seen = _load(session, actor, assignment_id)
    version = _check_version(seen, expected_version)
    _close(session, actor, seen, status=AssignmentStatus.ACCEPTED, now=now)
    _move(session, seen, to_stage=Stage.SAL, now=now, actor=actor, version=version, reason="accepted",
          owner_id=seen.rep_id, recycle_at=None)
    audit.record(session, actor_id=actor.id or None, action="assignment.accept", entity="assignment",
                 entity_id=assignment_id, detail={"lead_id": seen.lead_id, "rep_id": seen.rep_id}, now=now)
    return crm.push_accepted(session=session, assignment_id=assignment_id, now=now)


def _come_back_moment(session: Session, value: date | datetime | None, *, now: datetime, default_days: int) -> datetime:
    """A "not now" date as the start of that working day (team time), or the default number of days ahead."""
    calendar, _ = sla_calendar(session)
    if value is None:
        value = (now + timedelta(days=default_days)).astimezone(calendar.tz).date()
    if isinstance(value, datetime):
        moment = ensure_utc(value)
    else:
        opens = datetime.combine(value, time(0), tzinfo=calendar.tz) + timedelta(hours=calendar.start)
        moment = opens.astimezone(UTC)
    if moment <= now:
        raise ValidationError("The come-back date must be in the future.", key="routing.come_back_past")
    return moment


def reject(
    *, session: Session, actor: Actor, assignment_id: int, reason: str, note: str = "", now: datetime,
    expected_version: int | None = None, come_back: date | datetime | None = None,
) -> str:
    """The rep sends the MQL back to marketing with a reason code and a note. Returns the lead's new stage.

    The lead leaves sales (no owner) and is recycled into nurture — the re-nurture workflow starts from that
    StageChange — or disqualified for the reasons the "handoff" setting names (by default: competitor,
    duplicate). "Not now" sets the come-back date, when the lead returns to this rep
    (``core.lifecycle.return_due``); the other recycle reasons set when the lead may qualify again.
    """
    require(actor, "inbox")
    if reason not in REJECT_REASONS:
        raise ValidationError(f"Choose a reason: {', '.join(REJECT_REASONS)}.", key="routing.reason_required")
    note = (note or "").strip()[:2000]
    settings = get_setting(session, "handoff")
    recycle_days = {**{"not_now": 90}, **(settings.get("recycle_days") or {})}
    come_back_at = None
    if reason == "not_now":
        come_back_at = _come_back_moment(session, come_back, now=now, default_days=int(recycle_days["not_now"]))
    seen = _load(session, actor, assignment_id)
    version = _check_version(seen, expected_version)
    to_stage = Stage.DISQUALIFIED if reason in (settings.get("disqualify_reasons") or []) else Stage.RECYCLED
    recycle_at = None
    if to_stage == Stage.RECYCLED:
        recycle_at = come_back_at or now + timedelta(days=int(recycle_days.get(reason, 30)))
    _close(session, actor, seen, status=AssignmentStatus.REJECTED, now=now, reason=reason, note=note,
           come_back_at=come_back_at)
    text = f"rejected: {reason}" + (f" — {note}" if note else "")
    _move(session, seen, to_stage=to_stage, now=now, actor=actor, version=version, reason=text[:2000],
          owner_id=None, recycle_at=recycle_at)
    audit.record(session, actor_id=actor.id or None, action="assignment.reject", entity="assignment",
                 entity_id=assignment_id,
                 detail={"lead_id": seen.lead_id, "reason": reason, "note": note, "stage": str(to_stage),
                         "come_back_at": come_back_at.isoformat() if come_back_at else None}, now=now)
    return str(to_stage)


def _team_rep(session: Session, actor: Actor, rep_id: int) -> User:
    rep = session.get(User, rep_id)
    if rep is None:
        raise NotFound(f"Not found: user {rep_id}.", what=f"#{rep_id}")
    if not rep.active or rep.role not in (Role.SALES, Role.MANAGER):
        raise ValidationError(f"{rep.display_name} cannot take MQLs.", key="routing.rep_unavailable",
                              rep=rep.display_name)
    if actor.role == Role.MANAGER and rep_id not in (actor.id, *actor.team_ids):
        raise NotYourLead(f"{rep.display_name} is not in your team.", key="routing.not_in_team",
                          rep=rep.display_name)
    return rep


def reassign(
    *, session: Session, actor: Actor, assignment_id: int, to_rep_id: int, now: datetime, note: str = "",
    expected_version: int | None = None,
) -> int:
    """A manager gives a pending MQL to another rep of the team, with a fresh SLA. Returns the new assignment."""
    require(actor, "team_inbox")
    seen = _load(session, actor, assignment_id)
    _check_version(seen, expected_version)
    rep = _team_rep(session, actor, int(to_rep_id))
    if rep.id == seen.rep_id:
        raise ValidationError("The MQL is already with this rep.", key="routing.same_rep")
    _close(session, actor, seen, status=AssignmentStatus.REASSIGNED, now=now, note=(note or "").strip()[:2000])
    table = Lead.__table__
    moved = session.execute(update(table).where(table.c.id == seen.lead_id, table.c.version == seen.lead_version)
                            .values(updated_at=now))
    if moved.rowcount != 1:
        raise LeadChanged("This lead changed since your page showed it. Refresh and look again.",
                          detail=f"#{seen.lead_id}")
    manager = session.get(User, actor.id) if actor.id else None
    frame = create_assignments(
        session=session, now=now,
        choices=[{"lead_id": seen.lead_id, "rep_id": rep.id,
                  "routed_by": routed_by("manual", manager.display_name if manager else actor.display_name)}],
    )
    new_id = int(frame["assignment_id"].iloc[0])
    audit.record(session, actor_id=actor.id or None, action="assignment.reassign", entity="assignment",
                 entity_id=assignment_id,
                 detail={"lead_id": seen.lead_id, "from_rep_id": seen.rep_id, "to_rep_id": rep.id,
                         "new_assignment_id": new_id, "note": note}, now=now)
    return new_id


def assign_lead(*, session: Session, actor: Actor, lead_id: int, rep_id: int, now: datetime) -> int:
    """A manager hands an MQL that no rule could route (everyone full or away) to a rep of the team."""
    require(actor, "team_inbox")
    lead = session.get(Lead, lead_id)
    if lead is None or lead.status != LeadStatus.VALID:
        raise NotFound(f"Not found: lead {lead_id}.", what=f"#{lead_id}")
    if lead.stage != Stage.MQL or lead.owner_id is not None:
        raise ValidationError("Only an MQL that nobody owns can be handed out here.", key="routing.not_waiting")
    pending = session.scalar(select(Assignment.id).where(Assignment.lead_id == lead_id,
                                                         Assignment.status == AssignmentStatus.PENDING))
    if pending is not None:
        raise ValidationError("Only an MQL that nobody owns can be handed out here.", key="routing.not_waiting")
    rep = _team_rep(session, actor, int(rep_id))
    manager = session.get(User, actor.id) if actor.id else None
    frame = create_assignments(
        session=session, now=now,
        choices=[{"lead_id": lead_id, "rep_id": rep.id,
                  "routed_by": routed_by("manual", manager.display_name if manager else actor.display_name)}],
    )
    new_id = int(frame["assignment_id"].iloc[0])
    audit.record(session, actor_id=actor.id or None, action="assignment.assign", entity="assignment",
                 entity_id=new_id, detail={"lead_id": lead_id, "rep_id": rep.id}, now=now)
    return new_id


# ---------------------------------------------------------------------------------------------------------------
# The manager's view
# ---------------------------------------------------------------------------------------------------------------
WAITING_COLUMNS = ["lead_id", "name", "company", "province", "city", "industry", "product_interest", "grade",
                   "engagement_score", "channel", "mql_at", "version"]


def waiting_mqls(*, session: Session, actor: Actor, limit: int = 200) -> pd.DataFrame:
    """MQLs that no rep holds (no rule could route them): the manager hands them out by hand."""
    require(actor, "team_inbox")
    pending = select(Assignment.id).where(Assignment.lead_id == Lead.id,
                                          Assignment.status == AssignmentStatus.PENDING).exists()
    rows = session.execute(
        select(Lead.id.label("lead_id"), Lead.name, Lead.company, Lead.province, Lead.city, Lead.industry,
               Lead.product_interest, Lead.grade, Lead.engagement_score, Channel.name.label("channel"),
               Lead.stage_changed_at.label("mql_at"), Lead.version)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .where(Lead.stage == Stage.MQL, Lead.status == LeadStatus.VALID, Lead.owner_id.is_(None),
               Lead.followup_owner_id.is_(None), ~pending)
        .order_by(Lead.stage_changed_at.asc().nulls_last(), Lead.id)
        .limit(limit)
    ).all()
    return pd.DataFrame([r._asdict() for r in rows], columns=WAITING_COLUMNS)


def team_reps(*, session: Session, actor: Actor) -> pd.DataFrame:
    """Reps ``actor`` may hand MQLs to, with their open load and availability."""
    require(actor, "team_inbox")
    statement = select(User.id, User.display_name, User.capacity, User.out_of_office).where(
        User.active.is_(True), User.role.in_([Role.SALES, Role.MANAGER]))
    if actor.role == Role.MANAGER:
        statement = statement.where(User.id.in_((actor.id, *actor.team_ids)))
    frame = pd.DataFrame([r._asdict() for r in session.execute(statement.order_by(User.id)).all()],
                         columns=["id", "display_name", "capacity", "out_of_office"])
    loads = open_loads(session, frame["id"].tolist())
    frame["load"] = frame["id"].map(lambda i: loads.get(int(i), 0)).astype(int)
    return frame


def _require_figures(actor: Actor) -> None:
    """Managers read these for their team; marketing and reports read them for everyone (which sources send
    leads sales does not want)."""
    if not actor.can("reports"):
        require(actor, "team_inbox")


def _scoped_assignments(session: Session, actor: Actor, since: datetime | None) -> pd.DataFrame:
    statement = (
        select(Assignment.id, Assignment.rep_id, User.display_name.label("rep"), Assignment.status,
               Assignment.reason, Assignment.breached, Assignment.assigned_at, Assignment.sla_due_at,
               Assignment.decided_at, Channel.name.label("channel"))
        .join(User, User.id == Assignment.rep_id)
        .join(Lead, Lead.id == Assignment.lead_id)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .where(assignment_scope(actor))
    )
    if since is not None:
        statement = statement.where(Assignment.assigned_at >= since)
    return pd.DataFrame([r._asdict() for r in session.execute(statement).all()],
                        columns=["id", "rep_id", "rep", "status", "reason", "breached", "assigned_at", "sla_due_at",
                                 "decided_at", "channel"])


SLA_COLUMNS = ["rep", "pending", "overdue", "accepted", "rejected", "reassigned", "breached", "breach_rate",
               "median_response_hours"]


def sla_summary(*, session: Session, actor: Actor, now: datetime, since: datetime | None = None) -> pd.DataFrame:
    """Per rep: open MQLs, how many are overdue now, decisions, SLA breaches and the median working hours to
    decide — for assignments handed out since ``since``."""
    _require_figures(actor)
    frame = _scoped_assignments(session, actor, since)
    if frame.empty:
        return pd.DataFrame(columns=SLA_COLUMNS)
    calendar, _ = sla_calendar(session)
    due = pd.to_datetime(frame["sla_due_at"], utc=True)
    pending = frame["status"] == AssignmentStatus.PENDING
    frame["overdue"] = pending & (due < pd.Timestamp(now))
    frame["breach"] = frame["breached"].fillna(False).astype(bool) | frame["overdue"]
    decided = frame[frame["decided_at"].notna() & (frame["status"] != AssignmentStatus.REASSIGNED)]
    frame["response"] = None
    if not decided.empty:
        frame.loc[decided.index, "response"] = [
            calendar.between(a, d) for a, d in zip(decided["assigned_at"], decided["decided_at"], strict=True)
        ]
    counts = frame.assign(**{s: frame["status"] == s for s in ("pending", "accepted", "rejected", "reassigned")})
    out = counts.groupby("rep", as_index=False).agg(
        pending=("pending", "sum"), overdue=("overdue", "sum"), accepted=("accepted", "sum"),
        rejected=("rejected", "sum"), reassigned=("reassigned", "sum"), breached=("breach", "sum"),
        assignments=("id", "count"),
        median_response_hours=("response", lambda s: pd.to_numeric(s, errors="coerce").median()),
    )
    out["breach_rate"] = (out["breached"] / out["assignments"].where(out["assignments"] > 0)).fillna(0.0)
    out["median_response_hours"] = pd.to_numeric(out["median_response_hours"], errors="coerce").round(1)
    return out.sort_values(["breached", "rep"], ascending=[False, True], ignore_index=True)[SLA_COLUMNS]


def rejections_by_channel(*, session: Session, actor: Actor, since: datetime | None = None) -> pd.DataFrame:
    """Rejected MQLs per source channel and reason code (``channel``, ``reason``, ``n``): which sources send
    leads sales does not want."""
    _require_figures(actor)
    decided_since = [] if since is None else [Assignment.decided_at >= since]
    rows = session.execute(
        select(Channel.name.label("channel"), Assignment.reason, func.count().label("n"))
        .join(Lead, Lead.id == Assignment.lead_id)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .where(and_(Assignment.status == AssignmentStatus.REJECTED, assignment_scope(actor), *decided_since))
        .group_by(Channel.name, Assignment.reason)
    ).all()
    frame = pd.DataFrame([r._asdict() for r in rows], columns=["channel", "reason", "n"])
    frame["channel"] = frame["channel"].fillna("—")
    return frame.sort_values(["n", "channel", "reason"], ascending=[False, True, True], ignore_index=True)


# ---------------------------------------------------------------------------------------------------------------
# Notifications in the app
# ---------------------------------------------------------------------------------------------------------------
def my_notifications(*, session: Session, actor: Actor, unread_only: bool = True, limit: int = 20) -> pd.DataFrame:
    """The in-app notes for ``actor``: new MQLs, SLA reminders, what their leads just did."""
    statement = (select(Message.id, Message.created_at, Message.subject, Message.body, Message.lead_id,
                        Message.read_at)
                 .where(Message.channel == "notify", Message.user_id == actor.id))
    if unread_only:
        statement = statement.where(Message.read_at.is_(None))
    rows = session.execute(statement.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)).all()
    return pd.DataFrame([r._asdict() for r in rows],
                        columns=["id", "created_at", "subject", "body", "lead_id", "read_at"])


def mark_read(*, session: Session, actor: Actor, message_ids: list[int], now: datetime) -> int:
    """Mark ``actor``'s own notes as read (someone else's are left alone)."""
    if not message_ids:
        return 0
    table = Message.__table__
    result = session.execute(
        update(table).where(table.c.id.in_([int(i) for i in message_ids]), table.c.user_id == actor.id,
                            table.c.channel == "notify", table.c.read_at.is_(None))
        .values(read_at=now)
    )
    return int(result.rowcount or 0)

