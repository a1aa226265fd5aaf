"""Browser tests: ``streamlit run app.py`` on a seeded database, driven by Playwright in Debian's Chromium.

The server and the browser start once per test session. After every action the tests wait for Streamlit's
own "script finished" message and then its idle marker, never for a fixed time. Screenshots go to
``tests/e2e/artifacts/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from db.engine import make_engine
from seed.demo import seed_demo
from tests.conftest import fresh_sqlite_url

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "e2e" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def e2e_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("e2e")
    url = fresh_sqlite_url(folder, tmp_path_factory)
    engine = make_engine(url)
    seed_demo(engine, leads=600, seed=11)
    engine.dispose()
    return url


def start_app_server(database_url: str, log_path: Path | None = None, *,
                     scheduler: bool = False) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` on ``database_url`` at a free local port, once it answers its health check.

    The in-process scheduler stays off unless asked: tests move time themselves."""
    port = _free_port()
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    env = {**os.environ, "DATABASE_URL": database_url, "LEADLOOP_SCHEDULER": "on" if scheduler else "off"}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{base}/_stcore/health", timeout=1).read() == b"ok":
                return process, base
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the Streamlit server did not answer /_stcore/health within 60 s")


def launch_chromium(playwright):  # noqa: ANN001, ANN201
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="session")
def app_server(e2e_database_url: str) -> Iterator[str]:
    """The console served on a free local port; its output is kept for the failure report."""
    yield from serve(e2e_database_url, "server.log")


def serve(database_url: str, log_name: str) -> Iterator[str]:
    """Body of a server fixture: skip without Chromium, serve ``database_url``, stop the server afterwards."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium fonts-noto-cjk)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        process, base = start_app_server(database_url, ARTIFACTS / log_name)
    except RuntimeError as error:
        pytest.fail(str(error))
    yield base
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_server):  # noqa: ANN001, ANN201
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page = watch(context.new_page())
    page.set_default_timeout(30_000)
    yield page
    context.close()


def wait_idle(page) -> None:  # noqa: ANN001
    """Wait until the app is connected and no script run is in progress."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", state="attached")
    page.wait_for_selector(IDLE, state="attached")


def run_finished(payload: bytes | str) -> bool:
    """Whether a frame from the server is Streamlit's "script finished" message (not a run cut short by a rerun).

    Read on the wire rather than from ``data-test-script-state``: when the browser is busy, the "running" and
    "not running" updates can reach React in one batch, the attribute never changes, and a finished run looks
    like one that never started."""
    if isinstance(payload, str) or len(payload) > 512:  # the message is a few dozen bytes; deltas are larger
        return False
    message = ForwardMsg()
    try:
        message.ParseFromString(payload)
    except DecodeError:
        return False
    return (message.WhichOneof("type") == "script_finished"
            and message.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN)


class _Socket:
    """The page's current websocket to the server (a reconnect replaces it)."""

    def __init__(self, page) -> None:  # noqa: ANN001
        self.current = None
        page.on("websocket", self._opened)

    def _opened(self, socket) -> None:  # noqa: ANN001
        self.current = socket


_SOCKETS: dict[object, _Socket] = {}


def watch(page):  # noqa: ANN001, ANN201
    """Follow ``page``'s websocket so ``act`` can wait for script runs; call before the page opens the app."""
    _SOCKETS[page] = _Socket(page)
    page.on("close", lambda closed: _SOCKETS.pop(closed, None))
    return page


def app_socket(page):  # noqa: ANN001, ANN201
    followed = _SOCKETS.get(page)
    if followed is None or followed.current is None:
        raise RuntimeError("watch(page) must be called before the page opens the app")
    return followed.current


def act(page, action) -> None:  # noqa: ANN001
    """Do ``action`` (a click, a fill …) and wait until the script run it caused has finished.

    The wait is armed before the action, so a fast rerun is never missed, and it ends on the server's "script
    finished" message, so a slow one is never taken for done.
    """
    wait_idle(page)
    with app_socket(page).expect_event("framereceived", predicate=run_finished):
        action()
    wait_idle(page)


def login(page, base: str, username: str, password: str = "demo1234") -> None:  # noqa: ANN001
    page.goto(base)
    wait_idle(page)
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    act(page, lambda: page.get_by_role("button", name="登录").click())
    page.wait_for_selector("[data-testid='stSidebar']")
    wait_idle(page)


def screenshot(page, name: str) -> Path:  # noqa: ANN001
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001, ANN201
    """Keep each phase's report on the test item, so a fixture can tell a failed test at teardown."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
