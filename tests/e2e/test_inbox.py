"""A sales rep on a phone (390×844, touch) opens the MQL inbox in Chromium, accepts one MQL with one tap and
sends another back with a reason and a note; both land in the database."""

from __future__ import annotations

import re

import pytest
from sqlmodel import Session

from db.engine import make_engine
from db.models import Assignment, Lead
from tests.e2e.conftest import act, screenshot, wait_idle, watch

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser, app_server):  # noqa: ANN001, ANN201
    context = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    page = watch(context.new_page())
    page.set_default_timeout(60_000)  # the machine may be busy with other tests
    yield page
    context.close()


def _first_card(page):  # noqa: ANN001, ANN202
    card = page.locator("[class*='st-key-mql_card_']").first
    card.wait_for()
    assignment_id = int(re.search(r"st-key-mql_card_(\d+)", card.get_attribute("class") or "").group(1))
    return card, assignment_id


def _state(url: str, assignment_id: int) -> tuple[Assignment, Lead]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            row = session.get(Assignment, assignment_id)
            return row, session.get(Lead, row.lead_id)
    finally:
        engine.dispose()


def test_a_rep_accepts_and_rejects_on_a_phone(phone, app_server, e2e_database_url):
    page = phone
    page.goto(app_server)
    wait_idle(page)
    page.get_by_label("用户名").fill("sales1")
    page.get_by_label("密码").fill("demo1234")
    act(page, lambda: page.get_by_role("button", name="登录").tap())
    # On a phone the sidebar is folded away: open it and tap the inbox.
    page.get_by_test_id("stExpandSidebarButton").tap()
    sidebar = page.get_by_test_id("stSidebar")
    act(page, lambda: sidebar.get_by_text("MQL 收件箱").tap())
    page.get_by_role("heading", name="MQL 收件箱").wait_for()
    if sidebar.get_attribute("data-collapsed") == "false":  # fold it again to free the screen
        sidebar.get_by_test_id("stSidebarHeader").get_by_role("button").first.tap()
        page.wait_for_selector("[data-testid='stSidebar'][data-collapsed='true']", state="attached")
    wait_idle(page)
    card, accepted_id = _first_card(page)
    accept = card.get_by_role("button", name="接受")
    box = accept.bounding_box()
    assert box and box["width"] >= 300 and box["height"] >= 36, "a button a thumb can hit"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1, "no sideways scrolling"
    screenshot(page, "inbox-01-phone")

    act(page, lambda: accept.tap())
    page.get_by_text(re.compile("^已接受：")).first.wait_for()
    screenshot(page, "inbox-02-accepted")
    row, lead = _state(e2e_database_url, accepted_id)
    assert (row.status, lead.stage) == ("accepted", "sal")
    assert page.locator(f".st-key-mql_card_{accepted_id}").count() == 0

    card, rejected_id = _first_card(page)
    assert rejected_id != accepted_id
    card.get_by_text("退回…").tap()  # opening the expander and choosing in the form run no script
    card.get_by_text("暂无预算").tap()
    card.get_by_label("备注").fill("今年预算已用完，明年二季度再联系")
    screenshot(page, "inbox-03-reject-form")
    page.get_by_test_id("stToast").first.wait_for(state="detached")  # the accept toast has gone
    submit = card.get_by_role("button", name="退回市场部")
    submit.scroll_into_view_if_needed()
    act(page, lambda: submit.tap())
    page.get_by_text(re.compile("^已退回市场部：")).first.wait_for()
    screenshot(page, "inbox-04-rejected")
    row, lead = _state(e2e_database_url, rejected_id)
    assert (row.status, row.reason, row.note) == ("rejected", "no_budget", "今年预算已用完，明年二季度再联系")
    assert lead.stage == "recycled" and lead.owner_id is None
