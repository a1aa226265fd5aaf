"""``python -m core backup FILE`` / ``python -m core restore FILE`` — the whole database to a file and back."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.backup import backup, restore
from core.commands import ready_engine
from db.engine import redacted


def register(subparsers: argparse._SubParsersAction) -> None:
    take = subparsers.add_parser("backup", help="write a consistent copy of the database to a file")
    take.add_argument("file", type=Path)
    take.set_defaults(func=_backup)
    put = subparsers.add_parser("restore", help="replace the database's contents with a backup (stop the app first)")
    put.add_argument("file", type=Path)
    put.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    put.set_defaults(func=_restore)


def _backup(args: argparse.Namespace) -> int:
    engine = ready_engine()
    path = backup(engine, args.file)
    print(f"Backed up {redacted(str(engine.url))} to {path} ({path.stat().st_size:,} bytes).")
    return 0


def _restore(args: argparse.Namespace) -> int:
    engine = ready_engine()
    if not args.yes:
        answer = input(f"Replace everything in {redacted(str(engine.url))} with {args.file}? Type yes: ")
        if answer.strip().lower() != "yes":
            print("Nothing restored.")
            return 1
    restore(engine, args.file)
    print(f"Restored {args.file} into {redacted(str(engine.url))}.")
    return 0
