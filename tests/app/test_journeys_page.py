"""The Journeys page on the seeded database: instant search, the 360° profile, timeline filters and exports,
and the journey analysis view."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from core.i18n import t
from db.engine import make_engine
from db.models import Lead, StageChange, Touchpoint, User
from tests.app.conftest import logged_in


def _busy_lead(url: str, owner: str | None = None) -> dict:
    """A valid lead with touchpoints and stage changes and a phone nobody else has (so a search by phone finds
    only this lead), owned by ``owner`` when given."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            touches = select(Touchpoint.lead_id, func.count().label("n")).group_by(Touchpoint.lead_id).subquery()
            shared = select(Lead.phone).where(Lead.phone.is_not(None)).group_by(Lead.phone).having(func.count() > 1)
            statement = (
                select(Lead.id, Lead.name, Lead.phone, Lead.name_key)
                .join(touches, touches.c.lead_id == Lead.id)
                .where(Lead.status == "valid", Lead.phone.is_not(None), Lead.name.is_not(None),
                       Lead.id.in_(select(StageChange.lead_id)), Lead.phone.not_in(shared))
                .order_by(touches.c.n.desc(), Lead.id)
            )
            if owner:
                statement = statement.join(User, User.id == Lead.owner_id).where(User.username == owner)
            row = session.execute(statement.limit(1)).one()
            return {"id": row.id, "name": row.name, "phone": row.phone, "name_key": row.name_key}
    finally:
        engine.dispose()


def _open(username: str, lang: str | None = None):  # noqa: ANN202
    at = logged_in(username)
    if lang:
        at.selectbox(key="language_switch").select(lang).run()  # as a person switches it, in the sidebar
    at.switch_page("pages/journeys.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _search(at, text: str):  # noqa: ANN001, ANN202
    at.text_input(key="journeys_query").input(text)
    at.run()
    assert not at.exception, at.exception
    return at


def test_search_in_chinese_and_pinyin_finds_the_lead(app_database):
    lead = _busy_lead(app_database)
    at = _open("marketer")
    _search(at, lead["name"])
    assert at.dataframe, "results are shown"
    names = list(at.dataframe[0].value.iloc[:, 1])
    assert lead["name"] in names
    _search(at, lead["name_key"])
    assert lead["name"] in list(at.dataframe[0].value.iloc[:, 1])


def test_a_phone_fragment_with_dashes_opens_the_profile_and_timeline(app_database):
    lead = _busy_lead(app_database)
    digits = lead["phone"].removeprefix("+86")
    at = _open("marketer")
    _search(at, f"{digits[:3]}-{digits[3:7]}-{digits[7:]}")
    assert [s.value for s in at.subheader][0].startswith(lead["name"]), "the single match opens at once"
    timeline = at.dataframe[-1].value
    assert len(timeline) > 0
    assert {t("timeline_kind.touchpoint", "zh"), t("timeline_kind.stage", "zh")} <= set(timeline.iloc[:, 1])
    assert len(at.get("download_button")) >= 2, "CSV and Excel exports"
    # Only stage changes.
    at.button_group(key="journeys_kinds").set_value(["stage"]).run()
    assert not at.exception
    assert set(at.dataframe[-1].value.iloc[:, 1]) == {t("timeline_kind.stage", "zh")}
    # A period with nothing in it.
    at.button_group(key="journeys_kinds").set_value(["touchpoint", "stage"]).run()
    at.selectbox(key="journeys_period").select("custom").run()
    long_ago = date.today() - timedelta(days=3000)
    at.date_input(key="journeys_range").set_value((long_ago, long_ago + timedelta(days=10))).run()
    assert not at.exception
    assert any(i.value == t("journeys.no_events", "zh") for i in at.info)


def test_a_sales_rep_finds_only_their_own_leads(app_database):
    theirs = _busy_lead(app_database, owner="sales1")
    at = _open("sales1")
    _search(at, theirs["phone"].removeprefix("+86"))
    assert [s.value for s in at.subheader][0].startswith(theirs["name"])
    engine = make_engine(app_database)
    with Session(engine) as session:
        shared = select(Lead.phone).where(Lead.phone.is_not(None)).group_by(Lead.phone).having(func.count() > 1)
        other = session.execute(
            select(Lead.phone).join(User, User.id == Lead.owner_id)
            .where(User.username != "sales1", Lead.phone.is_not(None), Lead.status == "valid",
                   Lead.phone.not_in(shared)).order_by(Lead.id).limit(1)
        ).scalar_one()
    engine.dispose()
    _search(at, other.removeprefix("+86"))
    assert any(i.value == t("journeys.no_match", "zh") for i in at.info)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_journey_analysis_shows_paths_sankey_and_durations(app_database, lang):
    at = _open("marketer", lang=lang)
    at.segmented_control(key="journeys_view").set_value("paths").run()
    assert not at.exception, at.exception
    headings = [s.value for s in at.subheader]
    for key in ("journeys.paths_before_mql", "journeys.paths_before_won", "journeys.sankey_title",
                "journeys.durations_title"):
        assert t(key, lang) in headings
    assert at.get("plotly_chart"), "the Sankey is drawn"
    assert len(at.dataframe) >= 2
    paths = at.dataframe[0].value
    assert len(paths) > 0 and any(" → " in p for p in paths.iloc[:, 0]), "sequences of several steps"
    shown = " ".join(str(m.value) for m in at.markdown)
    assert "journeys." not in shown and "col." not in shown
    at.segmented_control(key="paths_by").set_value("channel").run()
    assert not at.exception


def test_a_link_with_a_lead_id_opens_its_profile(app_database):
    lead = _busy_lead(app_database)
    at = logged_in("manager")
    at.query_params["lead"] = str(lead["id"])
    at.switch_page("pages/journeys.py")
    at.run()
    assert not at.exception
    assert [s.value for s in at.subheader][0].startswith(lead["name"])
