"""The MQL inbox page with AppTest on the seeded demo: a rep accepts and rejects from the cards, two tabs race,
a stale card cannot act on another rep's MQL, and the manager reassigns and sees SLA breaches and rejection
reasons by channel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from core.auth import actor_by_username
from core.clock import utcnow
from core.i18n import t
from core.routing import reassign
from db.engine import make_engine
from db.models import Assignment, AssignmentStatus, Lead, RoutingRule, Stage, StageChange, User
from tests.app.conftest import logged_in, open_tab

PAGE = "pages/inbox.py"


@pytest.fixture
def db(app_database):
    engine = make_engine(app_database)
    yield engine
    engine.dispose()


def open_inbox(username: str, lang: str | None = None):  # noqa: ANN201
    at = logged_in(username, lang=lang)
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def pending_ids(engine, username: str) -> list[int]:  # noqa: ANN001
    with Session(engine) as session:
        rep = session.exec(select(User.id).where(User.username == username)).one()
        return list(session.exec(select(Assignment.id).where(Assignment.rep_id == rep,
                                                             Assignment.status == AssignmentStatus.PENDING)).all())


def give(engine, username: str, n: int = 1) -> list[int]:  # noqa: ANN001
    """Hand ``n`` fresh MQLs to ``username`` (tests share one seeded database per module, so each test acts on
    MQLs of its own). Their SLA runs out soonest, so they come first in the inbox."""
    from core.routing.engine import create_assignments
    from db.models import LeadStatus

    with Session(engine) as session:
        rep = session.exec(select(User.id).where(User.username == username)).one()
        taken = select(Assignment.lead_id)
        leads = session.exec(select(Lead.id).where(Lead.stage == Stage.NEW, Lead.status == LeadStatus.VALID,
                                                   Lead.owner_id.is_(None), Lead.followup_owner_id.is_(None),
                                                   Lead.id.not_in(taken)).order_by(Lead.id).limit(n)).all()
        for lead_id in leads:
            session.get(Lead, lead_id).stage = Stage.MQL
        session.commit()
        frame = create_assignments(session=session, now=utcnow() - timedelta(days=30),
                                   choices=[{"lead_id": i, "rep_id": rep, "routed_by": "manual: 测试"} for i in leads])
        session.commit()
    return frame["assignment_id"].astype(int).tolist()


def card_ids(at) -> list[int]:  # noqa: ANN001
    return [int(b.key.split("_")[1]) for b in at.button if (b.key or "").startswith("accept_")]


def assignment(engine, assignment_id: int) -> tuple[Assignment, Lead]:  # noqa: ANN001
    with Session(engine) as session:
        row = session.get(Assignment, assignment_id)
        return row, session.get(Lead, row.lead_id)


def test_a_rep_sees_only_their_own_mqls_most_urgent_first(db):
    at = open_inbox("sales1")
    shown = card_ids(at)
    mine = pending_ids(db, "sales1")
    assert shown, "the seeded demo leaves MQLs waiting for sales1"
    assert set(shown) <= set(mine) and len(shown) == min(len(mine), 20)
    with Session(db) as session:
        dues = [session.get(Assignment, i).sla_due_at for i in shown]
    assert dues == sorted(dues), "most urgent first"
    text = " ".join(str(m.value) for m in at.markdown)
    assert t("inbox.why", "zh") in text and "MQL 线" in text
    assert "inbox." not in text and "col." not in text and "routing." not in text


def test_accept_with_one_tap(db):
    [first] = give(db, "sales1")
    at = open_inbox("sales1")
    assert card_ids(at)[0] == first
    at.button(key=f"accept_{first}").click()
    at.run()
    assert not at.exception
    assert at.success and t("inbox.accepted", "zh").split("：")[0] in at.success[0].value
    row, lead = assignment(db, first)
    assert row.status == AssignmentStatus.ACCEPTED and lead.stage == Stage.SAL
    assert first not in card_ids(at), "the card is gone after the tap"


def test_reject_with_reason_and_note(db):
    [target] = give(db, "sales2")
    at = open_inbox("sales2")
    at.radio(key=f"reason_{target}").set_value("no_budget")
    at.text_area(key=f"note_{target}").input("预算明年才批")
    at.button(key=f"reject_{target}").click()
    at.run()
    assert not at.exception and at.success, [e.value for e in at.error]
    assert "暂无预算" in at.success[0].value
    row, lead = assignment(db, target)
    assert (row.status, row.reason, row.note) == ("rejected", "no_budget", "预算明年才批")
    assert lead.stage == Stage.RECYCLED and lead.owner_id is None


def test_a_reject_without_a_reason_is_refused(db):
    [target] = give(db, "sales1")
    at = open_inbox("sales1")
    at.button(key=f"reject_{target}").click()
    at.run()
    assert at.error and t("routing.reason_required", "zh") in at.error[0].value
    assert assignment(db, target)[0].status == AssignmentStatus.PENDING


def test_two_tabs_one_wins_the_other_is_told(db):
    [target] = give(db, "sales3")
    first_tab, second_tab = open_inbox("sales3"), open_inbox("sales3")
    first_tab.button(key=f"accept_{target}").click()
    first_tab.run()
    second_tab.radio(key=f"reason_{target}").set_value("cannot_reach")
    second_tab.button(key=f"reject_{target}").click()
    second_tab.run()
    assert first_tab.success
    assert second_tab.error and "你已于" in second_tab.error[0].value and "已接受" in second_tab.error[0].value
    assert assignment(db, target)[0].status == AssignmentStatus.ACCEPTED


def test_a_card_that_went_to_another_rep_cannot_be_acted_on(db):
    [target] = give(db, "sales4")
    at = open_inbox("sales4")
    assert target in card_ids(at)
    with Session(db) as session:  # meanwhile the manager gives it to sales2
        manager = actor_by_username(session, "manager")
        sales2 = session.exec(select(User.id).where(User.username == "sales2")).one()
        new_id = reassign(session=session, actor=manager, assignment_id=target, to_rep_id=sales2, now=utcnow())
        session.commit()
    at.button(key=f"accept_{target}").click()
    at.run()
    assert at.error and "刘洋" in at.error[0].value, [e.value for e in at.error]
    assert assignment(db, target)[0].status == AssignmentStatus.REASSIGNED
    assert assignment(db, new_id)[0].status == AssignmentStatus.PENDING
    assert new_id not in card_ids(at)


def test_the_manager_reassigns_from_the_team_inbox(db):
    [target] = give(db, "sales2")
    at = open_inbox("manager")
    assert at.tabs and at.tabs[0].label == t("inbox.tab.team", "zh")
    with Session(db) as session:  # the row the manager picks: where the page lists this MQL
        from core.routing import inbox

        order = inbox(session=session, actor=actor_by_username(session, "manager"), now=utcnow(), limit=500)
    row = order["assignment_id"].tolist().index(target)
    at.session_state["team_pending"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    form_buttons = [b for b in at.button if b.label == t("inbox.reassign", "zh")]
    assert form_buttons, "selecting a row opens the reassign form"
    target_rep = at.selectbox(key="reassign_to").value
    form_buttons[0].click()
    at.run()
    assert not at.exception and at.success, [e.value for e in at.error]
    old, _ = assignment(db, target)
    assert old.status == AssignmentStatus.REASSIGNED
    with Session(db) as session:
        successor = session.exec(select(Assignment).where(Assignment.lead_id == old.lead_id)
                                 .order_by(Assignment.id.desc())).first()
    assert (successor.rep_id, successor.routed_by, successor.status) == (target_rep, "manual: 王强", "pending")


def test_the_manager_sees_breaches_and_rejections_by_channel(db):
    at = open_inbox("manager")
    assert not at.get("plotly_chart"), "only the open tab runs: the team tab has no chart"
    at.session_state["inbox_tab"] = t("inbox.tab.sla", "zh")  # the manager opens the SLA tab
    at.run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) >= 1, "rejection reasons by channel are charted"
    labels = {m.label for m in at.metric}
    assert {t("inbox.handed_out", "zh"), t("inbox.breaches", "zh")} <= labels
    assert any(t("inbox.rejections_title", "zh") == h.value for h in at.subheader)


def test_a_rep_has_no_team_view(db):
    at = open_inbox("sales3")
    labels = [tab.label for tab in at.tabs]
    assert t("inbox.tab.team", "zh") not in labels and t("inbox.tab.pending", "zh") in labels
    assert not at.get("plotly_chart")


def _admin_tab(username: str, tab_key: str):  # noqa: ANN202
    at = logged_in(username)
    at.switch_page("pages/admin.py")
    at.run()
    assert not at.exception, at.exception
    assert t(f"admin.tab.{tab_key}", "zh") in [tab.label for tab in at.tabs]
    return open_tab(at, "admin_tab", t(f"admin.tab.{tab_key}", "zh"))


def test_a_manager_adds_a_routing_rule_in_admin(db):
    at = _admin_tab("manager", "routing")
    form_names = [w for w in at.text_input if w.label == t("col.name", "zh")]
    form_names[0].input("西南区域")
    [w for w in at.text_input if w.label == t("routing.admin.param.provinces", "zh")][0].input("四川，重庆")
    [b for b in at.button if b.label == t("routing.admin.save_rule", "zh")][0].click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with Session(db) as session:
        rule = session.exec(select(RoutingRule).where(RoutingRule.name == "西南区域")).one()
    assert (rule.kind, rule.params) == ("territory", {"provinces": ["四川", "重庆"]})


def test_a_marketer_promotes_a_lead_by_hand_in_admin(db):
    with Session(db) as session:
        lead = session.exec(select(Lead).where(Lead.stage == Stage.NEW, Lead.status == "valid",
                                               Lead.owner_id.is_(None), Lead.followup_owner_id.is_(None),
                                               Lead.email.is_not(None))).first()
    at = _admin_tab("marketer", "handoff")
    at.text_input(key="handoff_query").input(lead.email)  # one match
    at.run()
    at.session_state["handoff_results"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    at.text_input(key="handoff_reason").input("展会上当面确认了需求")
    [b for b in at.button if b.label == t("handoff.admin.promote", "zh")][0].click()
    at.run()
    assert not at.exception and at.success, [e.value for e in at.error]
    with Session(db) as session:
        promoted = session.get(Lead, lead.id)
        change = session.exec(select(StageChange).where(StageChange.lead_id == lead.id,
                                                        StageChange.to_stage == "mql")).one()
        routed = session.exec(select(Assignment).where(Assignment.lead_id == lead.id)).one()
    assert promoted.stage == Stage.MQL and change.reason == "展会上当面确认了需求"
    assert routed.status == AssignmentStatus.PENDING and promoted.owner_id == routed.rep_id


def test_the_manager_opens_each_tab_and_the_decided_list(db):
    at = open_inbox("manager")
    assert not any(w.key == "export_range" for w in at.date_input), "a closed tab does not run"
    at.session_state["inbox_tab"] = t("inbox.tab.export", "zh")
    at.run()
    assert not at.exception, at.exception
    assert any(w.key == "export_range" for w in at.date_input)
    at.session_state["inbox_tab"] = t("inbox.tab.mine", "zh")
    at.run()
    decided_header = t("col.decided_at", "zh")
    assert not any(decided_header in df.value.columns for df in at.dataframe), "the decided list is collapsed"
    at.session_state["inbox_decided"] = True  # the manager expands it
    at.run()
    assert not at.exception, at.exception
    assert not any(w.key == "export_range" for w in at.date_input)
    assert (any(decided_header in df.value.columns for df in at.dataframe)
            or any(t("inbox.nothing_decided", "zh") == i.value for i in at.info))
