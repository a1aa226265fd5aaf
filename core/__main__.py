"""The command line: ``python -m core <command> …``.

Each command lives in ``core/commands/<name>.py`` and exposes ``register(subparsers)``, which adds its parser and
sets ``func(args) -> int``. Commands bring the database to the current schema before they run.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import core.commands
from core.errors import LeadLoopError
from db.engine import DatabaseUnavailableError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="LeadLoop command line")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_info in sorted(pkgutil.iter_modules(core.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"core.commands.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DatabaseUnavailableError as error:
        print(str(error), file=sys.stderr)
        return 2
    except LeadLoopError as error:
        print(str(error), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
