"""The handoff end to end in core: becoming an MQL, accept / reject / reassign round trips, "not now"
come-backs, role isolation, and two people acting on one MQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import select

from core.errors import ConcurrentUpdate, PermissionDenied, ValidationError
from core.lifecycle import disqualify, promote_to_mql, recycle, return_due
from core.routing import accept, assign_lead, inbox, lead_history, reassign, reject, waiting_mqls
from core.routing.errors import AlreadyDecided, LeadChanged, NotYourLead
from core.settings import set_setting
from db.models import (
    Assignment,
    AuditLog,
    Lead,
    LeadStatus,
    Message,
    ScoreEvent,
    Stage,
    StageChange,
    Touchpoint,
)
from tests.unit.handoff_helpers import NOW, build_team, demo_rules, make_lead, set_rep


@pytest.fixture
def team(session):
    team = build_team(session)
    demo_rules(session, team)
    return team


def _assignment(session, lead_id: int) -> Assignment:
    session.expire_all()
    return session.exec(select(Assignment).where(Assignment.lead_id == lead_id).order_by(Assignment.id.desc())).first()


def _mql(session, province: str = "上海", **fields) -> tuple[int, Assignment]:
    lead_id = make_lead(session, province=province, **fields)
    promote_to_mql(session=session, lead_ids=[lead_id], now=NOW, by_rule="MQL 线")
    session.commit()
    return lead_id, _assignment(session, lead_id)


def _version(session, lead_id: int) -> int:
    session.expire_all()
    return session.get(Lead, lead_id).version


# -- becoming an MQL --------------------------------------------------------------------------------------------
def test_crossing_the_mql_line_routes_new_leads(session, team):
    new = make_lead(session, province="上海", grade="A", engagement_score=72)
    recycled = make_lead(session, Stage.RECYCLED, province="北京")
    won = make_lead(session, Stage.WON, owner_id=team.rep2.id)
    invalid = make_lead(session, status=LeadStatus.INVALID)
    report = promote_to_mql(session=session, lead_ids=[new, recycled, won, invalid], now=NOW, by_rule="MQL 线")
    session.commit()
    assert report.promoted == sorted([new, recycled])
    assert report.routed == {new: team.rep1.id, recycled: team.rep2.id}
    assert sorted(report.skipped) == sorted([won, invalid])
    change = session.exec(select(StageChange).where(StageChange.lead_id == new)).one()
    assert (change.from_stage, change.to_stage, change.by_rule, change.by_user_id) == ("new", "mql", "MQL 线", None)
    assert session.get(Lead, new).owner_id == team.rep1.id
    note = session.exec(select(Message).where(Message.user_id == team.rep1.id, Message.channel == "notify")).one()
    assert "王芳" in note.subject


def test_an_owned_lead_is_not_routed_again_its_owner_is_told(session, team):
    with_sales = make_lead(session, Stage.SAL, owner_id=team.rep3.id, province="上海")
    followed = make_lead(session, followup_owner_id=team.rep2.id, province="上海")
    owned_new = make_lead(session, owner_id=team.rep4.id, province="上海")
    report = promote_to_mql(session=session, lead_ids=[with_sales, followed, owned_new], now=NOW, by_rule="MQL 线")
    session.commit()
    assert report.owner_notified == {with_sales: team.rep3.id, followed: team.rep2.id}
    assert session.get(Lead, with_sales).stage == Stage.SAL and session.get(Lead, followed).stage == Stage.NEW
    # The owned new lead becomes an MQL in its owner's inbox, not routed by the rules.
    assert report.routed == {owned_new: team.rep4.id}
    assert _assignment(session, owned_new).routed_by == "owner: 周凯"
    assert _assignment(session, with_sales) is None and _assignment(session, followed) is None
    notes = session.exec(select(Message.user_id, Message.lead_id).where(Message.idempotency_key.like("mql-owner:%"))).all()
    assert sorted(notes) == sorted([(team.rep3.id, with_sales), (team.rep2.id, followed)])
    # Crossing again the same day does not repeat the note.
    promote_to_mql(session=session, lead_ids=[with_sales], now=NOW + timedelta(hours=1), by_rule="MQL 线")
    session.commit()
    assert len(session.exec(select(Message).where(Message.idempotency_key.like("mql-owner:%"))).all()) == 2


def test_a_marketer_promotes_by_hand_and_a_rep_cannot(session, team):
    lead = make_lead(session, province="广东")
    report = promote_to_mql(session=session, lead_ids=[lead], now=NOW, actor=team.marketer, reason="展会上当面聊过")
    session.commit()
    assert report.routed == {lead: team.rep1.id} or report.routed  # routed by the rules
    change = session.exec(select(StageChange).where(StageChange.lead_id == lead)).one()
    assert change.by_user_id == team.marketer.id and change.reason == "展会上当面聊过"
    assert session.exec(select(AuditLog).where(AuditLog.action == "lead.promote_mql")).one().user_id == team.marketer.id
    with pytest.raises(PermissionDenied):
        promote_to_mql(session=session, lead_ids=[make_lead(session)], now=NOW, actor=team.rep1)


def test_mqls_nobody_could_take_wait_for_the_manager(session, team):
    for rep in (team.rep1, team.rep2, team.rep3, team.rep4):
        set_rep(session, rep, out_of_office=True)
    lead = make_lead(session, province="上海")
    report = promote_to_mql(session=session, lead_ids=[lead], now=NOW, by_rule="MQL 线")
    session.commit()
    assert report.unrouted == [lead] and session.get(Lead, lead).stage == Stage.MQL
    assert waiting_mqls(session=session, actor=team.manager)["lead_id"].tolist() == [lead]
    new_id = assign_lead(session=session, actor=team.manager, lead_id=lead, rep_id=team.rep2.id, now=NOW)
    session.commit()
    assert session.get(Assignment, new_id).routed_by == "manual: 王强"
    with pytest.raises(NotYourLead):
        assign_lead(session=session, actor=team.manager, lead_id=make_lead(session, Stage.MQL),
                    rep_id=team.outsider.id, now=NOW)


def test_marketing_recycles_and_disqualifies_but_not_what_waits_in_an_inbox(session, team):
    waiting, _ = _mql(session)
    free = make_lead(session, Stage.MQL)
    assert recycle(session=session, actor=team.marketer, lead_ids=[waiting, free], now=NOW, reason="培育") == [free]
    with pytest.raises(ValidationError):
        disqualify(session=session, actor=team.marketer, lead_ids=[free], now=NOW, reason=" ")
    assert disqualify(session=session, actor=team.marketer, lead_ids=[free], now=NOW, reason="学生") == [free]
    with pytest.raises(PermissionDenied):
        recycle(session=session, actor=team.rep1, lead_ids=[free], now=NOW)


# -- accept / reject --------------------------------------------------------------------------------------------
def test_accept_round_trip(session, team):
    lead_id, assignment = _mql(session)
    assert assignment.rep_id == team.rep1.id
    status = accept(session=session, actor=team.rep1, assignment_id=assignment.id, now=NOW + timedelta(hours=1),
                    expected_version=_version(session, lead_id))
    session.commit()
    assert status == "export"  # no CRM webhook configured: the export is the hand-over
    done = _assignment(session, lead_id)
    assert (done.status, done.decided_by_id, done.breached, done.crm_status) == ("accepted", team.rep1.id, False,
                                                                                  "export")
    lead = session.get(Lead, lead_id)
    assert (lead.stage, lead.owner_id) == (Stage.SAL, team.rep1.id)
    moves = session.exec(select(StageChange.to_stage).where(StageChange.lead_id == lead_id)
                         .order_by(StageChange.id)).all()
    assert moves == ["mql", "sal"]
    assert session.exec(select(AuditLog).where(AuditLog.action == "assignment.accept")).one().user_id == team.rep1.id


@pytest.mark.parametrize(("reason", "stage", "days"), [("no_budget", "recycled", 120), ("cannot_reach", "recycled", 30),
                                                      ("competitor", "disqualified", None),
                                                      ("duplicate", "disqualified", None)])
def test_reject_round_trip(session, team, reason, stage, days):
    lead_id, assignment = _mql(session)
    result = reject(session=session, actor=team.rep1, assignment_id=assignment.id, reason=reason, note="客户说明年再谈",
                    now=NOW, expected_version=_version(session, lead_id))
    session.commit()
    assert result == stage
    done = _assignment(session, lead_id)
    assert (done.status, done.reason, done.note) == ("rejected", reason, "客户说明年再谈")
    lead = session.get(Lead, lead_id)
    assert lead.stage == stage and lead.owner_id is None
    assert (lead.recycle_at is None) == (days is None)
    if days:
        assert lead.recycle_at == NOW + timedelta(days=days)
    change = session.exec(select(StageChange).where(StageChange.lead_id == lead_id, StageChange.to_stage == stage)).one()
    assert change.reason == f"rejected: {reason} — 客户说明年再谈" and change.by_user_id == team.rep1.id
    audit = session.exec(select(AuditLog).where(AuditLog.action == "assignment.reject")).one()
    assert audit.detail["reason"] == reason


def test_not_now_comes_back_to_the_same_rep_on_its_date(session, team):
    lead_id, assignment = _mql(session, province="北京")
    reject(session=session, actor=team.rep2, assignment_id=assignment.id, reason="not_now", note="Q2 再联系",
           now=NOW, come_back=date(2027, 3, 1))
    session.commit()
    back = _assignment(session, lead_id).come_back_at
    assert back.isoformat() == "2027-03-01T01:00:00+00:00"  # 09:00 in Shanghai
    assert session.get(Lead, lead_id).recycle_at == back
    assert return_due(session=session, now=back - timedelta(minutes=1)).returned == []
    set_rep(session, team.rep2, capacity=0)  # full: the rep who asked still gets it back
    report = return_due(session=session, now=back + timedelta(minutes=5))
    session.commit()
    assert report.returned == [lead_id] and report.to_same_rep == 1
    again = _assignment(session, lead_id)
    assert (again.rep_id, again.routed_by, again.status) == (team.rep2.id, "come_back: 刘洋", "pending")
    assert session.get(Lead, lead_id).stage == Stage.MQL
    assert return_due(session=session, now=back + timedelta(days=1)).returned == []  # once


def test_not_now_needs_a_future_date_and_reasons_are_a_short_list(session, team):
    lead_id, assignment = _mql(session)
    with pytest.raises(ValidationError):
        reject(session=session, actor=team.rep1, assignment_id=assignment.id, reason="not_now", now=NOW,
               come_back=date(2026, 1, 1))
    with pytest.raises(ValidationError):
        reject(session=session, actor=team.rep1, assignment_id=assignment.id, reason="bored", now=NOW)
    session.rollback()
    assert _assignment(session, lead_id).status == "pending"


# -- two people, one lead ---------------------------------------------------------------------------------------
def test_the_second_action_is_told_who_won(session, team):
    lead_id, assignment = _mql(session)
    seen = _version(session, lead_id)
    accept(session=session, actor=team.rep1, assignment_id=assignment.id, now=NOW, expected_version=seen)
    session.commit()
    with pytest.raises(AlreadyDecided) as caught:  # the second tab
        reject(session=session, actor=team.rep1, assignment_id=assignment.id, reason="no_budget", now=NOW,
               expected_version=seen)
    session.rollback()
    assert "你" in caught.value.localized("zh") and "已接受" in caught.value.localized("zh")
    with pytest.raises(AlreadyDecided) as caught:  # the manager, a moment later
        reject(session=session, actor=team.manager, assignment_id=assignment.id, reason="no_budget", now=NOW)
    session.rollback()
    assert "张伟" in caught.value.localized("zh")
    assert _assignment(session, lead_id).status == "accepted"


def test_a_stale_page_cannot_act(session, team):
    lead_id, assignment = _mql(session)
    seen = _version(session, lead_id)
    session.get(Lead, lead_id).version = seen + 1  # a merge or an edit in between
    session.commit()
    with pytest.raises(LeadChanged):
        accept(session=session, actor=team.rep1, assignment_id=assignment.id, now=NOW, expected_version=seen)
    session.rollback()
    assert _assignment(session, lead_id).status == "pending"


def test_reassign_by_the_manager_and_the_rep_is_told(session, team):
    lead_id, assignment = _mql(session)
    seen = _version(session, lead_id)
    new_id = reassign(session=session, actor=team.manager, assignment_id=assignment.id, to_rep_id=team.rep4.id,
                      now=NOW + timedelta(hours=2), note="张伟休假", expected_version=seen)
    session.commit()
    session.expire_all()
    old, new = session.get(Assignment, assignment.id), session.get(Assignment, new_id)
    assert (old.status, old.note, old.decided_by_id) == ("reassigned", "张伟休假", team.manager.id)
    assert (new.rep_id, new.routed_by, new.status) == (team.rep4.id, "manual: 王强", "pending")
    assert session.get(Lead, lead_id).owner_id == team.rep4.id
    with pytest.raises(AlreadyDecided) as caught:
        accept(session=session, actor=team.rep1, assignment_id=assignment.id, now=NOW, expected_version=seen)
    session.rollback()
    assert "周凯" in caught.value.localized("zh") and "王强" in caught.value.localized("zh")
    with pytest.raises(NotYourLead):
        reassign(session=session, actor=team.manager, assignment_id=new_id, to_rep_id=team.outsider.id, now=NOW)
    session.rollback()
    with pytest.raises(PermissionDenied):
        reassign(session=session, actor=team.rep4, assignment_id=new_id, to_rep_id=team.rep1.id, now=NOW)


# -- who sees and acts on what ------------------------------------------------------------------------------------
def test_a_rep_sees_and_acts_only_on_their_own_mqls(session, team):
    mine, assignment = _mql(session)  # rep1's
    theirs, _ = _mql(session, province="北京")  # rep2's
    assert inbox(session=session, actor=team.rep1, now=NOW)["lead_id"].tolist() == [mine]
    assert set(inbox(session=session, actor=team.manager, now=NOW)["lead_id"]) == {mine, theirs}
    assert inbox(session=session, actor=team.other_manager, now=NOW).empty
    for intruder in (team.rep2, team.other_manager):
        with pytest.raises(NotYourLead) as caught:
            accept(session=session, actor=intruder, assignment_id=assignment.id, now=NOW)
        session.rollback()
        assert isinstance(caught.value, PermissionDenied)
    with pytest.raises(PermissionDenied):  # marketing has no inbox actions at all
        accept(session=session, actor=team.marketer, assignment_id=assignment.id, now=NOW)
    history = lead_history(session=session, actor=team.rep2, lead_ids=[mine, theirs])
    assert set(history.owners["lead_id"]) == {theirs}
    assert _assignment(session, mine).status == "pending"
    # The manager may act for the team.
    accept(session=session, actor=team.manager, assignment_id=assignment.id, now=NOW)
    session.commit()
    assert _assignment(session, mine).decided_by_id == team.manager.id


def test_the_inbox_shows_why_and_the_history(session, team):
    lead_id, assignment = _mql(session, grade="A", engagement_score=66)
    session.add(ScoreEvent(lead_id=lead_id, component="engagement", points=20, reason="参加直播", occurred_at=NOW))
    session.add(Touchpoint(lead_id=lead_id, kind="pricing_view", occurred_at=NOW, natural_key="t1"))
    session.commit()
    frame = inbox(session=session, actor=team.rep1, now=NOW + timedelta(hours=3))
    row = frame.iloc[0]
    assert (row["why_rule"], row["grade"], row["routed_by"]) == ("MQL 线", "A", "territory: 华东区域")
    assert row["sla_hours_left"] == pytest.approx(5.0)  # Monday 13:00 → 18:00
    history = lead_history(session=session, actor=team.rep1, lead_ids=[lead_id]).of(lead_id)
    assert history["scores"]["reason"].tolist() == ["参加直播"]
    assert history["touchpoints"]["kind"].tolist() == ["pricing_view"]
    assert history["stages"]["to_stage"].tolist() == ["mql"]
    assert history["owners"]["rep"].tolist() == ["张伟"]


def test_rejections_can_disqualify_per_the_setting(session, team):
    set_setting(session, "handoff", {"disqualify_reasons": []})
    session.commit()
    lead_id, assignment = _mql(session)
    assert reject(session=session, actor=team.rep1, assignment_id=assignment.id, reason="competitor", now=NOW) == \
        "recycled"


def test_concurrent_accept_and_reject_exactly_one_wins(engine, session, team):
    """Two reps' browsers (here: the rep and the manager) press at the same moment, each in its own
    connection. On PostgreSQL the loser's UPDATE waits on the winner's row lock, then finds the assignment
    decided; on SQLite the second writer waits for the first. Exactly one wins; the other is told."""
    import threading

    from sqlmodel import Session

    lead_id, assignment = _mql(session)
    seen = _version(session, lead_id)
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def act(name, actor, action):
        with Session(engine) as own:
            barrier.wait()
            try:
                if action == "accept":
                    accept(session=own, actor=actor, assignment_id=assignment.id, now=NOW, expected_version=seen)
                else:
                    reject(session=own, actor=actor, assignment_id=assignment.id, reason="no_budget", now=NOW,
                           expected_version=seen)
                own.commit()
                outcomes[name] = "won"
            except ConcurrentUpdate as error:
                own.rollback()
                outcomes[name] = error

    threads = [threading.Thread(target=act, args=("rep", team.rep1, "accept")),
               threading.Thread(target=act, args=("manager", team.manager, "reject"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(str(type(v).__name__) if v != "won" else "won" for v in outcomes.values()) in (
        ["AlreadyDecided", "won"], ["LeadChanged", "won"])
    final = _assignment(session, lead_id)
    winner = "rep" if outcomes["rep"] == "won" else "manager"
    assert final.status == ("accepted" if winner == "rep" else "rejected")
    assert len(session.exec(select(StageChange).where(StageChange.lead_id == lead_id)).all()) == 2
    assert _version(session, lead_id) == seen + 1


def test_on_postgresql_the_loser_waits_for_the_winner_then_is_told(engine, session, team):
    """The winner has updated but not committed; the loser's statement blocks on the row lock (seen in
    pg_stat_activity), and once the winner commits it finds the MQL decided — no double handling."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks and pg_stat_activity are PostgreSQL's")
    import threading
    import time

    from sqlalchemy import text
    from sqlmodel import Session

    lead_id, assignment = _mql(session)
    seen = _version(session, lead_id)
    winner = Session(engine)
    accept(session=winner, actor=team.rep1, assignment_id=assignment.id, now=NOW, expected_version=seen)
    outcome: dict[str, object] = {}

    def loser() -> None:
        with Session(engine) as own:
            try:
                reject(session=own, actor=team.manager, assignment_id=assignment.id, reason="no_budget", now=NOW,
                       expected_version=seen)
                own.commit()
                outcome["result"] = "won"
            except ConcurrentUpdate as error:
                own.rollback()
                outcome["result"] = error

    thread = threading.Thread(target=loser)
    thread.start()
    deadline = time.monotonic() + 30
    with engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )).scalar()
            if waiting:
                break
            watcher.rollback()
            time.sleep(0.02)
    assert waiting, "the second action should wait on the first one's row lock"
    winner.commit()
    winner.close()
    thread.join(timeout=30)
    assert isinstance(outcome["result"], AlreadyDecided)
    assert "张伟" in outcome["result"].localized("zh")
    assert _assignment(session, lead_id).status == "accepted"


