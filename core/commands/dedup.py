"""``python -m core dedup scan|check ID …`` — the duplicate scan from the shell (the nightly job does the same)."""

from __future__ import annotations

import argparse

from sqlmodel import Session

from core.clock import utcnow
from core.commands import ready_engine
from core.dedup import check_new_leads, scan_all


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dedup", help="find duplicate leads: merge the certain ones, queue the likely")
    sub = parser.add_subparsers(dest="dedup_command", required=True)
    sub.add_parser("scan", help="the whole base").set_defaults(func=_scan)
    check = sub.add_parser("check", help="some leads against the whole base")
    check.add_argument("lead_ids", nargs="+", type=int)
    check.set_defaults(func=_check)


def _report(summary: dict[str, int]) -> int:
    print(", ".join(f"{name}: {value}" for name, value in summary.items()))
    return 0


def _scan(args: argparse.Namespace) -> int:
    with Session(ready_engine()) as session:
        summary = scan_all(session=session, now=utcnow())
        session.commit()
    return _report(summary)


def _check(args: argparse.Namespace) -> int:
    with Session(ready_engine()) as session:
        summary = check_new_leads(session=session, lead_ids=args.lead_ids, now=utcnow())
        session.commit()
    return _report(summary)
