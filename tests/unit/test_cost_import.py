"""Importing monthly costs from CSV and Excel: headers in either language, per-row problems, all or nothing."""

from __future__ import annotations

import io
from datetime import date

import pandas as pd
import pytest
from sqlmodel import select

from core.channels import CostImportError, cost_template, import_costs
from core.errors import FileFormatError, PermissionDenied
from db.models import AuditLog, ChannelCost
from tests.unit import reports_world


@pytest.fixture
def world(session):
    return reports_world.build(session)


@pytest.fixture
def marketer(make_actor):
    return make_actor("marketer")


def costs(session) -> dict[tuple[int, int | None, date], float]:
    return {(c.channel_id, c.campaign_id, c.month): c.amount for c in session.exec(select(ChannelCost)).all()}


def test_chinese_headers_in_gbk_with_campaigns_and_whole_channels(session, world, marketer):
    text = ("月份,渠道,活动,金额,备注\n"
            "2026年4月,展会,2026 工博会,\"￥150,000\",展位费\n"
            "2026/4,展会,,2万,\n"
            "2026-05-01,微信,春季直播,8000.5,\n")
    summary = import_costs(session=session, actor=marketer, data=text.encode("gbk"), filename="费用.csv")
    session.commit()
    assert summary["inserted"] == 3 and summary["updated"] == 0
    stored = costs(session)
    fair, wechat = world.channels["展会"], world.channels["微信"]
    assert stored[(fair, world.campaigns["2026 工博会"], date(2026, 4, 1))] == 150_000
    assert stored[(fair, None, date(2026, 4, 1))] == 20_000
    assert stored[(wechat, world.campaigns["春季直播"], date(2026, 5, 1))] == 8000.5
    entry = session.exec(select(AuditLog).where(AuditLog.action == "cost.import")).one()
    assert entry.detail["rows"] == 3


def test_english_headers_in_excel_replace_earlier_entries(session, world, marketer):
    frame = pd.DataFrame({"Month": [pd.Timestamp("2026-01-15"), "2026-02"], "Channel": ["官网", "官网"],
                          "Campaign": [None, None], "Cost": [12_000, 9_000]})
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False)
    summary = import_costs(session=session, actor=marketer, data=buffer.getvalue(), filename="costs.xlsx")
    session.commit()
    assert (summary["inserted"], summary["updated"]) == (0, 2)
    web = world.channels["官网"]
    assert costs(session)[(web, None, date(2026, 1, 1))] == 12_000
    assert costs(session)[(web, None, date(2026, 2, 1))] == 9_000


def test_every_problem_is_reported_by_row_and_column_and_nothing_is_saved(session, world, marketer):
    before = costs(session)
    text = ("month,channel,campaign,amount\n"
            "2026-04,官网,,1000\n"  # fine, yet not saved because other rows are wrong
            "April,官网,,1000\n"
            "2026-04,抖音,,500\n"
            "2026-04,展会,不存在的活动,500\n"
            "2026-05,微信,,-3\n"
            "2026-05,微信,,abc\n"
            "2026-04,官网,,2000\n"
            ",,,\n"
            "2026-06,,,\n")
    with pytest.raises(CostImportError) as caught:
        import_costs(session=session, actor=marketer, data=text.encode("utf-8"), filename="c.csv")
    session.rollback()
    problems = {(p["row"], p["column"], p["key"]) for p in caught.value.problems}
    assert problems == {
        (3, "month", "costs.month_invalid"),
        (4, "channel", "costs.channel_unknown"),
        (5, "campaign", "costs.campaign_unknown"),
        (6, "amount", "costs.amount_negative"),
        (7, "amount", "costs.amount_invalid"),
        (8, "month", "costs.duplicate_row"),
        (10, "channel", "costs.channel_missing"),
        (10, "amount", "costs.amount_missing"),
    }
    assert costs(session) == before
    shown = caught.value.localized_problems("zh")
    assert "抖音" in " ".join(shown["problem"]) and "渠道" in set(shown["column"])
    assert "row 8" not in caught.value.localized("en") and "9" not in caught.value.localized("en")


def test_missing_columns_and_unreadable_files(session, world, marketer):
    with pytest.raises(CostImportError) as caught:
        import_costs(session=session, actor=marketer, data="渠道,备注\n官网,x\n".encode(), filename="c.csv")
    assert {p["column"] for p in caught.value.problems} == {"month", "amount"}
    with pytest.raises(FileFormatError):
        import_costs(session=session, actor=marketer, data=b"\x00\x01", filename="c.xlsx")
    with pytest.raises(FileFormatError):
        import_costs(session=session, actor=marketer, data=b"x", filename="c.xls")
    with pytest.raises(CostImportError) as caught:
        import_costs(session=session, actor=marketer, data="月份,渠道,金额\n".encode(), filename="c.csv")
    assert caught.value.problems[0]["key"] == "costs.empty_file"


def test_semicolons_and_a_byte_order_mark(session, world, marketer):
    text = "\ufeffmonth;channel;amount\n2026-07;微信;300\n"
    import_costs(session=session, actor=marketer, data=text.encode("utf-8"), filename="c.txt")
    assert costs(session)[(world.channels["微信"], None, date(2026, 7, 1))] == 300


def test_the_template_imports_once_its_names_exist(session, world, marketer):
    template = cost_template("zh").assign(渠道="展会", 活动=["", "2026 工博会"])
    data = template.to_csv(index=False).encode("utf-8")
    assert import_costs(session=session, actor=marketer, data=data, filename="t.csv")["rows"] == 2


def test_only_roles_that_manage_costs_may_import(session, world, make_actor):
    rep = make_actor("sales")
    with pytest.raises(PermissionDenied):
        import_costs(session=session, actor=rep, data="month,channel,amount\n2026-01,官网,1\n".encode(), filename="c.csv")
