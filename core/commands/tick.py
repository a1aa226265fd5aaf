"""``python -m core tick [--now ISO]`` — one workflow tick (enroll, advance due steps, deliver the outbox), for
cron, scripts and tests. Safe beside a running scheduler: each enrollment and message is claimed atomically."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from core.clock import ensure_utc, utcnow
from core.commands import ready_engine
from core.scheduler import default_holder, run_job


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tick", help="run one workflow tick now (or at --now, ISO time)")
    parser.add_argument("--now", help="the time the tick runs at, e.g. 2026-03-02T10:00:00+08:00")
    parser.add_argument("--wait", type=float, default=1800.0, metavar="SECONDS",
                        help="how long to keep trying while a large import holds SQLite's write lock "
                             "(default 1800)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    now = ensure_utc(datetime.fromisoformat(args.now)) if args.now else utcnow()
    record = run_job("workflow_tick", engine=ready_engine(), holder=f"cli:{default_holder()}", now=now,
                     need_lease=False, patience=args.wait)
    assert record is not None
    print(json.dumps(record.summary if record.ok else {"error": record.error}, ensure_ascii=False, default=str))
    if not record.ok:
        print(record.error, file=sys.stderr)
    return 0 if record.ok else 1
