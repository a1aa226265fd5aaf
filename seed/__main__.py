"""``python -m seed [--leads N] [--seed S] [--reset] [--now ISO]`` — fill the configured database with demo data.

Seeds whatever ``DATABASE_URL`` points to (default: the embedded SQLite file ``data/leadloop.db``), because the
person running it asked for it; a database that already holds data is refused unless ``--reset``.
"""

from __future__ import annotations

import argparse
import sys
import time

from db.engine import DatabaseUnavailableError, check_connection, make_engine, redacted
from seed.demo import SeedRefused, seed_demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m seed", description="Fill the LeadLoop database with demo data.")
    parser.add_argument("--leads", type=int, default=3000, help="number of leads (default 3000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed: the same seed and --now give the same data")
    parser.add_argument("--reset", action="store_true", help="delete all existing rows first")
    parser.add_argument("--now", help="the demo's 'now' as ISO date-time (naive = team time zone; default: now)")
    parser.add_argument("--database-url", help="instead of DATABASE_URL")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.leads < 1:
        print("--leads must be at least 1.", file=sys.stderr)
        return 2
    engine = make_engine(args.database_url)
    try:
        check_connection(engine)
        started = time.perf_counter()
        counts = seed_demo(engine, leads=args.leads, seed=args.seed, now=args.now, reset=args.reset)
    except DatabaseUnavailableError as error:
        print(str(error), file=sys.stderr)
        return 2
    except SeedRefused as error:
        print(str(error), file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    elapsed = time.perf_counter() - started
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        print(f"{name:<{width}}  {count:>9,}")
    print(f"Seeded {redacted(str(engine.url))} with {args.leads:,} demo leads in {elapsed:.1f} s "
          f"(seed {args.seed}). Log in as admin, marketer, manager or sales1–sales4 with password demo1234.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
