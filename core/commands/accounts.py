"""``python -m core accounts rebuild|refresh`` — re-derive accounts from the leads, or recompute their figures
(engagement, fit, MQA) for the current time, e.g. from cron when the in-process scheduler is off."""

from __future__ import annotations

import argparse

from sqlmodel import Session

from core.accounts import rebuild_accounts, refresh_accounts
from core.clock import utcnow
from core.commands import ready_engine


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("accounts", help="rebuild accounts from leads, or refresh their figures")
    sub = parser.add_subparsers(dest="accounts_command", required=True)
    sub.add_parser("rebuild", help="regroup every lead into accounts and recompute them").set_defaults(func=_rebuild)
    sub.add_parser("refresh", help="recompute engagement, fit and the MQA signal").set_defaults(func=_refresh)


def _rebuild(args: argparse.Namespace) -> int:
    with Session(ready_engine()) as session:
        result = rebuild_accounts(session=session, now=utcnow())
        session.commit()
    print(f"Accounts rebuilt: {result.created} new, {result.renamed} renamed, {result.leads_assigned} leads moved, "
          f"{result.removed} removed, {result.refreshed} refreshed, {result.mqa} MQA.")
    return 0


def _refresh(args: argparse.Namespace) -> int:
    with Session(ready_engine()) as session:
        count = refresh_accounts(session=session, now=utcnow())
        session.commit()
    print(f"{count} accounts refreshed.")
    return 0
