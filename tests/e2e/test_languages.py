"""The same screens in 简体中文 and in English, in Chromium with the CJK fonts: the switch in the sidebar changes
every label at once, and the choice is kept for the user's next login."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from core.i18n import t
from db.engine import make_engine
from db.models import User
from tests.e2e.conftest import act, login, screenshot, wait_idle


def _language(url: str, username: str) -> str:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return session.scalar(select(User.language).where(User.username == username))
    finally:
        engine.dispose()


def _switch(page, current: str, target: str) -> None:  # noqa: ANN001
    page.get_by_role("combobox", name=t("shell.language", current), exact=True).click()
    act(page, lambda: page.get_by_role("option", name={"zh": "简体中文", "en": "English"}[target]).click())


def test_switching_between_chinese_and_english(page, app_server, e2e_database_url):
    login(page, app_server, "manager")
    sidebar = page.get_by_test_id("stSidebar")
    act(page, lambda: sidebar.get_by_text(t("nav.reports", "zh"), exact=True).click())
    page.get_by_role("heading", name=t("reports.title", "zh")).wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    screenshot(page, "languages-01-reports-zh")

    _switch(page, "zh", "en")
    page.get_by_role("heading", name=t("reports.title", "en")).wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    assert sidebar.get_by_text(t("nav.inbox", "en"), exact=True).is_visible()
    assert sidebar.get_by_text(t("nav.inbox", "zh"), exact=True).count() == 0
    screenshot(page, "languages-02-reports-en")
    # The demo's channels are named in Chinese; an English reader sees their English labels in the charts.
    page.get_by_role("tab", name=t("reports.tab.attribution", "en")).click()  # tabs switch without a rerun
    chart = page.get_by_test_id("stPlotlyChart").filter(has_text="Trade shows").first
    chart.wait_for()
    assert page.get_by_test_id("stPlotlyChart").filter(has_text="展会").count() == 0
    screenshot(page, "languages-03-attribution-en")
    assert _language(e2e_database_url, "manager") == "en", "the choice is saved on the user"

    _switch(page, "en", "zh")
    wait_idle(page)
    page.get_by_role("heading", name=t("reports.title", "zh")).wait_for()
    assert _language(e2e_database_url, "manager") == "zh"
