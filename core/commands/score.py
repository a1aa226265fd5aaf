"""``python -m core score [--full] [--lead ID …] [--decay] [--no-promote] [--json]`` — rescore from the shell (the
scheduler does the same): bring the score ledger and cached scores up to date with the active rules, and hand the
leads that crossed the MQL line to the lifecycle."""

from __future__ import annotations

import argparse
import json

from sqlmodel import Session

from core.clock import utcnow
from core.commands import ready_engine
from core.pipeline import score_and_promote
from core.scoring import apply_decay


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("score", help="rescore leads (full, or some) and promote those over the MQL line")
    parser.add_argument("--full", action="store_true", help="every lead (the default without --lead)")
    parser.add_argument("--lead", type=int, action="append", dest="leads", metavar="ID", help="only this lead")
    parser.add_argument("--decay", action="store_true", help="apply the daily decay first")
    parser.add_argument("--no-promote", action="store_true", help="report MQL crossings without promoting")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    now = utcnow()
    with Session(ready_engine()) as session:
        decayed = apply_decay(session=session, now=now) if args.decay else 0
        report, promotion = score_and_promote(
            session=session, now=now, lead_ids=None if args.full or not args.leads else args.leads,
            promote=not args.no_promote)
        promoted = len(promotion.promoted)
        session.commit()
    summary = {**report.summary(), "decay_applied": decayed, "promoted": promoted}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(", ".join(f"{name}: {value}" for name, value in summary.items()))
    return 0
