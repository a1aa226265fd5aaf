"""The demo's hand-offs agree with the demo's routing rules: every seeded assignment names a rule that exists,
the lead matches it and no earlier rule, and the rep is one the rule may choose (the account's owner for ABM);
waiting MQLs are owned by their rep. Replaying the rules on the waiting MQLs picks the same reps."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from core.routing.engine import _clean, _rule_matches, load_reps, plan_routes, split_routed_by
from db.models import Account, Assignment, AssignmentStatus, Lead, RoutingRule
from seed.demo import seed_demo


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):  # noqa: ANN001, ANN201
    from db.engine import make_engine
    from tests.conftest import fresh_sqlite_url

    engine = make_engine(fresh_sqlite_url(tmp_path_factory.mktemp("seed-routing"), tmp_path_factory))
    seed_demo(engine, leads=400, seed=7)
    yield engine
    engine.dispose()


def _lead(lead: Lead, owners: dict[int, int | None]) -> dict:
    return {"id": lead.id, "province": _clean(lead.province), "city": _clean(lead.city),
            "industry": _clean(lead.industry), "product_interest": _clean(lead.product_interest),
            "account_owner_id": owners.get(lead.account_id) if lead.account_id else None}


def test_seeded_assignments_follow_the_seeded_rules(seeded):
    with Session(seeded) as session:
        rules = sorted(session.exec(select(RoutingRule)).all(), key=lambda r: r.position)
        owners = dict(session.exec(select(Account.id, Account.owner_id)).all())
        rows = session.exec(select(Assignment, Lead).join(Lead, Lead.id == Assignment.lead_id)).all()
    assert [r.kind for r in rules][0] == "account" and rules[-1].kind == "round_robin"
    assert rows, "the demo hands MQLs to sales"
    by_name = {r.name: r for r in rules}
    kinds = set()
    for assignment, lead in rows:
        kind, name = split_routed_by(assignment.routed_by)
        rule = by_name[name]
        kinds.add(kind)
        facts = _lead(lead, owners)
        as_dict = [{"kind": r.kind, "params": r.params} for r in rules]
        first = next(i for i, r in enumerate(as_dict) if _rule_matches(r, facts))
        assert rules[first].name == name, (assignment.id, assignment.routed_by)
        if kind == "account":
            assert assignment.rep_id == owners[lead.account_id]
        else:
            assert assignment.rep_id in rule.rep_ids
        if assignment.status == AssignmentStatus.PENDING:
            assert (lead.stage, lead.owner_id) == ("mql", assignment.rep_id)
            assert assignment.sla_due_at is not None
    assert kinds == {"account", "territory", "industry", "product_line", "round_robin"}


def test_replaying_the_rules_on_waiting_mqls_picks_the_seeded_reps(seeded):
    with Session(seeded) as session:
        owners = dict(session.exec(select(Account.id, Account.owner_id)).all())
        rules = [{"name": r.name, "kind": r.kind, "params": r.params, "rep_ids": r.rep_ids}
                 for r in sorted(session.exec(select(RoutingRule)).all(), key=lambda r: r.position)]
        pending = session.exec(select(Assignment, Lead).join(Lead, Lead.id == Assignment.lead_id)
                               .where(Assignment.status == AssignmentStatus.PENDING)).all()
        reps = load_reps(session, extra_ids=owners.values())
    for rep in reps.values():
        rep.load = 0
    leads = [_lead(lead, owners) for _, lead in pending]
    chosen, unrouted = plan_routes(leads, rules, reps)
    assert unrouted == []
    seeded_choice = {lead.id: (a.rep_id, a.routed_by) for a, lead in pending}
    for choice in chosen:
        rep, routed = seeded_choice[choice["lead_id"]]
        assert choice["routed_by"] == routed
        if not routed.startswith("round_robin"):
            assert choice["rep_id"] == rep
