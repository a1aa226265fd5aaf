"""The stage machine: every allowed and every refused transition, bulk moves, and optimistic locking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from core.errors import ConcurrentUpdate
from core.lifecycle import ALLOWED, InvalidTransition, change_stage, change_stages, stage_rank
from db.models import Lead, Stage, StageChange

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PAIRS = [(a.value, b.value) for a in Stage for b in Stage if a != b]


def _lead(session, stage: str = Stage.NEW) -> int:
    lead = Lead(name="王芳", stage=stage)
    session.add(lead)
    session.commit()
    return lead.id


@pytest.mark.parametrize(("from_stage", "to_stage"), PAIRS)
def test_every_transition_is_either_allowed_or_refused(session, from_stage, to_stage):
    lead_id = _lead(session, from_stage)
    if to_stage in ALLOWED[from_stage]:
        change = change_stage(session=session, lead_id=lead_id, to_stage=to_stage, now=NOW, reason="test")
        session.commit()
        assert (change.from_stage, change.to_stage) == (from_stage, to_stage)
        assert session.get(Lead, lead_id).stage == to_stage
    else:
        with pytest.raises(InvalidTransition) as caught:
            change_stage(session=session, lead_id=lead_id, to_stage=to_stage, now=NOW)
        session.rollback()
        assert session.get(Lead, lead_id).stage == from_stage
        assert session.exec(select(StageChange).where(StageChange.lead_id == lead_id)).all() == []
        assert "“" in caught.value.localized("zh")


def test_a_recycled_lead_may_become_an_mql_again(session):
    lead_id = _lead(session)
    for stage in (Stage.MQL, Stage.RECYCLED, Stage.MQL):
        change_stage(session=session, lead_id=lead_id, to_stage=stage, now=NOW)
    session.commit()
    history = session.exec(select(StageChange.to_stage).where(StageChange.lead_id == lead_id)
                           .order_by(StageChange.id)).all()
    assert history == ["mql", "recycled", "mql"]


def test_the_loser_of_two_simultaneous_changes_is_told(session):
    lead_id = _lead(session, Stage.MQL)
    seen = session.get(Lead, lead_id).version
    change_stage(session=session, lead_id=lead_id, to_stage=Stage.SAL, now=NOW, expected_version=seen)
    session.commit()
    with pytest.raises(ConcurrentUpdate):
        change_stage(session=session, lead_id=lead_id, to_stage=Stage.RECYCLED, now=NOW, expected_version=seen)
    session.rollback()
    assert session.get(Lead, lead_id).stage == Stage.SAL


def test_bulk_moves_only_the_leads_that_may_move(session):
    movable = [_lead(session, Stage.NEW) for _ in range(3)] + [_lead(session, Stage.RECYCLED)]
    stuck = [_lead(session, Stage.WON), _lead(session, Stage.SAL)]
    moved = change_stages(session=session, lead_ids=movable + stuck, to_stage=Stage.MQL,
                          now=NOW + timedelta(hours=1), by_rule="MQL line")
    session.commit()
    assert sorted(moved) == sorted(movable)
    changes = session.exec(select(StageChange)).all()
    assert len(changes) == 4 and {c.by_rule for c in changes} == {"MQL line"}
    assert {session.get(Lead, i).stage for i in stuck} == {Stage.WON, Stage.SAL}


def test_rank_orders_the_main_track():
    assert stage_rank("new") < stage_rank("mql") < stage_rank("sal") < stage_rank("sql") < stage_rank("won")
    assert stage_rank("lost") == stage_rank("opportunity")
