"""Every page, rendered through Streamlit's AppTest as each role that can open it, on 100,000 leads.

Builds its own database (a temporary SQLite file, or ``--url`` for an empty PostgreSQL database you name) with
the demo world at 100,000 leads and about a million touchpoints, signs in as admin, marketer, manager and a
sales rep, and renders each page the role opens ``--runs`` times (the first render is a cold one: nothing of the
page is cached yet). A page's figure is the 95th percentile of its render times over all roles and runs.

Target: p95 under 1.5 s for every page.

    python -m bench.pages_bench [--leads 100000] [--runs 3] [--url postgresql://…]
    python -m bench.pages_bench --db /tmp/pages.db --reuse [--page inbox --page reports] [--role manager]

``--db PATH`` keeps the seeded SQLite file; with ``--reuse`` a file that already holds leads is used as it is
(no new seeding), so one can measure again after a change without waiting for the seed. ``--page`` and
``--role`` narrow the run (the verdict then covers only what was rendered).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.auth import Actor
from db.engine import dispose_engines, make_engine
from db.migrate import upgrade_to_head
from seed.demo import database_is_empty, seed_demo
from ui.navigation import PAGES, pages_for

TARGET_SECONDS = 1.5
APP = str(Path(__file__).resolve().parents[1] / "app.py")
ROLES = {"admin": "admin", "marketer": "marketer", "manager": "manager", "sales1": "sales"}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def signed_in(username: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input("demo1234")
    at.button[0].click()
    at.run()
    if "actor" not in at.session_state:
        raise SystemExit(f"could not sign in as {username}")
    return at


def render_times(runs: int, pages: list[str] | None = None, roles: list[str] | None = None) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {spec.key: [] for spec in PAGES}
    for username, role in ROLES.items():
        if roles and username not in roles and role not in roles:
            continue
        actor = Actor(id=0, username=username, role=role, display_name=username)
        for spec in pages_for(actor):
            if pages and spec.key not in pages:
                continue
            at = signed_in(username)
            for _ in range(runs):
                at.switch_page(spec.path)
                started = time.perf_counter()
                at.run()
                elapsed = time.perf_counter() - started
                if at.exception:
                    raise SystemExit(f"{spec.key} as {username} raised: {at.exception[0].value}")
                times[spec.key].append(elapsed)
                print(f"  {spec.key:<10} {username:<9} {elapsed:6.2f} s", flush=True)
    return {key: values for key, values in times.items() if values}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", help="an empty PostgreSQL database to fill (default: a temporary SQLite file)")
    parser.add_argument("--db", help="a SQLite file to build (and keep) instead of a temporary one")
    parser.add_argument("--reuse", action="store_true",
                        help="with --db or --url: use a database that already holds leads as it is, without seeding")
    parser.add_argument("--page", action="append", help="render only this page (key, e.g. inbox); repeatable")
    parser.add_argument("--role", action="append", help="sign in only as this user or role; repeatable")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        url = args.url or (f"sqlite:///{Path(args.db).resolve()}" if args.db else f"sqlite:///{folder}/pages.db")
        engine = make_engine(url)
        upgrade_to_head(engine)
        if args.reuse and not database_is_empty(engine):
            print(f"reusing the seeded database at {url}")
        else:
            started = time.perf_counter()
            counts = seed_demo(engine, leads=args.leads, seed=5, reset=True)
            print(f"seeded {counts.get('lead', 0):,} leads and {counts.get('touchpoint', 0):,} touchpoints "
                  f"in {time.perf_counter() - started:.1f} s")
        engine.dispose()
        os.environ["DATABASE_URL"] = url
        os.environ["LEADLOOP_GRID"] = "native"  # AppTest cannot render the AgGrid component
        os.environ["LEADLOOP_SCHEDULER"] = "off"
        cpu_started = time.process_time()
        times = render_times(args.runs, args.page, args.role)
        cpu = time.process_time() - cpu_started
        dispose_engines()

    print(f"\n{'page':<10} {'renders':>7} {'median':>8} {'p95':>8}")
    worst_key, worst = "", 0.0
    for key, values in times.items():
        figure = p95(values)
        print(f"{key:<10} {len(values):>7} {statistics.median(values):>7.2f}s {figure:>7.2f}s")
        if figure > worst:
            worst_key, worst = key, figure
    print(f"CPU time of this process while rendering: {cpu:.1f} s")
    verdict = "PASS" if worst < TARGET_SECONDS else "FAIL"
    print(f"{verdict} slowest page p95 {worst:.2f} s ({worst_key}); target < {TARGET_SECONDS} s for every page")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