def test_the_managers_figures_sla_breaches_and_rejections_by_channel(session, team):
    from core.routing import rejections_by_channel, sla_summary
    from db.models import Channel

    session.add(Channel(name="直播"))
    session.add(Channel(name="展会"))
    session.commit()
    late, late_assignment = _mql(session, source_channel_id=1)
    _, second = _mql(session, source_channel_id=1)
    _, third = _mql(session, source_channel_id=2, province="北京")
    _, fourth = _mql(session, province="北京")  # no channel
    reject(session=session, actor=team.rep1, assignment_id=late_assignment.id, reason="no_budget",
           now=NOW + timedelta(days=2))  # after the SLA: a breach
    reject(session=session, actor=team.rep1, assignment_id=second.id, reason="no_budget", now=NOW)
    reject(session=session, actor=team.rep2, assignment_id=third.id, reason="wrong_person", now=NOW)
    reject(session=session, actor=team.rep2, assignment_id=fourth.id, reason="cannot_reach", now=NOW)
    session.commit()
    by_channel = rejections_by_channel(session=session, actor=team.manager)
    assert by_channel.values.tolist() == [["直播", "no_budget", 2], ["—", "cannot_reach", 1],
                                          ["展会", "wrong_person", 1]]
    assert rejections_by_channel(session=session, actor=team.other_manager).empty
    assert rejections_by_channel(session=session, actor=team.marketer)["n"].sum() == 4  # marketing sees all
    summary = sla_summary(session=session, actor=team.manager, now=NOW + timedelta(days=3)).set_index("rep")
    assert summary.loc["张伟", "rejected"] == 2 and summary.loc["张伟", "breached"] == 1
    assert summary.loc["刘洋", "breached"] == 0 and summary.loc["张伟", "breach_rate"] == 0.5
    with pytest.raises(PermissionDenied):
        sla_summary(session=session, actor=team.rep1, now=NOW)
