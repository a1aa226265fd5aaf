"""The funnel's conventions on a hand-checked database: skips, recycling, side tracks, filters, drill-down."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from core.auth import actor_by_username
from core.errors import PermissionDenied
from core.funnel import (
    FUNNEL_STAGES,
    ReportFilter,
    data_version,
    filter_options,
    funnel,
    funnel_leads,
    funnel_summary,
    side_tracks,
    stage_counts_by_channel,
)
from core.report_data import load_report_data
from db.models import Lead, Touchpoint
from seed.demo import seed_demo
from tests.unit import reports_world


@pytest.fixture
def world(session):
    return reports_world.build(session)


@pytest.fixture
def marketer(make_actor):
    return make_actor("marketer")


def counts(table) -> list[int]:
    return table.set_index("stage").loc[list(FUNNEL_STAGES), "leads"].tolist()


def test_skipped_stages_count_as_passed_and_recycled_leads_count_once(session, world, marketer):
    table = funnel(session=session, actor=marketer)
    # lead: L1 L2 L3 L4 L5 L7 · MQL: L1 L2(skip) L3(twice, once) L5(created as SQL) L7 · SAL: L1 L2 L3 L5
    # SQL: L1 L2 L5 · opportunity: L1 L2 · won: L1. L6 is invalid; L2's loss and L7's disqualification add nothing.
    assert counts(table) == [6, 5, 4, 3, 2, 1]
    rates = table.set_index("stage")["step_conversion"]
    assert rates.tolist() == pytest.approx([1, 5 / 6, 4 / 5, 3 / 4, 2 / 3, 1 / 2])
    assert table.set_index("stage").loc["won", "overall_conversion"] == pytest.approx(1 / 6)


def test_median_days_skip_skipped_stages_and_recycled_spells(session, world, marketer):
    table = funnel(session=session, actor=marketer).set_index("stage")
    # new: L1 5, L2 5, L3 2, L7 5 days → 5. MQL: L1 2 days; L3 from its second MQL (03-01) to SAL (03-02) → 1.
    # SAL: L1 8. SQL: L1 12, L2 21 → 16.5. opportunity: L1 28 (L2 was lost: no later step).
    assert table["median_days"].tolist()[:5] == pytest.approx([5, 1.5, 8, 16.5, 28])
    assert table["timed_leads"].tolist() == [4, 2, 1, 2, 1, 0]
    assert table.loc["won", "median_days"] is None or table["median_days"].isna().iloc[-1]


def test_side_tracks_are_reported_apart(session, world, marketer):
    assert side_tracks(session=session, actor=marketer) == {"recycled": 1, "mql_again": 1, "disqualified": 1,
                                                            "lost": 1}


@pytest.mark.parametrize(("filters", "expected"), [
    (lambda w: ReportFilter(channel_ids=(w.channels["官网"],)), [2, 1, 1, 1, 1, 1]),
    (lambda w: ReportFilter(campaign_ids=(w.campaigns["2026 工博会"],)), [1, 1, 1, 1, 1, 0]),
    (lambda w: ReportFilter(owner_ids=(w.users["rep1"],)), [2, 2, 2, 1, 1, 1]),
    (lambda w: ReportFilter(regions=("上海",)), [3, 3, 3, 2, 1, 1]),
    (lambda w: ReportFilter(month_from=date(2026, 2, 1), month_to=date(2026, 2, 1)), [2, 1, 1, 0, 0, 0]),
    (lambda w: ReportFilter(month_from=date(2026, 3, 1)), [1, 1, 1, 1, 0, 0]),
    (lambda w: ReportFilter(regions=("上海",), owner_ids=(w.users["rep1"],), channel_ids=(w.channels["微信"],)),
     [1, 1, 1, 0, 0, 0]),
])
def test_every_filter(session, world, marketer, filters, expected):
    assert counts(funnel(session=session, actor=marketer, filters=filters(world))) == expected


@pytest.mark.parametrize("stage", FUNNEL_STAGES)
def test_drill_down_lists_exactly_the_leads_behind_each_number(session, world, marketer, stage):
    table = funnel(session=session, actor=marketer).set_index("stage")
    page, total = funnel_leads(session=session, actor=marketer, stage=stage, limit=2)
    assert total == table.loc[stage, "leads"]
    assert len(page) == min(2, total)
    everyone, _ = funnel_leads(session=session, actor=marketer, stage=stage, limit=100)
    expected = {"new": "L1 L2 L3 L4 L5 L7", "mql": "L1 L2 L3 L5 L7", "sal": "L1 L2 L3 L5", "sql": "L1 L2 L5",
                "opportunity": "L1 L2", "won": "L1"}[stage]
    assert set(everyone["id"]) == {world.leads[k] for k in expected.split()}


def test_drill_down_by_source_and_paging(session, world, marketer):
    page, total = funnel_leads(session=session, actor=marketer, stage="mql", channel_id=world.channels["微信"])
    assert total == 2 and set(page["name"]) == {"李娜", "赵敏"}
    first, _ = funnel_leads(session=session, actor=marketer, stage="new", limit=3)
    second, _ = funnel_leads(session=session, actor=marketer, stage="new", limit=3, offset=3)
    assert not set(first["id"]) & set(second["id"])
    # Newest arrival first: L2 reached MQL (by skipping to SQL) on 01-20, L5 on its creation 03-01.
    mqls, _ = funnel_leads(session=session, actor=marketer, stage="mql")
    assert mqls["name"].iloc[0] == "陈静"


def test_a_sales_rep_may_not_read_reports(session, world, make_actor):
    rep = make_actor("sales")
    with pytest.raises(PermissionDenied):
        funnel(session=session, actor=rep)


def test_the_data_version_changes_when_data_changes(session, world, marketer):
    before = data_version(session=session)
    assert data_version(session=session) == before
    session.add(Touchpoint(lead_id=world.leads["L4"], kind="page_view", channel_id=world.channels["官网"],
                           occurred_at=reports_world.at(3, 3), natural_key="extra"))
    session.commit()
    assert data_version(session=session) != before


def test_the_data_version_changes_when_an_import_is_undone(session, world, marketer):
    """Undoing an activity import removes touches without adding anything: the version must move all the same
    (a touch of an existing lead leaves the lead count, its newest id and the newest touch id as they were when
    the undone touches were not the newest)."""
    from datetime import UTC, datetime

    from core.importer import run_import, undo_batch

    now = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)
    session.get(Lead, world.leads["L4"]).email = "l4@example.cn"
    session.commit()
    data = "邮箱,姓名,行为,参会时长,时间\nl4@example.cn,L4,参会,45,2026-03-05 15:00\n".encode()
    summary = run_import(session=session, actor=marketer, data=data, filename="webinar.csv",
                         channel_id=world.channels["官网"], now=now)
    session.commit()
    session.add(Touchpoint(lead_id=world.leads["L1"], kind="page_view", channel_id=world.channels["官网"],
                           occurred_at=reports_world.at(3, 6), natural_key="newest"))
    session.commit()
    before = data_version(session=session)
    undo_batch(session=session, actor=marketer, batch_id=summary.batch_id, now=now)
    session.commit()
    assert data_version(session=session) != before


def test_stage_snapshot_by_channel_still_works(session, world, marketer):
    table = stage_counts_by_channel(session=session, actor=marketer)
    assert table.loc["官网", "total"] == 2
    assert table.loc["微信", "disqualified"] == 1


def test_the_database_counts_the_same_funnel_as_the_loaded_data(engine, session):
    """``funnel_summary`` (aggregated by the database, what the Reports page shows) against ``funnel`` and
    ``side_tracks`` over the loaded report data, on the demo world with every kind of filter."""
    seed_demo(engine, leads=600, seed=11)
    marketer = actor_by_username(session, "marketer")
    data = load_report_data(session=session, actor=marketer)
    options = filter_options(session=session, actor=marketer)
    months = options["months"]
    cases = [
        ReportFilter(),
        ReportFilter(month_from=months[len(months) // 2], month_to=months[-1]),
        ReportFilter(channel_ids=(options["channels"][0][0], options["channels"][2][0])),
        ReportFilter(campaign_ids=(options["campaigns"][0][0],), regions=tuple(options["regions"][:3])),
        ReportFilter(owner_ids=tuple(uid for uid, _ in options["owners"][:2])),
        ReportFilter(month_from=months[-1], month_to=months[-1]),
    ]
    for filters in cases:
        table, tracks = funnel_summary(session=session, actor=marketer, filters=filters)
        expected = funnel(data=data, filters=filters)
        pd.testing.assert_frame_equal(table.drop(columns="median_days"), expected.drop(columns="median_days"))
        assert np.allclose(table["median_days"].astype(float), expected["median_days"].astype(float),
                           equal_nan=True, atol=1e-6), filters
        assert tracks == side_tracks(data=data, filters=filters), filters
    assert expected["leads"].iloc[0] < funnel(data=data)["leads"].iloc[0], "the filters narrow the cohort"
    assert funnel(data=data)["timed_leads"].sum() > 0, "the demo has finished steps to time"
