"""Routing: rule order, fall-through, ABM owners, round-robin fairness, capacity, out of office, and the rules
a manager edits."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlmodel import select

from core.errors import NotFound, PermissionDenied, ValidationError
from core.routing.admin import delete_rule, list_reps, list_rules, move_rule, save_rule, update_rep
from core.routing.engine import Rep, plan_routes, route_leads, split_routed_by
from db.models import Assignment, AssignmentStatus, AuditLog, Lead, RoutingRule
from tests.unit.handoff_helpers import NOW, build_team, demo_rules, make_account, make_lead, set_rep


def _rep(i: int, **kwargs) -> Rep:
    values = {"name": f"rep{i}", "capacity": 50, "load": 0, "out_of_office": False, "active": True,
              "territories": frozenset(), "industries": frozenset(), "product_lines": frozenset()}
    values.update(kwargs)
    return Rep(id=i, **values)


RULES = [
    {"name": "ABM", "kind": "account", "params": {}, "rep_ids": []},
    {"name": "East", "kind": "territory", "params": {"provinces": ["上海"], "cities": ["苏州"]}, "rep_ids": [1]},
    {"name": "Factories", "kind": "industry", "params": {"industries": ["制造业"]}, "rep_ids": [2]},
    {"name": "Data", "kind": "product_line", "params": {"product_lines": ["数据平台"]}, "rep_ids": [3]},
    {"name": "Everyone", "kind": "round_robin", "params": {}, "rep_ids": [1, 2, 3, 4]},
]


def _lead(i: int, **kwargs) -> dict:
    return {"id": i, "province": None, "city": None, "industry": None, "product_interest": None,
            "account_owner_id": None, **kwargs}


def test_the_first_matching_rule_chooses_and_says_so():
    reps = {i: _rep(i) for i in range(1, 5)}
    leads = [_lead(1, province="上海", industry="制造业"), _lead(2, city="苏州", province="江苏"),
             _lead(3, industry="制造业"), _lead(4, product_interest="数据平台"), _lead(5, account_owner_id=4,
                                                                                    province="上海")]
    chosen, unrouted = plan_routes(leads, RULES, reps)
    assert unrouted == []
    assert [(c["rep_id"], c["routed_by"]) for c in chosen] == [
        (1, "territory: East"), (1, "territory: East"), (2, "industry: Factories"), (3, "product_line: Data"),
        (4, "account: ABM")]
    assert split_routed_by("territory: East") == ("territory", "East")


def test_round_robin_is_fair_and_continues_where_it_stopped():
    reps = {i: _rep(i) for i in range(1, 5)}
    chosen, _ = plan_routes([_lead(i) for i in range(1, 13)], RULES[-1:], reps)
    assert Counter(c["rep_id"] for c in chosen) == {1: 3, 2: 3, 3: 3, 4: 3}
    assert [c["rep_id"] for c in chosen[:4]] == [1, 2, 3, 4]
    # The next batch starts after the rep served last (read from the assignment history).
    chosen, _ = plan_routes([_lead(20)], RULES[-1:], {i: _rep(i) for i in range(1, 5)},
                            last_served={"round_robin: Everyone": {1: 10.0, 2: 11.0, 3: 8.0, 4: 12.0}})
    assert chosen[0]["rep_id"] == 3


def test_capacity_and_out_of_office_are_respected_and_a_full_rule_falls_through():
    reps = {1: _rep(1, capacity=2, load=1), 2: _rep(2, out_of_office=True), 3: _rep(3), 4: _rep(4, capacity=0)}
    leads = [_lead(i, province="上海") for i in range(1, 5)]
    chosen, unrouted = plan_routes(leads, RULES, reps)
    assert unrouted == []
    assert chosen[0] == {"lead_id": 1, "rep_id": 1, "routed_by": "territory: East"}
    # rep1 is now full: the East rule falls through to round robin, which skips rep2 (away) and rep4 (no room).
    assert [c["rep_id"] for c in chosen[1:]] == [3, 3, 3]
    assert {c["routed_by"] for c in chosen[1:]} == {"round_robin: Everyone"}
    assert reps[1].load == 2 and reps[3].load == 3


def test_nobody_eligible_leaves_the_lead_unrouted():
    reps = {i: _rep(i, out_of_office=True) for i in range(1, 5)}
    chosen, unrouted = plan_routes([_lead(1), _lead(2, account_owner_id=1)], RULES, reps)
    assert chosen == [] and unrouted == [1, 2]


def test_account_owner_keeps_accounts_above_capacity_but_not_on_leave():
    reps = {i: _rep(i, capacity=1, load=5) for i in range(1, 5)}
    chosen, _ = plan_routes([_lead(1, account_owner_id=2)], RULES, reps)
    assert chosen[0]["rep_id"] == 2 and chosen[0]["routed_by"] == "account: ABM"


def test_rules_without_reps_use_the_reps_own_coverage():
    reps = {1: _rep(1, territories=frozenset({"北京"})), 2: _rep(2, territories=frozenset({"北京", "天津"})),
            3: _rep(3, territories=frozenset({"广东"}))}
    rules = [{"name": "By territory", "kind": "territory", "params": {}, "rep_ids": []}]
    chosen, unrouted = plan_routes([_lead(1, province="北京"), _lead(2, province="北京"), _lead(3, province="天津"),
                                    _lead(4, province="西藏")], rules, reps)
    assert [c["rep_id"] for c in chosen] == [1, 2, 2]
    assert unrouted == [4]


def test_a_come_back_goes_to_the_rep_who_asked_unless_away():
    reps = {i: _rep(i) for i in range(1, 5)}
    chosen, _ = plan_routes([_lead(1, province="上海")], RULES, reps, preferred={1: 4})
    assert chosen[0] == {"lead_id": 1, "rep_id": 4, "routed_by": "come_back: rep4"}
    reps[4].out_of_office = True
    chosen, _ = plan_routes([_lead(1, province="上海")], RULES, reps, preferred={1: 4})
    assert chosen[0]["rep_id"] == 1


# -- in the database --------------------------------------------------------------------------------------------
def test_route_leads_creates_assignments_owners_and_notes(session):
    team = build_team(session)
    demo_rules(session, team)
    account = make_account(session, owner_id=team.rep3.id)
    east = make_lead(session, stage="mql", province="上海")
    north = make_lead(session, stage="mql", province="北京", industry="金融")
    abm = make_lead(session, stage="mql", province="上海", account_id=account)
    other = [make_lead(session, stage="mql", province="四川") for _ in range(8)]
    outcome = route_leads(session=session, lead_ids=[east, north, abm, *other], now=NOW)
    session.commit()
    assert outcome.unrouted == []
    by_lead = {a.lead_id: a for a in session.exec(select(Assignment)).all()}
    assert (by_lead[east].rep_id, by_lead[east].routed_by) == (team.rep1.id, "territory: 华东区域")
    assert (by_lead[north].rep_id, by_lead[north].routed_by) == (team.rep2.id, "territory: 华北区域")
    assert (by_lead[abm].rep_id, by_lead[abm].routed_by) == (team.rep3.id, "account: 重点客户归属负责人")
    assert Counter(by_lead[i].rep_id for i in other) == {team.rep1.id: 2, team.rep2.id: 2, team.rep3.id: 2,
                                                         team.rep4.id: 2}
    assert all(a.status == AssignmentStatus.PENDING and a.sla_due_at is not None for a in by_lead.values())
    # Monday 10:00 + 8 working hours = Monday 18:00 Shanghai = 10:00 UTC.
    assert by_lead[east].sla_due_at.isoformat() == "2026-11-02T10:00:00+00:00"
    lead = session.get(Lead, east)
    session.refresh(lead)
    assert lead.owner_id == team.rep1.id and lead.version == 2


def test_round_robin_across_calls_and_capacity_in_the_database(session):
    team = build_team(session)
    demo_rules(session, team)
    set_rep(session, team.rep2, capacity=1)
    set_rep(session, team.rep4, out_of_office=True)
    first = [make_lead(session, stage="mql", province="四川") for _ in range(3)]
    route_leads(session=session, lead_ids=first, now=NOW)
    session.commit()
    second = [make_lead(session, stage="mql", province="四川") for _ in range(3)]
    route_leads(session=session, lead_ids=second, now=NOW)
    session.commit()
    reps = [a.rep_id for a in session.exec(select(Assignment).order_by(Assignment.id)).all()]
    # rep2 takes one and is full; rep4 is away; rep1 and rep3 alternate across both calls.
    assert reps == [team.rep1.id, team.rep2.id, team.rep3.id, team.rep1.id, team.rep3.id, team.rep1.id]


def test_managers_edit_rules_and_every_change_is_audited(session):
    team = build_team(session)
    demo_rules(session, team)
    rule = save_rule(session=session, actor=team.manager, now=NOW, name="西南区域", kind="territory",
                     params={"provinces": "四川，重庆、 四川", "industries": ["ignored"]}, rep_ids=[team.rep4.id])
    session.commit()
    assert rule.params == {"provinces": ["四川", "重庆"]} and rule.position == 70
    move_rule(session=session, actor=team.manager, rule_id=rule.id, step=-5, now=NOW)
    session.commit()
    rules = list_rules(session=session, actor=team.manager)
    assert rules["name"].iloc[1] == "西南区域" and rules["reps"].iloc[1] == ["周凯"]
    assert rules["position"].tolist() == [10, 20, 30, 40, 50, 60, 70]
    lead = make_lead(session, stage="mql", province="四川")
    route_leads(session=session, lead_ids=[lead], now=NOW)
    assert session.exec(select(Assignment.routed_by)).one() == "territory: 西南区域"
    delete_rule(session=session, actor=team.manager, rule_id=rule.id, now=NOW)
    session.commit()
    assert session.get(RoutingRule, rule.id) is None
    actions = session.exec(select(AuditLog.action).where(AuditLog.action.like("routing_rule.%"))).all()
    assert sorted(actions) == ["routing_rule.create", "routing_rule.delete", "routing_rule.move"]


def test_rule_input_is_checked(session):
    team = build_team(session)
    with pytest.raises(ValidationError):
        save_rule(session=session, actor=team.manager, now=NOW, name=" ", kind="territory")
    with pytest.raises(ValidationError):
        save_rule(session=session, actor=team.manager, now=NOW, name="x", kind="horoscope")
    with pytest.raises(ValidationError) as caught:
        save_rule(session=session, actor=team.manager, now=NOW, name="x", kind="round_robin",
                  rep_ids=[team.marketer.id])
    assert "MQL" in caught.value.localized("zh")
    for actor in (team.rep1, team.marketer):
        with pytest.raises(PermissionDenied):
            save_rule(session=session, actor=actor, now=NOW, name="x", kind="round_robin")


def test_a_manager_edits_only_the_own_team(session):
    team = build_team(session)
    update_rep(session=session, actor=team.manager, rep_id=team.rep1.id, now=NOW, capacity=3, out_of_office=True,
               territories="上海,江苏")
    session.commit()
    reps = list_reps(session=session, actor=team.manager).set_index("id")
    assert reps.loc[team.rep1.id, "capacity"] == 3 and reps.loc[team.rep1.id, "out_of_office"]
    assert reps.loc[team.rep1.id, "territories"] == ["上海", "江苏"]
    assert team.outsider.id not in reps.index
    with pytest.raises(NotFound):
        update_rep(session=session, actor=team.manager, rep_id=team.outsider.id, now=NOW, capacity=1)
    with pytest.raises(ValidationError):
        update_rep(session=session, actor=team.manager, rep_id=team.rep1.id, now=NOW, capacity=-1)
    assert team.outsider.id in list_reps(session=session, actor=team.admin)["id"].tolist()
