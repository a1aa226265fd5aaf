"""Each role against each action, through the core functions themselves (not only the page map).

The expected answers are the product's rules, written here independently of ``core.auth.PERMISSIONS``: a
sales rep reaches only their own leads and MQLs and no admin or marketing action; a manager runs the team and
the reports; a marketer owns import, cleaning, rules and workflows; the admin manages users and sees the audit
log. Each (action, role) pair runs on a fresh database, so an allowed action cannot hide a later refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import Session

from core import audit, auth, channels, display_names, journeys, lifecycle, roi
from core.dedup import bulk_merge, delete_invalid, mark_not_duplicate
from core.errors import NotFound, PermissionDenied
from core.routing import admin as routing_admin
from core.routing import sales_inbox
from db.models import CandidateStatus, Channel, DuplicateCandidate, Lead, LeadStatus
from tests.unit.handoff_helpers import NOW, Team, build_team, demo_rules, make_lead

PERSONAS = ("admin", "marketer", "manager", "own_rep", "other_rep")
REFUSED = (PermissionDenied, NotFound)  # NotFound: another rep's lead is not even said to exist


@dataclass
class World:
    team: Team
    lead_id: int  # an MQL of rep1, waiting in rep1's inbox
    assignment_id: int
    candidate_id: int
    invalid_id: int

    def actor(self, persona: str) -> auth.Actor:
        return {"admin": self.team.admin, "marketer": self.team.marketer, "manager": self.team.manager,
                "own_rep": self.team.rep1, "other_rep": self.team.rep2}[persona]


def _world(session: Session) -> World:
    team = build_team(session)
    demo_rules(session, team)
    session.add(Channel(name="展会", kind="trade_show"))
    lead_id = make_lead(session, province="上海", industry="制造业", search_text="王芳 wangfang wf")
    lifecycle.promote_to_mql(session=session, lead_ids=[lead_id], now=NOW, by_rule="MQL 线")
    session.commit()
    assignment = sales_inbox.inbox(session=session, actor=team.rep1, now=NOW)
    left = make_lead(session, name="王芳", email="wf@example.cn")
    right = make_lead(session, name="Wang Fang", phone="+8613912345678")
    candidate = DuplicateCandidate(left_id=left, right_id=right, score=0.9, reasons=["name"],
                                   status=CandidateStatus.PENDING)
    session.add(candidate)
    invalid = Lead(name="测试", status=LeadStatus.INVALID, invalid_reason="no_contact")
    session.add(invalid)
    session.commit()
    return World(team=team, lead_id=lead_id, assignment_id=int(assignment["assignment_id"].iloc[0]),
                 candidate_id=candidate.id, invalid_id=invalid.id)  # type: ignore[arg-type]


COSTS_CSV = "month,channel,amount\n2026-10,展会,12000\n".encode()

# action name → (call, personas allowed)
ACTIONS: dict[str, tuple[Callable[[Session, World, auth.Actor], Any], set[str]]] = {
    "create a user": (lambda s, w, a: auth.create_user(s, actor=a, username="newrep", password="Passw0rd!x",
                                                       role="sales"), {"admin"}),
    "list users": (lambda s, w, a: auth.list_users(s, actor=a), {"admin"}),
    "reset someone's password": (lambda s, w, a: auth.set_password(s, actor=a, user_id=w.team.rep3.id,
                                                                  new_password="NewPassw0rd!"), {"admin"}),
    "read the audit log": (lambda s, w, a: audit.list_entries(s, actor=a), {"admin"}),
    "change the routing rules": (lambda s, w, a: routing_admin.save_rule(
        session=s, actor=a, now=NOW, name="新规则", kind="round_robin", rep_ids=[w.team.rep1.id]),
        {"admin", "manager"}),
    "import channel costs": (lambda s, w, a: channels.import_costs(session=s, actor=a, data=COSTS_CSV,
                                                                   filename="costs.csv"),
                             {"admin", "marketer", "manager"}),
    "read channel costs": (lambda s, w, a: roi.load_costs(session=s, actor=a), {"admin", "marketer", "manager"}),
    "open rep1's lead": (lambda s, w, a: journeys.lead_profile(session=s, actor=a, lead_id=w.lead_id),
                         {"admin", "marketer", "manager", "own_rep"}),
    "read rep1's lead timeline": (lambda s, w, a: journeys.timeline(session=s, actor=a, lead_id=w.lead_id),
                                  {"admin", "marketer", "manager", "own_rep"}),
    "accept rep1's MQL": (lambda s, w, a: sales_inbox.accept(session=s, actor=a, assignment_id=w.assignment_id,
                                                             now=NOW), {"admin", "manager", "own_rep"}),
    "reject rep1's MQL": (lambda s, w, a: sales_inbox.reject(session=s, actor=a, assignment_id=w.assignment_id,
                                                             reason="no_budget", now=NOW),
                          {"admin", "manager", "own_rep"}),
    "merge a duplicate pair": (lambda s, w, a: bulk_merge(session=s, actor=a, candidate_ids=[w.candidate_id],
                                                          now=NOW), {"admin", "marketer"}),
    "mark a pair as two people": (lambda s, w, a: mark_not_duplicate(session=s, actor=a,
                                                                     candidate_ids=[w.candidate_id], now=NOW),
                                  {"admin", "marketer"}),
    "delete invalid leads": (lambda s, w, a: delete_invalid(session=s, actor=a, lead_ids=[w.invalid_id],
                                                            confirm_count=1, now=NOW), {"admin", "marketer"}),
    "disqualify a lead": (lambda s, w, a: lifecycle.disqualify(session=s, actor=a, lead_ids=[w.invalid_id],
                                                               now=NOW, reason="竞争对手"), {"admin", "marketer"}),
    "label a channel for English readers": (lambda s, w, a: display_names.save(
        s, actor=a, rows=[{"kind": "channel", "name": "展会", "en": "Trade shows"}]), {"admin", "marketer"}),
}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_role_against_action(session, action, persona):
    world = _world(session)
    call, allowed = ACTIONS[action]
    actor = world.actor(persona)
    if persona in allowed:
        call(session, world, actor)
        session.commit()
    else:
        with pytest.raises(REFUSED):
            call(session, world, actor)
        session.rollback()


def test_a_rep_finds_only_their_own_leads(session):
    world = _world(session)
    mine = journeys.search_leads(session=session, actor=world.team.rep1, query="王芳")
    other = journeys.search_leads(session=session, actor=world.team.rep2, query="王芳")
    everyone = journeys.search_leads(session=session, actor=world.team.marketer, query="王芳")
    assert world.lead_id in set(mine["id"]) and world.lead_id in set(everyone["id"])
    assert world.lead_id not in set(other["id"])
