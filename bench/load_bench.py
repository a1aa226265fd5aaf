"""Twenty people using the console at once while a 100,000-row import and workflow ticks run.

    python -m bench.load_bench [--users 20] [--rounds 3] [--rows 100000] [--page-timeout 300] [--url postgresql://…]

Builds its own database (the demo world in a temporary SQLite file, or ``--url`` for an empty PostgreSQL database
you name), serves the console with ``streamlit run app.py``, and drives ``--users`` browser sessions in one
headless Chromium — marketers, managers, sales reps and the admin, each clicking through the pages their role
opens, ``--rounds`` times. Meanwhile ``python -m core import`` loads a messy 100,000-row trade-show file and
``python -m core tick`` runs workflow ticks, as separate processes writing to the same database.

A page time is the time from the click in the sidebar to the end of the script run it caused. Reported: pages
rendered, median and p95 page time, and every error a user saw. Passes when no user saw an error or exception
(in particular no "database is locked"), the import committed every row of its file and the ticks finished.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from playwright.async_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import func, select
from sqlmodel import Session

from bench.import_bench import messy_file, people
from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.models import ImportBatch, ImportRow
from seed.demo import seed_demo
from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    IDLE,
    app_socket,
    run_finished,
    start_app_server,
    watch,
)

ROOT = Path(__file__).resolve().parents[1]
USERS = ["marketer", "manager", "sales1", "sales2", "sales3", "sales4", "admin"]
ROLE_OF = {"marketer": "marketer", "manager": "manager", "admin": "admin"}
CONNECTED = "[data-testid='stApp'][data-test-connection-state='CONNECTED']"
PAGE_TIMEOUT_S = 300  # default: a page that takes longer counts as an error the user saw


async def _idle(page) -> None:  # noqa: ANN001
    await page.wait_for_selector(CONNECTED, state="attached")
    await page.wait_for_selector(IDLE, state="attached")


async def _act(page, action, timeout_ms: float) -> float:  # noqa: ANN001
    """Run ``action`` and wait for the script run it causes; the seconds it took."""
    await _idle(page)
    started = time.perf_counter()
    async with app_socket(page).expect_event("framereceived", predicate=run_finished, timeout=timeout_ms):
        await action()
    await _idle(page)
    return time.perf_counter() - started


async def _problems(page) -> list[str]:  # noqa: ANN001
    seen = []
    for selector in ("[data-testid='stException']", "[data-testid='stAlertContentError']"):
        for text in await page.locator(selector).all_inner_texts():
            seen.append(text.strip()[:200])
    return seen


async def _user(browser, base: str, username: str, rounds: int, timeout_ms: float, times: list[float],  # noqa: ANN001
                problems: list[str]) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = watch(await context.new_page())
    page.set_default_timeout(timeout_ms)
    await page.goto(base)
    await _idle(page)
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码", exact=True).fill("demo1234")
    await _act(page, lambda: page.get_by_role("button", name="登录").click(), timeout_ms)
    refused = await _problems(page)
    if refused:  # a sign-in that fails is an error the user saw; this user goes no further
        problems.extend(f"{username} signing in: {p}" for p in refused)
        await context.close()
        return
    await page.wait_for_selector("[data-testid='stSidebarNav'] a")
    links = page.locator("[data-testid='stSidebarNav'] a")
    hrefs = [await links.nth(i).get_attribute("href") for i in range(await links.count())]
    for round_number in range(rounds):
        for href in filter(None, hrefs):
            where = href.removeprefix(base).strip("/") or "home"
            link = page.locator(f"[data-testid='stSidebarNav'] a[href='{href}']").first
            try:
                times.append(await _act(page, link.click, timeout_ms))
            except PlaywrightTimeout:
                state = await page.evaluate(
                    "() => [location.href, document.querySelector(\"[data-testid='stApp']\")"
                    "?.getAttribute('data-test-script-state'), "
                    "document.querySelector(\"[data-testid='stApp']\")?.getAttribute('data-test-connection-state')]")
                problems.append(f"{username} on {where}: no answer within {timeout_ms / 1000:.0f} s {state}")
                shot = Path(tempfile.gettempdir()) / f"leadloop-load-{username}-{where}.png"
                await page.screenshot(path=str(shot))  # what the user was looking at
                continue
            problems.extend(f"{username} on {where}: {p}" for p in await _problems(page))
        print(f"  {username}: round {round_number + 1} done, {len(times)} pages so far", flush=True)
    await context.close()


async def _drive(base: str, users: int, rounds: int, timeout_ms: float) -> tuple[list[float], list[str]]:
    from playwright.async_api import async_playwright

    times: list[float] = []
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        await asyncio.gather(*(_user(browser, base, USERS[k % len(USERS)], rounds, timeout_ms, times, problems)
                               for k in range(users)))
        await browser.close()
    return times, problems


def _background(url: str, csv_path: Path) -> list[subprocess.Popen]:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    importing = subprocess.Popen([sys.executable, "-m", "core", "import", str(csv_path), "--channel", "展会",
                                  "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    ticking = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "for _ in range(5):\n"
        "    subprocess.run([sys.executable, '-m', 'core', 'tick'], check=True)\n"
        "    time.sleep(2)\n")], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return [importing, ticking]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--page-timeout", type=float, default=PAGE_TIMEOUT_S, metavar="SECONDS",
                        help="a page visit that takes longer counts as an error the user saw")
    parser.add_argument("--url", help="an empty PostgreSQL database to use (default: a temporary SQLite file)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="leadloop-load-") as folder:
        url = args.url or f"sqlite:///{folder}/load.db"
        engine = make_engine(url)
        upgrade_to_head(engine)
        seed_demo(engine)
        rng = np.random.default_rng(3)
        data, shape = messy_file(args.rows, people(max(5_000, args.rows // 4), rng), rng)
        csv_path = Path(folder) / "展会名单.csv"
        csv_path.write_bytes(data)
        print(f"demo world seeded; import file of {args.rows:,} rows ({shape})")

        server, base = start_app_server(url, Path(folder) / "server.log")
        try:
            background = _background(url, csv_path)
            started = time.perf_counter()
            times, problems = asyncio.run(_drive(base, args.users, args.rounds, args.page_timeout * 1000))
            browsing = time.perf_counter() - started
            outputs = [p.communicate(timeout=1800) for p in background]
        finally:
            server.terminate()
            server.wait(timeout=30)
            kept_log = Path(tempfile.gettempdir()) / "leadloop-load-server.log"
            shutil.copyfile(Path(folder) / "server.log", kept_log)
            print(f"server log: {kept_log}")

        importing, ticking = background
        summary = {}
        if importing.returncode == 0:
            summary = json.loads(outputs[0][0].strip().splitlines()[-1])
        else:
            problems.append(f"import exited {importing.returncode}: {outputs[0][1].strip()[-1000:]}")
        if ticking.returncode != 0:
            problems.append(f"ticks exited {ticking.returncode}: {outputs[1][1].strip()[-1000:]}")
        with Session(engine) as session:
            stored = session.scalar(select(func.count()).select_from(ImportRow).join(
                ImportBatch, ImportBatch.id == ImportRow.batch_id).where(ImportBatch.filename == csv_path.name))
        engine.dispose()

    print(f"{args.users} users, {len(times)} pages in {browsing:.0f} s")
    if times:
        ordered = sorted(times)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(f"page time: median {statistics.median(times):.2f} s, p95 {p95:.2f} s, max {max(times):.2f} s")
    print(f"import: {summary}; raw rows stored {stored:,} of {args.rows:,}")
    for problem in problems[:20]:
        print("  seen:", problem)
    locked = [p for p in problems if "locked" in p.lower()]
    ok = not problems and stored == args.rows
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict} {len(problems)} errors seen by users ({len(locked)} 'database is locked'), "
          f"{stored:,}/{args.rows:,} import rows kept, {args.users} concurrent users; target: none seen, all kept")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
