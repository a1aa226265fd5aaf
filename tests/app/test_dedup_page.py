"""The Dedup page: side-by-side review, merge with chosen values, not the same person, skip, bulk actions,
invalid leads (restore, delete for good) and undo from the merge history."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from core.i18n import t
from db.engine import make_engine
from db.models import CandidateStatus, DuplicateCandidate, Lead, LeadStatus, MergeRecord
from tests.app.conftest import logged_in

PAGE = "pages/dedup.py"


@pytest.fixture
def database(app_database):
    engine = make_engine(app_database)
    yield engine
    engine.dispose()


def open_page(username: str = "marketer"):
    at = logged_in(username)
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def button(at, key_or_label: str):
    for b in at.button:
        if b.key == key_or_label or b.label == key_or_label:
            return b
    raise AssertionError(f"no button {key_or_label}: {[b.label for b in at.button]}")


def candidate_status(engine, candidate_id: int) -> str:
    with Session(engine) as session:
        return session.scalar(select(DuplicateCandidate.status).where(DuplicateCandidate.id == candidate_id))


def test_review_shows_the_pair_side_by_side_and_not_the_same_person_is_remembered(database):
    at = open_page()
    pair = at.selectbox(key="dedup_pair")
    candidate_id = int(pair.value)
    assert at.metric[0].value != "0"
    assert len(at.dataframe) >= 2, "the queue and the side-by-side comparison"
    assert any(t("dedup.reasons", "zh") in str(m.value) for m in at.markdown)
    button(at, "dedup_not_dup").click()
    at.run()
    assert not at.exception
    assert candidate_status(database, candidate_id) == CandidateStatus.NOT_DUPLICATE
    assert at.success, "the outcome is confirmed"


def test_skip_then_merge_with_a_chosen_survivor(database):
    at = open_page()
    first = int(at.selectbox(key="dedup_pair").value)
    button(at, "dedup_skip").click()
    at.run()
    assert candidate_status(database, first) == CandidateStatus.SKIPPED
    pair = at.selectbox(key="dedup_pair")
    second = int(pair.value)
    assert second != first
    with Session(database) as session:
        candidate = session.get(DuplicateCandidate, second)
        left_id, right_id = candidate.left_id, candidate.right_id
    at.radio(key="dedup_survivor").set_value(right_id)
    button(at, t("dedup.action_merge", "zh")).click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with Session(database) as session:
        assert session.scalar(select(Lead.status).where(Lead.id == left_id)) == LeadStatus.MERGED
        assert session.scalar(select(Lead.merged_into_id).where(Lead.id == left_id)) == right_id
        assert candidate_status(database, second) == CandidateStatus.MERGED
    # Undo it from the lead's merge history.
    at.number_input(key="dedup_history_lead").set_value(right_id)
    at.run()
    button(at, "dedup_undo").click()
    at.run()
    assert not at.exception and not at.error
    with Session(database) as session:
        assert session.scalar(select(Lead.status).where(Lead.id == left_id)) == LeadStatus.VALID
        assert session.scalar(select(MergeRecord.undone_at).where(MergeRecord.merged_id == left_id)) is not None


def test_bulk_not_the_same_person(database):
    at = open_page()
    with Session(database) as session:
        ids = list(session.scalars(select(DuplicateCandidate.id).where(
            DuplicateCandidate.status == CandidateStatus.PENDING).order_by(DuplicateCandidate.id).limit(2)))
    assert len(ids) == 2
    at.multiselect(key="dedup_bulk_ids").set_value(ids)
    at.radio(key="dedup_bulk_action").set_value("not_duplicate")
    button(at, t("dedup.bulk_apply", "zh")).click()
    at.run()
    assert not at.exception and not at.error
    assert {candidate_status(database, i) for i in ids} == {CandidateStatus.NOT_DUPLICATE}


def test_invalid_leads_restore_and_delete_with_confirmation(database):
    with Session(database) as session:
        invalid = list(session.scalars(select(Lead.id).where(Lead.status == LeadStatus.INVALID).order_by(Lead.id)))
    assert len(invalid) >= 3
    at = open_page()
    at.multiselect(key="dedup_invalid_ids").set_value([invalid[0]])
    button(at, t("dedup.restore", "zh")).click()
    at.run()
    assert not at.exception and not at.error
    at.multiselect(key="dedup_invalid_ids").set_value(invalid[1:3])
    at.number_input(key="dedup_delete_confirm").set_value(1)  # wrong count: nothing is deleted
    button(at, t("dedup.delete", "zh")).click()
    at.run()
    assert at.error
    at.multiselect(key="dedup_invalid_ids").set_value(invalid[1:3])
    at.number_input(key="dedup_delete_confirm").set_value(2)
    button(at, t("dedup.delete", "zh")).click()
    at.run()
    assert not at.exception
    with Session(database) as session:
        assert session.scalar(select(Lead.status).where(Lead.id == invalid[0])) in (LeadStatus.VALID,
                                                                                     LeadStatus.MERGED)
        assert session.scalar(select(func.count()).select_from(Lead).where(Lead.id.in_(invalid[1:3]))) == 0


def test_a_manager_may_look_but_not_decide(database):
    at = open_page("manager")
    assert at.selectbox(key="dedup_pair")
    keys = {b.key for b in at.button}
    assert "dedup_not_dup" not in keys and "dedup_skip" not in keys
    assert not at.error
