"""Workflows in Chromium: the seeded recall flow drawn as a diagram, a template copied and activated."""

from __future__ import annotations

from tests.e2e.conftest import act, login, screenshot


def test_diagram_template_and_activation(page, app_server):
    login(page, app_server, "marketer")
    act(page, lambda: page.locator("[data-testid='stSidebar']").get_by_text("自动化流程").click())
    page.get_by_text("流程检查通过").first.wait_for()
    # The diagram is drawn in the browser (Graphviz compiled to WebAssembly): an SVG with a node per step.
    svg = page.locator("[data-testid='stGraphVizChart'] svg").first
    svg.wait_for()
    assert svg.locator("g.node").count() >= 10
    svg.scroll_into_view_if_needed()
    screenshot(page, "workflows-01-diagram")

    act(page, lambda: page.get_by_role("button", name="使用模板").click())
    page.get_by_text("已创建流程草稿").first.wait_for()
    act(page, lambda: page.get_by_role("button", name="启用").click())
    page.get_by_text("流程已启用").first.wait_for()
    assert page.get_by_role("button", name="暂停").count() == 1
    # Tabs switch in the browser without a script run.
    page.get_by_role("tab", name="调度器").click()
    page.get_by_text("主调度进程").first.wait_for()
    page.get_by_text("主调度进程").first.scroll_into_view_if_needed()
    screenshot(page, "workflows-02-activated")
