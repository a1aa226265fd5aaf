"""Loading journeys from the database, and ROI arithmetic with costs and revenue in different months."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from core.attribution import (
    UNATTRIBUTED,
    attribution_leads,
    attribution_report,
    load_conversions,
    load_journey_data,
    load_touchpoints,
)
from core.errors import PermissionDenied
from core.funnel import ReportFilter
from core.roi import load_costs, roi_table, roi_totals
from tests.unit import reports_world

JAN, FEB, MAR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)
THIRD = 100_000 / 3


@pytest.fixture
def world(session):
    return reports_world.build(session)


@pytest.fixture
def marketer(make_actor):
    return make_actor("marketer")


def by_name(frame: pd.DataFrame, world, column: str = "lead_id") -> set[str]:
    names = {v: k for k, v in world.leads.items()}
    return {names[i] for i in frame[column]}


def test_conversions_follow_the_funnel_and_carry_deal_values(session, world, marketer):
    won = load_conversions(session=session, actor=marketer, conversion="won")
    assert by_name(won, world) == {"L1"}
    assert won["value"].tolist() == [100_000]
    assert won["opportunity_created_at"].iloc[0] == pd.Timestamp(reports_world.at(2, 1))
    opportunities = load_conversions(session=session, actor=marketer, conversion="opportunity")
    assert by_name(opportunities, world) == {"L1", "L2"} and opportunities["value"].sum() == 150_000
    mqls = load_conversions(session=session, actor=marketer, conversion="mql")
    # L2 skipped MQL (counted at its SQL), L3 counts once at its first MQL, L5 was created as an SQL.
    assert by_name(mqls, world) == {"L1", "L2", "L3", "L5", "L7"}
    first = mqls.set_index("lead_id")["converted_at"]
    assert first[world.leads["L3"]] == pd.Timestamp(reports_world.at(2, 5))
    assert first[world.leads["L2"]] == pd.Timestamp(reports_world.at(1, 20))


def test_a_period_keeps_its_conversions_and_leaves_out_leads_converted_before(session, world, marketer):
    period = ReportFilter(month_from=FEB, month_to=MAR)
    data = load_journey_data(session=session, actor=marketer, conversion="mql", filters=period)
    touches, mqls = data.inputs(lookback_days=None)
    assert by_name(mqls, world) == {"L3", "L5"}
    # L1, L2 and L7 became MQLs in January: their later touches are no path "to null" in this period.
    assert by_name(touches, world) == {"L3", "L4"}
    # A lookback bounds the paths: only touches from 5 days before February on.
    touches, _ = data.inputs(lookback_days=5)
    assert by_name(touches, world) == {"L3", "L4"} and len(touches) == 3
    # The month range ends the touches: up to February keeps all 8, up to January only January's.
    february = load_touchpoints(session=session, actor=marketer, filters=ReportFilter(month_to=FEB))
    assert len(february) == 8
    january = load_touchpoints(session=session, actor=marketer, filters=ReportFilter(month_to=JAN))
    assert by_name(january, world) == {"L1", "L2", "L7"}


def test_touches_without_credit_are_left_out_and_names_are_attached(session, world, marketer):
    touches = load_touchpoints(session=session, actor=marketer)
    assert by_name(touches, world) == {"L1", "L2", "L3", "L4", "L7"}  # L6 is invalid
    assert len(touches) == 8  # the email sent to L7 earns nothing
    l1 = touches[touches["lead_id"] == world.leads["L1"]]
    assert l1["channel"].astype(str).tolist() == ["官网", "微信", "展会"]
    assert l1["campaign"].astype(str).tolist() == ["官网 / —", "微信 / —", "展会 / 2026 工博会"]


def test_attribution_report_side_by_side(session, world, marketer):
    table = attribution_report(session=session, actor=marketer, conversion="won", lookback_days=90)
    wide = table.pivot(index="channel", columns="model", values="value")
    assert wide.loc["官网", "first_touch"] == 100_000 and wide.loc["展会", "last_touch"] == 100_000
    assert wide.loc["微信", "linear"] == pytest.approx(THIRD)
    # W-shaped: first touch = lead-creation touch (官网, 60 %), opportunity created 02-01 → 微信 (30 %),
    # 展会 is the only other touch (10 %).
    assert wide["w_shaped"].to_dict() == pytest.approx({"官网": 60_000, "微信": 30_000, "展会": 10_000})
    assert table.groupby("model")["conversions"].sum().tolist() == pytest.approx([1] * 8)
    # A short lookback drops the January touches.
    short = attribution_report(session=session, actor=marketer, conversion="won", lookback_days=30,
                               models=["first_touch"])
    assert {k: v for k, v in short.set_index("channel")["conversions"].items() if v} == {"展会": 1}
    # Per campaign, and the channel filter only chooses rows.
    campaigns = attribution_report(session=session, actor=marketer, level="campaign", models=["linear"],
                                   filters=ReportFilter(channel_ids=(world.channels["展会"],)))
    assert campaigns.set_index("campaign")["value"].to_dict() == pytest.approx({"展会 / 2026 工博会": THIRD})


def test_the_leads_behind_a_credit(session, world, marketer):
    page, total = attribution_leads(session=session, actor=marketer, conversion="mql", lookback_days=None,
                                    channel="微信")
    assert total == 3 and set(page["name"]) == {"张伟", "李娜", "赵敏"}
    page, total = attribution_leads(session=session, actor=marketer, conversion="mql", lookback_days=None,
                                    channel=UNATTRIBUTED)
    assert set(page["name"]) == {"陈静"}  # L5 has no touches at all


def test_roi_per_channel_over_a_quarter(session, world, marketer):
    table = roi_table(session=session, actor=marketer, filters=ReportFilter(month_from=JAN, month_to=MAR),
                      model="linear").set_index("source")
    web, fair, wechat = table.loc["官网"], table.loc["展会"], table.loc["微信"]
    assert (web["cost"], web["leads"], web["mqls"], web["sqls"], web["customers"]) == (20_000, 2, 1, 1, 1)
    assert web["revenue"] == pytest.approx(THIRD)
    assert web["cost_per_lead"] == 10_000 and web["cost_per_mql"] == 20_000 and web["cost_per_customer"] == 20_000
    assert web["roas"] == pytest.approx(THIRD / 20_000)
    assert web["roi"] == pytest.approx((THIRD - 20_000) / 20_000)
    # Campaign costs roll up to the channel: 30,000 (工博会, Jan) + 5,000 (展会 as a whole, Feb).
    assert fair["cost"] == 35_000 and fair["customers"] == 0 and pd.isna(fair["cost_per_customer"])
    assert wechat["cost"] == 10_000 and wechat["cost_per_lead"] == 5_000 and pd.isna(wechat["cost_per_sql"])
    assert table.loc[UNATTRIBUTED, "leads"] == 1 and table.loc[UNATTRIBUTED, "cost"] == 0
    assert pd.isna(table.loc[UNATTRIBUTED, "roi"])
    totals = roi_totals(table)
    assert totals["cost"] == 65_000 and totals["revenue"] == pytest.approx(100_000)
    assert totals["roi"] == pytest.approx(35_000 / 65_000)


def test_costs_and_revenue_in_different_months_are_not_moved(session, world, marketer):
    january = roi_table(session=session, actor=marketer, filters=ReportFilter(month_from=JAN, month_to=JAN))
    web = january.set_index("source").loc["官网"]
    assert (web["cost"], web["revenue"], web["roi"]) == (10_000, 0, -1)  # spent, nothing won yet
    march = roi_table(session=session, actor=marketer, filters=ReportFilter(month_from=MAR, month_to=MAR))
    web = march.set_index("source").loc["官网"]
    assert web["cost"] == 0 and web["revenue"] == pytest.approx(THIRD) and pd.isna(web["roi"])
    monthly = roi_table(session=session, actor=marketer, filters=ReportFilter(month_from=JAN, month_to=MAR),
                        by_month=True)
    web = monthly[monthly["source"] == "官网"].set_index("month")
    assert web["cost"].to_dict() == {"2026-01": 10_000, "2026-02": 10_000, "2026-03": 0}
    assert web["revenue"].to_dict() == pytest.approx({"2026-01": 0, "2026-02": 0, "2026-03": THIRD})
    assert web["leads"].to_dict() == {"2026-01": 1, "2026-02": 1, "2026-03": 0}


def test_cohort_basis_books_outcomes_to_the_leads_month(session, world, marketer):
    january = roi_table(session=session, actor=marketer, basis="cohort",
                        filters=ReportFilter(month_from=JAN, month_to=JAN)).set_index("source")
    # January's leads: L1 (官网, won in March), L2 (展会), L7 (微信); January's costs: 官网 10,000, 展会 30,000.
    assert january.loc["官网", "revenue"] == pytest.approx(THIRD)
    assert january.loc["官网", "roi"] == pytest.approx((THIRD - 10_000) / 10_000)
    assert january.loc["官网", "customers"] == 1 and january.loc["展会", "cost"] == 30_000
    assert january.loc["微信", "revenue"] == pytest.approx(THIRD)


def test_roi_per_campaign_keeps_whole_channel_costs_apart(session, world, marketer):
    table = roi_table(session=session, actor=marketer, level="campaign",
                      filters=ReportFilter(month_from=JAN, month_to=MAR)).set_index("source")
    assert table.loc["展会 / 2026 工博会", "cost"] == 30_000
    assert table.loc["展会 / —", "cost"] == 5_000
    assert table.loc["微信 / 春季直播", "leads"] == 1
    assert table.loc["展会 / 2026 工博会", "revenue"] == pytest.approx(THIRD)
    costs = load_costs(session=session, actor=marketer, level="campaign")
    assert costs["cost"].sum() == 65_000


def test_channel_filter_chooses_rows(session, world, marketer):
    table = roi_table(session=session, actor=marketer, filters=ReportFilter(channel_ids=(world.channels["官网"],)))
    assert table["source"].tolist() == ["官网"]


def test_reports_need_the_reports_permission(session, world, make_actor):
    rep = make_actor("sales")
    with pytest.raises(PermissionDenied):
        roi_table(session=session, actor=rep)
    with pytest.raises(PermissionDenied):
        load_touchpoints(session=session, actor=rep)


@pytest.mark.parametrize("conversion", ["mql", "sql", "opportunity", "won"])
@pytest.mark.parametrize("cohort", [False, True])
def test_single_statement_loaders_agree_with_the_in_memory_path(session, world, marketer, conversion, cohort):
    from core.attribution import conversions_from, touches_from
    from core.report_data import load_report_data

    data = load_report_data(session=session, actor=marketer)
    for filters in (ReportFilter(), ReportFilter(month_from=FEB, month_to=FEB),
                    ReportFilter(owner_ids=(world.users["rep1"],), regions=("上海",), month_to=FEB)):
        sql = load_conversions(session=session, actor=marketer, conversion=conversion, filters=filters, cohort=cohort)
        memory = conversions_from(data, conversion, filters, cohort=cohort)
        pd.testing.assert_frame_equal(sql.sort_values("lead_id").reset_index(drop=True),
                                      memory.sort_values("lead_id").reset_index(drop=True), check_dtype=False)
        sql_touches = load_touchpoints(session=session, actor=marketer, filters=filters, cohort=cohort)
        memory_touches = touches_from(data, filters, cohort=cohort)
        columns = ["lead_id", "channel_id", "campaign_id", "occurred_at"]
        pd.testing.assert_frame_equal(sql_touches[columns].reset_index(drop=True),
                                      memory_touches[columns].reset_index(drop=True), check_dtype=False)
        assert sql_touches["campaign"].astype(str).tolist() == memory_touches["campaign"].astype(str).tolist()
