"""The Reports page on the seeded database: every filter, the drill-downs, attribution and ROI controls."""

from __future__ import annotations

import os

import pytest
from sqlmodel import Session

from core.auth import actor_by_username
from core.funnel import ReportFilter, filter_options, funnel
from core.i18n import t
from db.engine import make_engine
from tests.app.conftest import logged_in


def _open(username: str = "marketer", lang: str | None = None):
    at = logged_in(username)
    wanted = lang or "zh"
    # The shell's language switch, as a user changes it (the choice is saved, and the module shares a database:
    # always set the language a test expects).
    if at.session_state["lang"] != wanted:
        at.selectbox(key="language_switch").set_value(wanted)
        at.run()
    at.switch_page("pages/reports.py")
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _core(filters: ReportFilter):
    engine = make_engine(os.environ["DATABASE_URL"])
    try:
        with Session(engine) as session:
            actor = actor_by_username(session, "marketer")
            return funnel(session=session, actor=actor, filters=filters), filter_options(session=session, actor=actor)
    finally:
        engine.dispose()


def _tab(at, name: str, lang: str = "zh"):  # noqa: ANN001, ANN202
    """Open one of the page's tabs, as a click on it does (only the open tab runs)."""
    at.session_state["reports_tab"] = t(f"reports.tab.{name}", lang)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _funnel_counts(at) -> list[int]:
    table = at.dataframe[0].value
    return [int(v) for v in table.iloc[:, 1]]


def _charts(at) -> int:
    return len(at.get("plotly_chart"))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_page_shows_every_section_with_charts_and_exports(app_database, lang):
    at = _open(lang=lang)
    assert at.title[0].value == t("reports.title", lang)
    assert [tab.label for tab in at.tabs] == [t(f"reports.tab.{n}", lang) for n in
                                              ("funnel", "attribution", "roi", "trends")]
    assert _charts(at) == 1, "the page opens on the funnel, and only the open tab runs"
    assert len(at.get("download_button")) == 2
    shown = " ".join(str(c.value) for c in at.caption)
    assert t("reports.funnel_convention", lang)[:20] in shown
    charts, downloads = _charts(at), len(at.get("download_button"))
    for name in ("attribution", "roi", "trends"):
        _tab(at, name, lang)
        assert not any(c.value == t("reports.funnel_convention", lang) for c in at.caption), name
        charts, downloads = charts + _charts(at), downloads + len(at.get("download_button"))
        shown += " " + " ".join(str(c.value) for c in at.caption)
    assert charts >= 5  # funnel, attribution bars, cost-vs-revenue, two or three trend lines
    assert downloads >= 8  # CSV and Excel under each table
    assert "reports." not in shown and "col." not in shown


def test_a_choice_made_in_one_tab_survives_a_look_at_another(app_database):
    at = _tab(_open(), "attribution")
    at.number_input(key="attr_lookback").set_value(30)
    at.radio(key="attr_level").set_value("campaign")
    at.run()
    _tab(at, "roi")
    at.selectbox(key="roi_model").set_value("markov")
    at.run()
    _tab(at, "trends")
    assert t("attribution.model.markov", "zh") in at.caption[0].value, "trends follow ROI's model"
    _tab(at, "attribution")
    assert at.number_input(key="attr_lookback").value == 30
    assert at.radio(key="attr_level").value == "campaign"
    _tab(at, "roi")
    assert at.selectbox(key="roi_model").value == "markov"


def test_the_funnel_agrees_with_core_and_each_filter_narrows_it(app_database):
    at = _open()
    options = _core(ReportFilter())[1]
    months = options["months"]
    first_month, last_month = months[max(0, len(months) - 12)], months[-1]
    everyone = _core(ReportFilter(month_from=first_month, month_to=last_month))[0]
    assert _funnel_counts(at) == everyone["leads"].tolist()

    channel = options["channels"][0][0]
    campaign = options["campaigns"][0][0]
    owner = options["owners"][0][0]
    region = options["regions"][0]
    cases = [
        ("rf_channels", [channel], ReportFilter(channel_ids=(channel,))),
        ("rf_campaigns", [campaign], ReportFilter(campaign_ids=(campaign,))),
        ("rf_owners", [owner], ReportFilter(owner_ids=(owner,))),
        ("rf_regions", [region], ReportFilter(regions=(region,))),
    ]
    for key, value, filters in cases:
        at = _open()
        at.multiselect(key=key).set_value(value)
        at.button(key="rf_apply").click()
        at.run()
        assert not at.exception, (key, at.exception)
        expected = _core(ReportFilter(**{**filters.__dict__, "month_from": first_month, "month_to": last_month}))[0]
        assert _funnel_counts(at) == expected["leads"].tolist(), key
        assert _funnel_counts(at)[0] < everyone["leads"].iloc[0], key

    # Monthly cohorts: one month only.
    at = _open()
    at.select_slider(key="rf_months").set_value((last_month, last_month))
    at.button(key="rf_apply").click()
    at.run()
    assert not at.exception
    expected = _core(ReportFilter(month_from=last_month, month_to=last_month))[0]
    assert _funnel_counts(at) == expected["leads"].tolist()


def test_every_funnel_number_drills_down_to_its_leads(app_database):
    at = _open("manager")
    counts = _funnel_counts(at)
    at.selectbox(key="drill_stage").set_value("mql")
    at.run()
    assert not at.exception
    caption = next(c.value for c in at.caption if "MQL" in c.value and "100" in c.value)
    assert f"{counts[1]:,}" in caption
    assert len(at.dataframe[1].value) == min(100, counts[1])


def test_attribution_controls(app_database):
    at = _tab(_open(), "attribution")
    at.selectbox(key="attr_conversion").set_value("mql")
    at.number_input(key="attr_lookback").set_value(30)
    at.radio(key="attr_level").set_value("campaign")
    at.number_input(key="attr_half_life").set_value(3.5)
    at.multiselect(key="attr_models").set_value(["linear", "markov", "shapley"])
    at.run()
    assert not at.exception, at.exception
    assert not at.error
    wide = next(df.value for df in at.dataframe if t("attribution.model.markov", "zh") in df.value.columns)
    assert set(wide.columns) >= {t("attribution.model.linear", "zh"), t("attribution.model.shapley", "zh")}
    # Every model's column adds up to the same number of conversions.
    totals = wide.drop(columns=wide.columns[0]).sum()
    assert totals.max() - totals.min() < 1e-6 * max(1.0, totals.max())
    sources = at.selectbox(key="attr_drill").options
    at.selectbox(key="attr_drill").set_value(sources[0])
    at.run()
    assert not at.exception


def test_roi_controls_and_drill_down(app_database):
    at = _tab(_open(), "roi")
    at.selectbox(key="roi_model").set_value("markov")
    at.radio(key="roi_level").set_value("campaign")
    at.radio(key="roi_basis").set_value("cohort")
    at.run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("col.cost", "zh")].startswith("¥")
    at.selectbox(key="roi_drill_source").set_value(at.selectbox(key="roi_drill_source").options[0])
    at.selectbox(key="roi_drill_stage").set_value("mql")
    at.run()
    assert not at.exception


def test_a_sales_rep_cannot_open_reports(app_database):
    at = logged_in("sales1")
    with pytest.raises(ValueError):
        at.switch_page("pages/reports.py")
