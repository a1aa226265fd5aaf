"""The closed loop in Chromium, as the four roles live it, on a fresh database of its own.

The admin adds a sales rep; a marketer imports a GBK trade-show CSV (title lines above the header) and an XLSX
webinar attendance file, merges a duplicate from the review queue, writes a fit rule and an engagement rule and
sees their previews, and activates a workflow; time moves on through the CLI (rescore, workflow tick) and the
imported lead crosses the MQL line; the rep it was routed to accepts it on a phone and sends another MQL back;
the manager opens the funnel, attribution and ROI. Each step leaves a screenshot in tests/e2e/artifacts.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select
from sqlmodel import Session

from core.i18n import t
from db.engine import make_engine
from db.models import Assignment, AssignmentStatus, ImportBatch, Lead, Rule, Stage, Touchpoint, User, Workflow
from seed.demo import seed_demo
from tests.conftest import fresh_sqlite_url
from tests.e2e.conftest import ROOT, act, login, screenshot, serve, wait_idle, watch

COMPANY = "闭环测试智能制造有限公司"
PHONE_VIEWPORT = {"width": 390, "height": 844}


def zh(key: str, **params: object) -> str:
    return t(key, "zh", **params)


# ---------------------------------------------------------------------------------------------------------------
# A database and a server of its own: this module changes what it finds, other browser tests must not see it.
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loop_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("loop")
    url = fresh_sqlite_url(folder, tmp_path_factory)
    engine = make_engine(url)
    seed_demo(engine, leads=600, seed=23)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def loop_server(loop_url: str) -> Iterator[str]:
    yield from serve(loop_url, "loop-server.log")


@pytest.fixture
def desk(browser, loop_server, request):  # noqa: ANN001, ANN201
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    page = watch(context.new_page())
    page.set_default_timeout(90_000)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        screenshot(page, "loop-failed-here")  # what the marketer saw when the step failed
    context.close()


def _db(url: str) -> Session:
    return Session(make_engine(url))


def _cli(url: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "DATABASE_URL": url}, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _open(page, key: str) -> None:  # noqa: ANN001
    sidebar = page.get_by_test_id("stSidebar")
    act(page, lambda: sidebar.get_by_text(zh(f"nav.{key}"), exact=True).click())


def _select(page, label: str, option: str, *, rerun: bool = True) -> None:  # noqa: ANN001
    """Pick ``option`` in the selectbox labelled ``label``; inside a form nothing reruns until it is sent."""
    page.get_by_role("combobox", name=label, exact=True).first.click()
    choice = page.get_by_role("option", name=option, exact=True).first
    if rerun:
        act(page, choice.click)
    else:
        choice.click()


# ---------------------------------------------------------------------------------------------------------------
# The files a marketer brings
# ---------------------------------------------------------------------------------------------------------------
def _tradeshow_csv(path: Path) -> Path:
    lines = [
        "2026 上海工博会 展位扫码名单",
        "导出时间：2026-11-20",
        "姓名,手机,公司,职务,邮箱,省份,行业,公司规模,扫码时间",
        f"陈思远,139 1700 2468,{COMPANY},生产总监,siyuan.chen@bihuan-test.cn,上海,制造业,800,2026-11-18 10:12",
        "刘晓梅,+86 138-1700-1357,上海云杉信息技术有限公司,IT经理,xm.liu@yunshan-test.cn,上海,软件,150,"
        "2026-11-18 11:40",
        "测试,13800138000,测试公司,,test@test.com,,,,2026-11-18 12:00",
    ]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    return path


def _webinar_xlsx(path: Path) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.title = "参会名单"
    sheet.append(["姓名", "手机", "邮箱", "行为", "参会时长(分钟)", "签到时间"])
    sheet.append(["陈思远", 13917002468, "siyuan.chen@bihuan-test.cn", "参会", 52, "2026-11-20 14:00"])
    sheet.append(["刘晓梅", 13817001357, "xm.liu@yunshan-test.cn", "报名", 0, "2026-11-19 09:00"])
    buffer = io.BytesIO()
    book.save(buffer)
    path.write_bytes(buffer.getvalue())
    return path


def _import(page, channel: str, file: Path, shot: str) -> None:  # noqa: ANN001
    _open(page, "import")
    _select(page, zh("import.channel"), channel)
    act(page, lambda: page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(file)))
    page.get_by_text(zh("import.counts")).wait_for()
    screenshot(page, f"{shot}-preview")
    act(page, lambda: page.get_by_role("button", name=zh("import.confirm")).click())
    page.get_by_role("button", name=zh("import.summary_close")).wait_for()
    screenshot(page, f"{shot}-summary")
    act(page, lambda: page.get_by_role("button", name=zh("import.summary_close")).click())


def _visible(page, selector: str):  # noqa: ANN001, ANN202
    """The one element of ``selector`` on the open tab (every tab's widgets stay in the page, hidden)."""
    return page.locator(f"{selector} >> visible=true").first


def _write_rule(page, kind: str, name: str, text: str, points: int, shot: str) -> None:  # noqa: ANN001
    wait_idle(page)  # a tab chosen during a rerun would be reset by it
    tab = page.get_by_role("tab", name=zh(f"rule_kind.{kind}"), exact=True)
    tab.click()  # tabs switch without a rerun
    page.wait_for_function("(el) => el.getAttribute('aria-selected') === 'true'", arg=tab.element_handle())
    name_box = _visible(page, f"input[aria-label='{zh('rules.editor.name')}']")
    name_box.fill(name)
    act(page, lambda: name_box.press("Enter"))
    area = _visible(page, f"textarea[aria-label='{zh('rules.editor.text')}']")
    area.fill(text)
    act(page, lambda: area.press("Tab"))  # a text area applies its value when it loses focus
    _visible(page, f"text={zh('rules.editor.valid')}").wait_for()  # checked while typing
    points_box = _visible(page, f"input[aria-label='{zh('rules.editor.points')}']")
    points_box.fill(str(points))
    act(page, lambda: points_box.press("Enter"))
    page.get_by_text(re.compile(r"^匹配 [\d,]+ 条线索")).filter(visible=True).first.wait_for()  # the live preview
    screenshot(page, shot)
    act(page, lambda: _visible(page, f"button:has-text('{zh('rules.editor.save')}')").click())
    page.get_by_text(zh("rules.editor.saved")).first.wait_for()


# ---------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------
def test_the_closed_loop_from_import_to_sales_and_reports(desk, browser, loop_server, loop_url, tmp_path):
    page = desk

    # The admin adds a sales rep.
    login(page, loop_server, "admin")
    _open(page, "admin")
    page.get_by_label(zh("col.username"), exact=True).first.fill("sales_new")
    page.get_by_label(zh("admin.users.password"), exact=True).fill("Passw0rd99")
    _select(page, zh("col.role"), zh("role.sales"), rerun=False)
    act(page, lambda: page.get_by_role("button", name=zh("admin.users.create")).click())
    screenshot(page, "loop-01-admin-adds-rep")
    with _db(loop_url) as session:
        assert session.scalar(select(User.role).where(User.username == "sales_new")) == "sales"

    # The marketer imports a GBK trade-show list and an XLSX webinar attendance file.
    login(page, loop_server, "marketer")
    _import(page, "展会", _tradeshow_csv(tmp_path / "工博会扫码名单.csv"), "loop-02-tradeshow")
    _import(page, "线下研讨会", _webinar_xlsx(tmp_path / "研讨会参会名单.xlsx"), "loop-03-webinar")
    with _db(loop_url) as session:
        lead = session.scalars(select(Lead).where(Lead.company == COMPANY)).one()
        assert lead.phone == "+8613917002468" and lead.name == "陈思远"
        kinds = set(session.scalars(select(Touchpoint.kind).where(Touchpoint.lead_id == lead.id)))
        assert {"tradeshow_scan", "webinar_attended"} <= kinds
        batches = session.scalars(select(ImportBatch.filename).order_by(ImportBatch.id.desc()).limit(2)).all()
        assert set(batches) == {"工博会扫码名单.csv", "研讨会参会名单.xlsx"}
        lead_id = int(lead.id)

    # A duplicate from the review queue is merged.
    _open(page, "dedup")
    page.get_by_text(zh("dedup.merge_title")).wait_for()
    screenshot(page, "loop-04-dedup-pair")
    act(page, lambda: page.get_by_role("button", name=zh("dedup.action_merge"), exact=True).click())
    page.get_by_text(zh("dedup.merged_done")).first.wait_for()

    # A fit rule and an engagement rule, each with its live preview.
    _open(page, "rules")
    _write_rule(page, "fit", "闭环：重点客户", f'company contains "{COMPANY[:4]}"', 100, "loop-05-fit-rule")
    _write_rule(page, "engagement", "闭环：研讨会参会", 'kind = "webinar_attended"', 70, "loop-06-engagement-rule")
    with _db(loop_url) as session:
        names = set(session.scalars(select(Rule.name).where(Rule.active)))
        assert {"闭环：重点客户", "闭环：研讨会参会"} <= names

    # A workflow from a template, activated.
    _open(page, "workflows")
    act(page, lambda: page.get_by_role("button", name=zh("workflows.use_template")).click())
    act(page, lambda: page.get_by_role("button", name=zh("workflows.activate")).click())
    page.get_by_text(zh("workflows.activated")).first.wait_for()
    screenshot(page, "loop-07-workflow-active")
    with _db(loop_url) as session:
        assert session.scalar(select(Workflow.id).where(Workflow.status == "active")) is not None

    # Time moves on: the scheduler's work, run from the shell.
    _cli(loop_url, "score", "--full")
    _cli(loop_url, "tick")
    with _db(loop_url) as session:
        lead = session.get(Lead, lead_id)
        assert lead.stage == Stage.MQL and lead.grade == "A", (lead.stage, lead.grade, lead.engagement_score)
        waiting = session.scalars(select(Assignment).where(Assignment.lead_id == lead_id,
                                                           Assignment.status == AssignmentStatus.PENDING)).one()
        rep = session.get(User, waiting.rep_id)
        other = session.scalars(select(Assignment.id).where(Assignment.rep_id == rep.id,
                                                            Assignment.status == AssignmentStatus.PENDING,
                                                            Assignment.id != waiting.id)).first()
        assert other is not None, "the rep has another MQL to send back"
        accepted_id, rejected_id, rep_name = int(waiting.id), int(other), rep.username

    # The rep, on a phone, accepts the new MQL and sends another back.
    phone_context = browser.new_context(viewport=PHONE_VIEWPORT, locale="zh-CN", is_mobile=True, has_touch=True)
    phone = watch(phone_context.new_page())
    phone.set_default_timeout(90_000)
    try:
        phone.goto(loop_server)
        wait_idle(phone)
        phone.get_by_label("用户名").fill(rep_name)
        phone.get_by_label("密码", exact=True).fill("demo1234")
        act(phone, lambda: phone.get_by_role("button", name="登录").tap())
        phone.get_by_test_id("stExpandSidebarButton").tap()  # on a phone the sidebar starts folded
        sidebar = phone.get_by_test_id("stSidebar")
        act(phone, lambda: sidebar.get_by_text(zh("nav.inbox"), exact=True).tap())
        if sidebar.get_attribute("data-collapsed") == "false":  # fold it again to free the screen
            sidebar.get_by_test_id("stSidebarHeader").get_by_role("button").first.tap()
            phone.wait_for_selector("[data-testid='stSidebar'][data-collapsed='true']", state="attached")
        wait_idle(phone)
        card = phone.locator(f".st-key-mql_card_{accepted_id}")
        card.scroll_into_view_if_needed()
        screenshot(phone, "loop-08-rep-inbox-phone")
        act(phone, lambda: card.get_by_role("button", name="接受").tap())
        phone.locator(f".st-key-mql_card_{accepted_id}").wait_for(state="detached")
        card = phone.locator(f".st-key-mql_card_{rejected_id}")
        card.scroll_into_view_if_needed()
        card.get_by_text("退回…").tap()
        card.get_by_text("暂无预算").tap()
        submit = card.get_by_role("button", name="退回市场部")
        act(phone, lambda: submit.tap())
        # The card leaves the inbox (a toast says so too, but a toast may be gone by the time a busy machine looks).
        phone.locator(f".st-key-mql_card_{rejected_id}").wait_for(state="detached")
        screenshot(phone, "loop-09-rep-decided")
    finally:
        phone_context.close()
    with _db(loop_url) as session:
        assert session.get(Lead, lead_id).stage == Stage.SAL
        assert session.get(Assignment, rejected_id).status == AssignmentStatus.REJECTED

    # The manager reads the funnel, the attribution and the ROI.
    login(page, loop_server, "manager")
    _open(page, "reports")
    page.locator(".js-plotly-plot").first.wait_for()
    screenshot(page, "loop-10-manager-funnel")
    for tab in (zh("reports.tab.attribution"), zh("reports.tab.roi")):
        page.get_by_role("tab", name=tab).click()
        page.get_by_role("tabpanel").filter(visible=True).locator(".js-plotly-plot").first.wait_for()
        screenshot(page, f"loop-11-manager-{'attribution' if tab == zh('reports.tab.attribution') else 'roi'}")
    assert page.get_by_test_id("stException").count() == 0
