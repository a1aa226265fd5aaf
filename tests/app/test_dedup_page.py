"""The Dedup page: side-by-side review, merge with chosen values, not the same person, skip, bulk actions,
invalid leads (restore, delete for good) and undo from the merge history."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from core import normalize
from core.i18n import t
from db.engine import make_engine
from db.models import CandidateStatus, DuplicateCandidate, Lead, LeadStatus, MergeRecord
from tests.app.conftest import logged_in

PAGE = "pages/dedup.py"


@pytest.fixture
def database(app_database):  # noqa: ANN001, ANN201
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


def make_lead(session: Session, **fields) -> int:
    keys = normalize.lead_keys(pd.DataFrame([{k: fields.get(k) for k in ("name", "phone", "email", "company",
                                                                         "wechat_id")}]))
    now = datetime.now(UTC)
    lead = Lead(**fields, name_key=keys.at[0, "name_key"], company_key=keys.at[0, "company_key"],
                search_text=keys.at[0, "search_text"], created_at=now, updated_at=now)
    session.add(lead)
    session.flush()
    return lead.id


def make_pair(engine, tag: str, score: float = 0.94) -> tuple[int, int, int]:
    """Two leads that look alike and their review pair (each test makes its own: the database is shared)."""
    with Session(engine) as session:
        left = make_lead(session, name=f"审核{tag}", company=f"{tag}科技有限公司", title="经理")
        right = make_lead(session, name=f"Shen He {tag}", company=f"{tag}科技", title="总监")
        candidate = DuplicateCandidate(left_id=left, right_id=right, score=score, reasons=["name:pinyin",
                                                                                          "company:exact"])
        session.add(candidate)
        session.commit()
        return candidate.id, left, right


def test_review_shows_the_pair_side_by_side_and_not_the_same_person_is_remembered(database):
    candidate_id, _, _ = make_pair(database, "甲一")
    at = open_page()
    at.selectbox(key="dedup_pair").set_value(candidate_id)
    at.run()
    assert at.metric[0].value != "0"
    assert len(at.dataframe) >= 2, "the queue and the side-by-side comparison"
    shown = " ".join(str(m.value) for m in at.markdown)
    assert t("dedup.reasons", "zh") in shown and t("dedup.level.pinyin", "zh") in shown
    button(at, "dedup_not_dup").click()
    at.run()
    assert not at.exception
    assert candidate_status(database, candidate_id) == CandidateStatus.NOT_DUPLICATE
    assert at.success, "the outcome is confirmed"


def test_skip_then_merge_with_a_chosen_survivor_and_undo(database):
    skipped, _, _ = make_pair(database, "乙二")
    candidate_id, left_id, right_id = make_pair(database, "丙三")
    at = open_page()
    at.selectbox(key="dedup_pair").set_value(skipped)
    at.run()
    button(at, "dedup_skip").click()
    at.run()
    assert candidate_status(database, skipped) == CandidateStatus.SKIPPED
    at.selectbox(key="dedup_pair").set_value(candidate_id)
    at.run()
    at.radio(key="dedup_survivor").set_value(right_id)
    at.radio(key="dedup_choice_title").set_value(left_id)
    button(at, t("dedup.action_merge", "zh")).click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with Session(database) as session:
        assert session.scalar(select(Lead.status).where(Lead.id == left_id)) == LeadStatus.MERGED
        assert session.scalar(select(Lead.merged_into_id).where(Lead.id == left_id)) == right_id
        assert session.scalar(select(Lead.title).where(Lead.id == right_id)) == "经理"
    assert candidate_status(database, candidate_id) == CandidateStatus.MERGED
    # Undo it from the lead's merge history.
    at.number_input(key="dedup_history_lead").set_value(right_id)
    at.run()
    button(at, "dedup_undo").click()
    at.run()
    assert not at.exception and not at.error
    with Session(database) as session:
        assert session.scalar(select(Lead.status).where(Lead.id == left_id)) == LeadStatus.VALID
        assert session.scalar(select(Lead.title).where(Lead.id == right_id)) == "总监"
        assert session.scalar(select(MergeRecord.undone_at).where(MergeRecord.merged_id == left_id)) is not None


def test_bulk_not_the_same_person(database):
    ids = [make_pair(database, "丁四")[0], make_pair(database, "戊五")[0]]
    at = open_page()
    at.multiselect(key="dedup_bulk_ids").set_value(ids)
    at.radio(key="dedup_bulk_action").set_value("not_duplicate")
    button(at, t("dedup.bulk_apply", "zh")).click()
    at.run()
    assert not at.exception and not at.error
    assert {candidate_status(database, i) for i in ids} == {CandidateStatus.NOT_DUPLICATE}


def test_invalid_leads_restore_and_delete_with_confirmation(database):
    with Session(database) as session:
        invalid = [make_lead(session, name=f"无效{k}", phone=f"1111{k}", status="invalid", invalid_reason="测试数据")
                   for k in range(3)]
        session.commit()
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
        assert session.scalar(select(Lead.status).where(Lead.id == invalid[0])) == LeadStatus.VALID
        assert session.scalar(select(func.count()).select_from(Lead).where(Lead.id.in_(invalid[1:3]))) == 0


def test_a_manager_may_look_but_not_decide(database):
    at = open_page("manager")
    assert at.selectbox(key="dedup_pair")
    keys = {b.key for b in at.button}
    assert "dedup_not_dup" not in keys and "dedup_skip" not in keys
    assert not at.error
