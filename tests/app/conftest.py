"""Page tests with Streamlit's AppTest against a seeded database (SQLite, and PostgreSQL when configured).

``LEADLOOP_GRID=native`` makes the grid helper render ``st.dataframe``: AppTest cannot render custom
components; the real AgGrid is covered in the browser tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from db.engine import make_engine
from seed.demo import seed_demo
from tests.conftest import TEST_DATABASE_URL, _postgres_engine, _truncate_all, fresh_sqlite_url

APP = str(Path(__file__).resolve().parents[2] / "app.py")
DEMO_PASSWORD = "demo1234"
APP_TEST_LEADS = 400


@pytest.fixture(scope="session")
def seeded_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seeded SQLite file per run; each test module copies it."""
    folder = tmp_path_factory.mktemp("seeded")
    url = fresh_sqlite_url(folder, tmp_path_factory)
    engine = make_engine(url)
    seed_demo(engine, leads=APP_TEST_LEADS, seed=7)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return Path(url.removeprefix("sqlite:///"))


@pytest.fixture(params=["sqlite", "postgresql"])
def app_database(request, seeded_sqlite_file, tmp_path, monkeypatch) -> Iterator[str]:  # noqa: ANN001
    """DATABASE_URL of a seeded database for one test."""
    if request.param == "postgresql":
        if not TEST_DATABASE_URL:
            pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL variant skipped")
        engine = _postgres_engine()
        _truncate_all(engine)
        seed_demo(engine, leads=APP_TEST_LEADS, seed=7)
        url = TEST_DATABASE_URL
    else:
        target = tmp_path / "app.db"
        shutil.copyfile(seeded_sqlite_file, target)
        url = f"sqlite:///{target}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("LEADLOOP_GRID", "native")
    yield url


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def logged_in(username: str, password: str = DEMO_PASSWORD, lang: str | None = None) -> AppTest:
    """An AppTest signed in as ``username`` and showing the home page."""
    at = new_app()
    at.run()
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    assert "actor" in at.session_state, [e.value for e in at.error]
    if lang:
        at.session_state["lang"] = lang
        at.run()
    return at
