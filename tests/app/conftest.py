"""Page tests with Streamlit's AppTest against a seeded database (SQLite, and PostgreSQL when configured).

``LEADLOOP_GRID=native`` makes the grid helper render ``st.dataframe``: AppTest cannot render custom
components; the real AgGrid is covered in the browser tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url
from streamlit.testing.v1 import AppTest

from db.engine import dispose_engines, make_engine, normalized_url
from db.migrate import upgrade_to_head
from seed.demo import seed_demo
from tests.conftest import TEST_DATABASE_URL, fresh_sqlite_url

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


def _admin_execute(statement: str) -> None:
    engine = create_engine(normalized_url(TEST_DATABASE_URL), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(statement)
    engine.dispose()


@pytest.fixture(scope="session")
def seeded_postgres_template() -> Iterator[str]:
    """A seeded PostgreSQL template database beside TEST_DATABASE_URL's, built once per run.

    Each page test gets a copy (``CREATE DATABASE … TEMPLATE``, a file copy on the server), which is much faster
    than seeding again.
    """
    assert TEST_DATABASE_URL
    name = make_url(TEST_DATABASE_URL).database + "_app_template"
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_execute(f'CREATE DATABASE "{name}"')
    url = make_url(normalized_url(TEST_DATABASE_URL)).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade_to_head(engine)
    seed_demo(engine, leads=APP_TEST_LEADS, seed=7)
    engine.dispose()
    yield name
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def app_database(request, seeded_sqlite_file, tmp_path_factory) -> Iterator[str]:  # noqa: ANN001
    """DATABASE_URL of a seeded database shared by one test module (tests there must not depend on each
    other's writes: use unique names for what they create)."""
    if request.param == "postgresql":
        if not TEST_DATABASE_URL:
            pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL variant skipped")
        template = request.getfixturevalue("seeded_postgres_template")
        name = make_url(TEST_DATABASE_URL).database + "_app"
        dispose_engines()
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        url = make_url(normalized_url(TEST_DATABASE_URL)).set(database=name).render_as_string(hide_password=False)
    else:
        target = tmp_path_factory.mktemp("app") / "app.db"
        shutil.copyfile(seeded_sqlite_file, target)
        url = f"sqlite:///{target}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", url)
        patch.setenv("LEADLOOP_GRID", "native")
        yield url
    dispose_engines()


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def logged_in(username: str, password: str = DEMO_PASSWORD, lang: str | None = "zh") -> AppTest:
    """An AppTest signed in as ``username`` and showing the home page, in ``lang`` (Chinese unless asked).

    The language switch is saved on the user, as in the product, so the language is set on every login: a
    module's earlier test may have left this user in English. ``lang=None`` keeps the user's saved choice.
    """
    at = new_app()
    at.run()
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    assert "actor" in at.session_state, [e.value for e in at.error]
    if lang and lang != at.session_state["lang"]:
        at.selectbox(key="language_switch").select(lang)  # as the user does, in the sidebar
        at.run()
        assert at.session_state["lang"] == lang
    return at


_WIDGETS_WITH_LABELS = ("button", "text_input", "text_area", "number_input", "selectbox", "multiselect", "radio",
                        "checkbox", "toggle", "date_input", "slider", "select_slider", "metric", "tabs",
                        "expander")
_TEXT_ELEMENTS = ("title", "header", "subheader", "markdown", "caption", "info", "warning", "success", "error")


def interface_texts(at: AppTest) -> list[str]:
    """The interface's own words on the current page: headings, labels, buttons, notices and grid headers.

    Cell values are left out (they are data, which may be in either language); markdown is included, so a
    page that writes a lead's name into markdown must expect it here.
    """
    texts: list[str] = []
    for name in _TEXT_ELEMENTS:
        texts.extend(str(element.value) for element in getattr(at, name))
    for name in _WIDGETS_WITH_LABELS:
        for element in at.get(name):
            text = getattr(element, "label", None)
            if text:
                texts.append(str(text))
    for frame in at.dataframe:
        texts.extend(str(column) for column in frame.value.columns)
    return texts


def open_tab(at: AppTest, tabs_key: str, label: str) -> AppTest:
    """Open the tab ``label`` of the ``st.tabs`` keyed ``tabs_key``, as a click on it does: pages whose tabs rerun
    on change run only the open tab's code."""
    at.session_state[tabs_key] = label
    at.run()
    assert not at.exception, at.exception
    return at
