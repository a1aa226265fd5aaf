"""The Rules page in Chromium: a marketer types a misspelt rule and sees where and what to fix, then a valid one
and sees how many leads it matches; “Why this score?” shows a lead's ledger."""

from __future__ import annotations

from tests.e2e.conftest import act, login, screenshot


def _open_rules(page, base: str) -> None:  # noqa: ANN001
    login(page, base, "marketer")
    act(page, lambda: page.locator("[data-testid='stSidebar']").get_by_text("标签与评分规则").click())


def test_typing_a_rule_validates_and_previews(page, app_server):
    _open_rules(page, app_server)
    page.get_by_role("tab", name="匹配度评分（静态）").click()  # switching tabs does not rerun the script
    box = page.locator("[role='tabpanel']:visible").get_by_role("textbox", name="条件")
    box.fill('职位 包含 "总监" 且 公司规膜 >= 200')
    act(page, lambda: box.press("Control+Enter"))
    page.get_by_text("您是想写").first.wait_for()
    screenshot(page, "rules-01-error")
    assert "第 1 行第 14 列" in page.locator("[data-testid='stAlertContentError']").first.inner_text()
    box.fill('职位 包含 "总监" 且 公司规模 >= 200')
    act(page, lambda: box.press("Control+Enter"))
    panel = page.locator("[role='tabpanel']:visible")
    panel.get_by_text("规则有效。").wait_for()
    assert panel.get_by_text("条线索").first.is_visible()
    screenshot(page, "rules-02-preview")


def test_why_this_score(page, app_server):
    _open_rules(page, app_server)
    page.get_by_role("tab", name="为什么是这个分数？").click()
    box = page.get_by_label("线索（编号、姓名、手机或公司）")
    act(page, lambda: (box.fill("1"), box.press("Enter")))
    page.get_by_text("契合分").first.wait_for()
    screenshot(page, "rules-03-why")
