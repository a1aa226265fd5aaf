"""Journeys and Accounts in Chromium: search as you type in Chinese and in pinyin, pick a row in the real AgGrid,
read the profile; tick an account and read its buying committee."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlmodel import Session

from db.engine import make_engine
from db.models import Account, Lead, StageChange, Touchpoint
from tests.e2e.conftest import act, login, screenshot, wait_idle

GRID = "iframe[title='st_aggrid.AgGrid.agGrid']"


def _lead(url: str) -> dict:
    """A valid lead with a journey and a name in Chinese characters."""
    engine = make_engine(url)
    with Session(engine) as session:
        touches = select(Touchpoint.lead_id, func.count().label("n")).group_by(Touchpoint.lead_id).subquery()
        rows = session.execute(
            select(Lead.id, Lead.name, Lead.name_key, Lead.company)
            .join(touches, touches.c.lead_id == Lead.id)
            .where(Lead.status == "valid", Lead.name.is_not(None), Lead.id.in_(select(StageChange.lead_id)))
            .order_by(touches.c.n.desc(), Lead.id).limit(200)
        ).all()
    engine.dispose()
    row = next(r for r in rows if re.fullmatch(r"[\u4e00-\u9fff]{2,4}", r.name))
    return {"id": row.id, "name": row.name, "name_key": row.name_key, "company": row.company}


def _open_journeys(page, base: str) -> None:  # noqa: ANN001
    login(page, base, "marketer")
    act(page, lambda: page.locator("[data-testid='stSidebar']").get_by_text("客户旅程").click())


def _type(page, text: str) -> None:  # noqa: ANN001
    """Type into the search box as a person does; the page reruns after the typing pause."""
    box = page.get_by_label("查找线索").last
    act(page, lambda: box.fill(text))


def _grid_rows(page):  # noqa: ANN001, ANN202
    grid = page.frame_locator(GRID).first
    grid.locator(".ag-center-cols-container .ag-row").first.wait_for()
    return grid.locator(".ag-center-cols-container .ag-row")


def test_search_in_chinese_then_pinyin_and_open_a_profile(page, app_server, e2e_database_url):
    lead = _lead(e2e_database_url)
    _open_journeys(page, app_server)
    _type(page, lead["name"])
    rows = _grid_rows(page)
    names = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert any(lead["name"] in n for n in names)
    screenshot(page, "journeys-01-search-chinese")

    _type(page, lead["name_key"])
    rows = _grid_rows(page)
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert any(lead["name"] in text for text in texts), "pinyin finds the same person"
    screenshot(page, "journeys-02-search-pinyin")

    # Pick the row of this lead (not simply the first) in the real grid: the profile must be that lead's.
    target = next(i for i, text in enumerate(texts) if text.split("\n")[0].strip() == str(lead["id"]))
    act(page, lambda: rows.nth(target).click())
    heading = page.get_by_role("heading", level=3).first
    heading.wait_for()
    assert heading.inner_text().startswith(lead["name"])
    page.get_by_text("时间线").first.wait_for()
    timeline = page.frame_locator(GRID).nth(1)
    timeline.locator(".ag-row").first.wait_for()
    assert timeline.locator(".ag-row").count() > 0
    assert page.get_by_role("button", name="导出 CSV").first.is_visible()
    screenshot(page, "journeys-03-profile")


def test_journey_analysis_draws_the_sankey(page, app_server):
    _open_journeys(page, app_server)
    act(page, lambda: page.get_by_text("旅程分析").click())
    page.wait_for_selector(".js-plotly-plot")
    wait_idle(page)
    assert page.get_by_text("成为 MQL 之前最常见的触点序列").is_visible()
    screenshot(page, "journeys-04-analysis")


def test_tick_an_account_and_read_its_committee(page, app_server, e2e_database_url):
    engine = make_engine(e2e_database_url)
    with Session(engine) as session:
        count = session.scalar(select(func.count()).select_from(Account))
    engine.dispose()
    assert count > 0
    login(page, app_server, "manager")
    act(page, lambda: page.locator("[data-testid='stSidebar']").get_by_text("客户（ABM）").click())
    rows = _grid_rows(page)
    first_name = rows.nth(0).inner_text().split("\n")[0].strip()
    act(page, lambda: rows.nth(0).locator(".ag-checkbox-input").first.click())
    page.get_by_text("购买委员会").wait_for()
    heading = page.get_by_role("heading", level=3).first
    assert heading.inner_text().startswith(first_name)
    assert page.get_by_text("客户负责人").first.is_visible(), "a manager sets owners"
    screenshot(page, "accounts-01-committee")
