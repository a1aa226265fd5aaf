"""The lifecycle stage machine: which stage may follow which, and the StageChange record of every move.

Main track: new → MQL → SAL → SQL → opportunity → won / lost. Side tracks: recycled (back in nurture; may
become MQL again) and disqualified (may be recycled when someone restores it). Forward skips on the main track
are allowed up to opportunity, because sales sometimes meet a lead directly (a trade-show conversation turns
into an SQL); the funnel counts a skipped stage as passed (see core.funnel). Won is final.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlmodel import Session

from core.errors import ConcurrentUpdate, NotFound, Term, ValidationError
from db.models import Lead, Stage, StageChange

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
