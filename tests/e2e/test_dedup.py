"""A marketer reviews a possible duplicate in Chromium: the side-by-side comparison and a decision."""

from __future__ import annotations

from tests.e2e.conftest import act, login, screenshot, wait_idle


def test_marketer_reviews_a_pair(page, app_server):
    login(page, app_server, "marketer")
    sidebar = page.locator("[data-testid='stSidebar']")
    act(page, lambda: sidebar.get_by_text("查重审核").click())
    page.get_by_text("逐对比较").wait_for()
    grid = page.frame_locator("iframe[title='st_aggrid.AgGrid.agGrid']").first
    grid.locator(".ag-row").first.wait_for(timeout=90_000)  # the real AgGrid lists the queue
    screenshot(page, "dedup-00-queue")
    page.get_by_text("黄色标出的是两条线索不同的字段。").wait_for()
    page.get_by_text("合并这两条线索").scroll_into_view_if_needed()
    wait_idle(page)
    screenshot(page, "dedup-01-review")
    act(page, lambda: page.get_by_role("button", name="跳过").click())
    page.get_by_text("已跳过，可在“已跳过”中再处理。").wait_for()
    page.get_by_role("tab", name="无效线索").click()  # tabs switch in the browser, without a rerun
    page.get_by_text("永久删除").first.wait_for()
    screenshot(page, "dedup-02-invalid")
