"""``python -m core users list|add|reset-password`` — manage accounts from the shell."""

from __future__ import annotations

import argparse
import getpass

from sqlmodel import Session, select

from core.auth import SYSTEM, create_user, set_password
from core.commands import ready_engine
from db.models import User


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("users", help="list users, add one, reset a password")
    sub = parser.add_subparsers(dest="users_command", required=True)
    sub.add_parser("list").set_defaults(func=_list)
    add = sub.add_parser("add")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["admin", "marketer", "manager", "sales"])
    add.add_argument("--name", default="")
    add.add_argument("--email")
    add.set_defaults(func=_add)
    reset = sub.add_parser("reset-password")
    reset.add_argument("username")
    reset.set_defaults(func=_reset)


def _list(args: argparse.Namespace) -> int:
    with Session(ready_engine()) as session:
        for user in session.exec(select(User).order_by(User.id)):
            state = "active" if user.active else "inactive"
            print(f"{user.username:<20} {user.role:<9} {state:<8} {user.display_name}")
    return 0


def _ask_password() -> str:
    password = getpass.getpass("New password: ")
    if password != getpass.getpass("Repeat: "):
        raise SystemExit("The two passwords differ.")
    return password


def _add(args: argparse.Namespace) -> int:
    with Session(ready_engine()) as session:
        create_user(session, actor=SYSTEM, username=args.username, password=_ask_password(), role=args.role,
                    display_name=args.name, email=args.email)
        session.commit()
    print(f"Added {args.username} ({args.role}).")
    return 0


def _reset(args: argparse.Namespace) -> int:
    with Session(ready_engine()) as session:
        user = session.exec(select(User).where(User.username == args.username)).first()
        if user is None:
            print(f"No user {args.username}.")
            return 1
        set_password(session, actor=SYSTEM, user_id=user.id, new_password=_ask_password())
        session.commit()
    print(f"Password of {args.username} reset; the account is unlocked.")
    return 0
