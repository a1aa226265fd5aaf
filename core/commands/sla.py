"""``python -m core sla`` — run the handoff's heartbeat once (SLA reminders and escalations, "not now"
come-backs, MQLs waiting for a rep, CRM status, rep alerts), e.g. from cron when the in-app scheduler is off."""

from __future__ import annotations

import argparse
import json

from sqlmodel import Session

from core.clock import utcnow
from core.commands import ready_engine
from core.routing.sla import check_sla


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sla", help="check SLA timers, return 'not now' leads, route waiting MQLs")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    with Session(ready_engine()) as session:
        report = check_sla(session=session, now=utcnow())
        session.commit()
    print(json.dumps(report.summary(), ensure_ascii=False))
    return 0
