"""Take the README's screenshots: the console on a freshly seeded SQLite database, in headless Chromium.

    python docs/screenshots.py            # writes docs/screenshots/*.png

Needs Debian's ``chromium`` and ``fonts-noto-cjk`` (the same as the browser tests).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402
from sqlalchemy import update  # noqa: E402

from db.engine import make_engine  # noqa: E402
from db.migrate import upgrade_to_head  # noqa: E402
from db.models import User  # noqa: E402
from seed.demo import seed_demo  # noqa: E402
from tests.e2e.conftest import act, launch_chromium, wait_idle, watch  # noqa: E402
from ui.navigation import PAGES  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
# (user, page key, file name, viewport, language)
SHOTS = [
    ("marketer", "home", "home", (1400, 900), "zh"),
    ("marketer", "import", "import", (1400, 900), "zh"),
    ("marketer", "dedup", "dedup", (1400, 900), "zh"),
    ("marketer", "rules", "rules", (1400, 900), "zh"),
    ("marketer", "workflows", "workflows", (1400, 900), "zh"),
    ("marketer", "journeys", "journeys", (1400, 900), "zh"),
    ("manager", "reports", "reports", (1400, 1000), "zh"),
    ("admin", "reports", "reports-en", (1400, 1000), "en"),
    ("sales1", "inbox", "inbox-phone", (390, 844), "zh"),
    ("admin", "admin", "admin-en", (1400, 900), "en"),
]


def _login(page, base: str, username: str, lang: str) -> None:  # noqa: ANN001
    page.goto(base)
    wait_idle(page)
    page.get_by_label("用户名" if lang == "zh" else "Username").fill(username)
    page.get_by_label("密码" if lang == "zh" else "Password", exact=True).fill("demo1234")
    button = "登录" if lang == "zh" else "Sign in"
    act(page, lambda: page.get_by_role("button", name=button).click())
    wait_idle(page)


def main() -> int:
    from tests.e2e.conftest import start_app_server

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/shots.db"
        engine = make_engine(url)
        upgrade_to_head(engine)
        seed_demo(engine)
        with engine.begin() as connection:  # the English shots are taken as the admin, who reads English
            connection.execute(update(User).where(User.username == "admin").values(language="en"))
        engine.dispose()
        process, base = start_app_server(url, scheduler=True)
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                for username, key, name, (width, height), lang in SHOTS:
                    locale = "zh-CN" if lang == "zh" else "en-US"
                    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
                    page = watch(context.new_page())
                    page.set_default_timeout(60_000)
                    _login(page, base, username, lang)
                    spec = next(p for p in PAGES if p.key == key)
                    if not spec.default:
                        if width < 600:  # the phone layout keeps the sidebar closed: open the page by its URL path
                            page.locator("[data-testid='stExpandSidebarButton']").click()
                        link = page.locator(f"[data-testid='stSidebarNav'] a[href$='/{spec.url_path}']")
                        act(page, lambda link=link: link.click())
                        if width < 600:
                            page.locator("[data-testid='stSidebarCollapseButton'] button").click()
                    page.mouse.move(width // 2, 5)  # no link left in its hover state by the last click
                    page.wait_for_timeout(1500)  # let charts and grids paint
                    path = OUT / f"{name}.png"
                    page.screenshot(path=str(path), full_page=False)
                    print(path.relative_to(ROOT))
                    context.close()
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
