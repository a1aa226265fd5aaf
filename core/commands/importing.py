"""``python -m core import FILE --channel NAME [--campaign NAME] [--sheet NAME] [--dry-run] [--force] [--json]``.

Prints the same summary as the Import page (a JSON object with ``--json``); a file it cannot read ends the command
with one sentence on stderr and exit code 1 (``core.__main__`` prints ``LeadLoopError``s that way).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from core.auth import SYSTEM
from core.clock import utcnow
from core.commands import ready_engine
from core.errors import FileFormatError, NotFound
from core.importer import run_import
from db.models import Campaign, Channel


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("import", help="import a channel's CSV or XLSX file as one batch")
    parser.add_argument("file", type=Path)
    parser.add_argument("--channel", required=True, help="channel name")
    parser.add_argument("--campaign", help="campaign name (of that channel)")
    parser.add_argument("--sheet", help="XLSX sheet (default: the first)")
    parser.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    parser.add_argument("--force", action="store_true", help="import again a file imported before")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as error:
        raise FileFormatError(f"The file {args.file} cannot be opened: {error.strerror}.") from error
    with Session(ready_engine()) as session:
        channel_id = session.scalar(select(Channel.id).where(func.lower(Channel.name) == args.channel.lower()))
        if channel_id is None:
            raise NotFound(f"There is no channel named {args.channel}.")
        campaign_id = None
        if args.campaign:
            campaign_id = session.scalar(select(Campaign.id).where(Campaign.channel_id == channel_id,
                                                                   Campaign.name == args.campaign))
            if campaign_id is None:
                raise NotFound(f"There is no campaign named {args.campaign} in channel {args.channel}.")
        try:
            summary = run_import(session=session, actor=SYSTEM, data=data, filename=args.file.name,
                                 channel_id=channel_id, campaign_id=campaign_id, sheet=args.sheet, now=utcnow(),
                                 force=args.force, dry_run=args.dry_run)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    result = summary.as_dict()
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        if summary.already_imported:
            print(f"Already imported as batch {summary.batch_id}: nothing changed (use --force to import again).")
        for name in ("batch_id", "rows", "inserted", "updated", "duplicates_in_file", "owned_by_sales", "invalid",
                     "skipped", "touchpoints", "problems"):
            print(f"{name}: {result[name]}")
        if args.dry_run:
            print("dry run: nothing was written")
        for row in summary.problem_report.head(20).itertuples():
            print(f"  row {row.row} {row.column}: {row.problem} {row.value}", file=sys.stderr)
    return 0
