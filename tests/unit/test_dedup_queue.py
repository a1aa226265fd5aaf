"""The database side: checking new leads, the nightly scan, review actions, "not the same person" remembered,
follow-up flags, invalid-lead cleanup — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.auth import SYSTEM
from core.dedup import (
    bulk_merge,
    check_new_leads,
    count_candidates,
    delete_invalid,
    list_candidates,
    list_invalid,
    mark_not_duplicate,
    merge_candidate,
    pair_detail,
    preview_thresholds,
    restore_invalid,
    save_thresholds,
    scan_all,
    skip,
    thresholds,
    unmerge,
)
from core.errors import PermissionDenied, ValidationError
from core.settings import set_setting
from db.models import AuditLog, CandidateStatus, DuplicateCandidate, Lead, LeadStatus, MergeRecord, Touchpoint
from tests.unit.test_dedup_merge import NOW, add_history, add_lead


def _status(session, lead_id):
    return session.scalar(select(Lead.status).where(Lead.id == lead_id))


def test_new_leads_merge_when_certain_queue_when_likely_and_flag_followups(session, make_actor):
    rep = make_actor("sales", display_name="王销售")
    owned = add_lead(session, name="陈静", phone="+8613700001111", company="深圳图源医疗器械有限公司",
                     owner_id=rep.id, stage="sal")
    base = add_lead(session, name="张伟", phone="+8613812345678", company="上海某某科技有限公司")
    customer = add_lead(session, name="刘洋", email="liu.yang@acme.cn", company="Acme", is_customer=True)
    session.commit()
    same_phone = add_lead(session, name="Zhang Wei", phone="+8613812345678")  # certain
    likely = add_lead(session, name="Chen Jing", phone="+8613700001112", company="图源医疗器械(深圳)")  # owned
    customer_dup = add_lead(session, name="刘洋", email="liu.yang@acme.cn", phone="+8613900000000")
    session.commit()

    summary = check_new_leads(session=session, lead_ids=[same_phone.id, likely.id, customer_dup.id], now=NOW)
    session.commit()
    assert summary["merged"] == 2
    assert _status(session, same_phone.id) == LeadStatus.MERGED
    assert session.scalar(select(Lead.merged_into_id).where(Lead.id == same_phone.id)) == base.id
    assert _status(session, customer_dup.id) == LeadStatus.MERGED  # merged into the customer
    queued = list_candidates(session=session)
    assert list(zip(queued["left_id"], queued["right_id"], strict=True)) == [(owned.id, likely.id)]
    flagged = session.execute(select(Lead.followup_lead_id, Lead.followup_owner_id).where(Lead.id == likely.id)).one()
    assert tuple(flagged) == (owned.id, rep.id)
    assert session.scalar(select(MergeRecord.automatic).where(MergeRecord.merged_id == same_phone.id)) is True
    assert customer.id  # the customer survived


def test_not_the_same_person_is_never_proposed_again(session, make_actor):
    marketer = make_actor("marketer")
    a = add_lead(session, name="李娜", company="上海云杉科技有限公司", title="CTO")
    b = add_lead(session, name="Li Na", company="云杉科技", title="CTO")
    session.commit()
    scan_all(session=session, now=NOW)
    session.commit()
    (candidate_id,) = list_candidates(session=session)["id"]
    mark_not_duplicate(session=session, actor=marketer, candidate_ids=[candidate_id], now=NOW)
    session.commit()
    assert count_candidates(session=session) == 0
    scan_all(session=session, now=NOW + timedelta(days=1))
    check_new_leads(session=session, lead_ids=[b.id], now=NOW + timedelta(days=1))
    session.commit()
    assert count_candidates(session=session) == 0
    assert session.scalar(select(DuplicateCandidate.status)) == CandidateStatus.NOT_DUPLICATE
    assert {_status(session, a.id), _status(session, b.id)} == {LeadStatus.VALID}
    assert session.scalar(select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "dedup.not_duplicate")) == 1


def test_review_actions_merge_with_choices_skip_and_bulk(session, make_actor):
    marketer, manager = make_actor("marketer"), make_actor("manager")
    pairs = []
    for k, (x, y) in enumerate([("王芳", "Wang Fang"), ("赵磊", "Zhao Lei"), ("孙丽", "Sun Li")]):
        pairs.append((add_lead(session, name=x, company=f"华信{k}号物流有限公司", title="经理"),
                      add_lead(session, name=y, company=f"华信{k}号物流", title="总监")))
    add_history(session, pairs[0][1], touches=3)
    session.commit()
    scan_all(session=session, now=NOW)
    session.commit()
    queue = list_candidates(session=session)
    assert len(queue) == 3
    by_left = {int(r.left_id): int(r.id) for r in queue.itertuples()}
    first = by_left[pairs[0][0].id]
    detail = pair_detail(session=session, actor=manager, candidate_id=first)
    fields = detail["fields"].set_index("field")
    assert bool(fields.at["name", "differs"]) and bool(fields.at["title", "differs"])
    assert not bool(fields.at["company", "differs"]) or fields.at["company", "left"] != fields.at["company", "right"]
    assert detail["touchpoint_counts"][pairs[0][1].id] == 3
    with pytest.raises(PermissionDenied):  # a manager may look but not decide
        skip(session=session, actor=manager, candidate_ids=[first], now=NOW)
    merge_id = merge_candidate(session=session, actor=marketer, candidate_id=first, now=NOW,
                               choices={"title": pairs[0][0].id, "name": pairs[0][0].id})
    session.commit()
    survivor = session.get(Lead, pairs[0][0].id)
    session.refresh(survivor)
    assert survivor.title == "经理" and survivor.name == "王芳"
    assert session.scalar(select(func.count()).select_from(Touchpoint).where(Touchpoint.lead_id == survivor.id)) == 3
    skip(session=session, actor=marketer, candidate_ids=[by_left[pairs[1][0].id]], now=NOW)
    session.commit()
    assert count_candidates(session=session) == 1
    assert count_candidates(session=session, status=CandidateStatus.SKIPPED) == 1
    done = bulk_merge(session=session, actor=marketer, candidate_ids=[by_left[pairs[1][0].id],
                                                                      by_left[pairs[2][0].id]], now=NOW)
    session.commit()
    assert done == 2 and count_candidates(session=session) == 0
    assert _status(session, pairs[2][1].id) == LeadStatus.MERGED
    # Undo from the lead's history: the pair is pending again and both leads are back.
    unmerge(session=session, actor=marketer, merge_id=merge_id, now=NOW)
    session.commit()
    assert _status(session, pairs[0][1].id) == LeadStatus.VALID
    assert session.scalar(select(DuplicateCandidate.status).where(DuplicateCandidate.id == first)) == "pending"


def test_thresholds_come_from_the_team_setting(session):
    a = add_lead(session, name="周杰", phone="+8613600000001")
    b = add_lead(session, name="周杰", phone="+8613600000001")
    set_setting(session, "dedup", {"auto_merge": 1.0, "review": 0.5})
    session.commit()
    summary = scan_all(session=session, now=NOW)
    session.commit()
    assert summary["merged"] == 0 and summary["queued"] == 1
    assert {_status(session, a.id), _status(session, b.id)} == {LeadStatus.VALID}
    set_setting(session, "dedup", {"auto_merge": 0.4, "review": 0.9})
    with pytest.raises(ValidationError):
        scan_all(session=session, now=NOW)


def test_an_admin_previews_and_saves_the_thresholds_and_the_scan_follows_them(session, make_actor):
    admin, marketer = make_actor("admin"), make_actor("marketer")
    a = add_lead(session, name="周杰", phone="+8613600000001")
    b = add_lead(session, name="周杰", phone="+8613600000001")
    leads = [add_lead(session, name=f"路人{k}") for k in range(4)]
    for k, score in enumerate((0.97, 0.9, 0.7, 0.55)):
        session.add(DuplicateCandidate(left_id=leads[k].id, right_id=(leads + [a])[k + 1].id, score=score,
                                       reasons=[]))
    session.commit()
    figures = preview_thresholds(session=session, actor=admin, auto=0.85, review=0.6)
    assert (figures["pending"], figures["automatic"], figures["review_band"], figures["below"]) == (4, 2, 1, 1)
    assert (figures["current_automatic"], figures["current_review_band"], figures["current_below"]) == (1, 2, 1)
    assert (figures["current_auto"], figures["current_review"]) == (0.95, 0.6)
    for auto, review in ((0.6, 0.6), (0.5, 0.7), (1.2, 0.5), (0.9, -0.1), ("x", 0.5)):
        with pytest.raises(ValidationError):
            save_thresholds(session=session, actor=admin, auto=auto, review=review, now=NOW)
        with pytest.raises(ValidationError):
            preview_thresholds(session=session, actor=admin, auto=auto, review=review)
    for role in ("marketer", "manager", "sales"):  # only an admin changes them, or previews a change
        with pytest.raises(PermissionDenied):
            save_thresholds(session=session, actor=make_actor(role), auto=0.9, review=0.5, now=NOW)
    with pytest.raises(PermissionDenied):
        preview_thresholds(session=session, actor=marketer, auto=0.9, review=0.5)
    # An exact same phone and name scores above 0.95: with the automatic threshold at 1.0 it waits for review.
    save_thresholds(session=session, actor=admin, auto=1.0, review=0.5, now=NOW)
    session.commit()
    assert thresholds(session) == (1.0, 0.5)
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "settings.dedup")).one()
    assert entry.user_id == admin.id and entry.detail["before"] == {"auto_merge": 0.95, "review": 0.6}
    assert entry.detail["after"] == {"auto_merge": 1.0, "review": 0.5}
    summary = scan_all(session=session, now=NOW)
    session.commit()
    assert summary["merged"] == 0 and summary["queued"] == 1
    assert {_status(session, a.id), _status(session, b.id)} == {LeadStatus.VALID}
    # A setting stored before the Admin tab existed with no review band still reads (imports keep working).
    set_setting(session, "dedup", {"auto_merge": 0.9, "review": 0.9})
    assert thresholds(session) == (0.9, 0.9)


def test_invalid_leads_restore_and_delete_for_good(session, make_actor):
    marketer = make_actor("marketer")
    keep = add_lead(session, name="测试", phone=None, status="invalid", invalid_reason="no_contact")
    gone = add_lead(session, name="test test", status="invalid", invalid_reason="test_entry")
    gone2 = add_lead(session, name="asdf", status="invalid", invalid_reason="blocklisted")
    add_history(session, gone, touches=2, tags=())
    session.commit()
    listed = list_invalid(session=session, actor=marketer)
    assert set(listed["id"]) == {keep.id, gone.id, gone2.id}
    assert set(listed["invalid_reason"]) == {"no_contact", "test_entry", "blocklisted"}
    restore_invalid(session=session, actor=marketer, lead_ids=[keep.id], now=NOW)
    session.commit()
    assert _status(session, keep.id) == LeadStatus.VALID
    with pytest.raises(ValidationError):  # the person confirmed a different number
        delete_invalid(session=session, actor=marketer, lead_ids=[gone.id, gone2.id, keep.id], confirm_count=3,
                       now=NOW)
    session.rollback()
    deleted = delete_invalid(session=session, actor=marketer, lead_ids=[gone.id, gone2.id, keep.id],
                             confirm_count=2, now=NOW)
    session.commit()
    assert deleted == 2
    assert session.scalar(select(func.count()).select_from(Lead).where(Lead.id.in_((gone.id, gone2.id)))) == 0
    assert session.scalar(select(func.count()).select_from(Touchpoint).where(Touchpoint.lead_id == gone.id)) == 0
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "dedup.delete_invalid")).one()
    assert entry.detail["count"] == 2 and entry.user_id == marketer.id
    with pytest.raises(PermissionDenied):
        list_invalid(session=session, actor=make_actor("sales"))


def test_the_system_runs_the_scan_and_sales_cannot(session, make_actor):
    with pytest.raises(PermissionDenied):
        scan_all(session=session, now=NOW, actor=make_actor("sales"))
    assert scan_all(session=session, now=NOW, actor=SYSTEM)["pairs"] == 0
