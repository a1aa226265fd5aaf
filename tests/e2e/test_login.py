"""A person signs in with a demo account in Chromium and lands on a live home page."""

from __future__ import annotations

from tests.e2e.conftest import act, login, screenshot, wait_idle


def test_marketer_logs_in_and_sees_the_home_page(page, app_server):
    page.goto(app_server)
    wait_idle(page)
    screenshot(page, "01-login")
    login(page, app_server, "marketer")
    page.get_by_text("今日新线索").wait_for()
    assert page.get_by_text("有效线索总数").is_visible()
    sidebar = page.locator("[data-testid='stSidebar']")
    assert sidebar.get_by_text("标签与评分规则").is_visible()
    assert sidebar.get_by_text("MQL 收件箱").count() == 0, "a marketer has no sales inbox"
    screenshot(page, "02-home-marketer")


def test_wrong_password_shows_one_message(page, app_server):
    page.goto(app_server)
    wait_idle(page)
    page.get_by_label("用户名").fill("marketer")
    page.get_by_label("密码").fill("not-the-password1")
    act(page, lambda: page.get_by_role("button", name="登录").click())
    page.get_by_text("用户名或密码不正确。").wait_for()
