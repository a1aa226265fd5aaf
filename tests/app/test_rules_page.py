"""The Rules page on the seeded database: live validation with position and suggestion, the preview with its
delta, saving a new rule, versions, the MQL line for managers, and “Why this score?”."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from core.i18n import t
from db.engine import make_engine
from db.models import Lead, Rule, RuleVersion
from tests.app.conftest import logged_in


def _open(username: str = "marketer"):  # noqa: ANN202
    at = logged_in(username)
    at.switch_page("pages/rules.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _type(at, key: str, text: str):  # noqa: ANN001, ANN202
    at.text_area(key=key).input(text)
    at.run()
    assert not at.exception, at.exception
    return at


def test_editor_shows_position_and_suggestion(app_database):
    at = _open()
    _type(at, "rules_fit_new_text", 'company_size >= 200 and\ntitel contains "总监"')
    errors = [e.value for e in at.error]
    assert errors == ["第 2 行第 1 列：没有字段“titel”，您是想写“title”吗？"], errors
    assert at.button(key="rules_fit_new_save").disabled


def test_preview_and_save_a_new_fit_rule(app_database):
    at = _open()
    _type(at, "rules_fit_new_text", '职位 包含 "总监" 且 公司规模 >= 200')
    assert any(t("rules.editor.valid", "zh") in s.value for s in at.success)
    previews = [m.value for m in at.markdown if "匹配" in m.value]
    assert previews, [m.value for m in at.markdown]
    at.text_input(key="rules_fit_new_name").input("大企业决策人")
    at.number_input(key="rules_fit_new_points").set_value(12.0)
    at.run()
    at.button(key="rules_fit_new_save").click()
    at.run()
    assert not at.exception, at.exception
    assert any(t("rules.editor.saved", "zh") in s.value for s in at.success), [e.value for e in at.error]
    engine = make_engine(app_database)
    with Session(engine) as session:
        rule = session.scalars(select(Rule).where(Rule.name == "大企业决策人")).one()
        assert rule.ast["and"][0]["left"] == {"field": "title"} and rule.points == 12
        assert session.scalars(select(RuleVersion).where(RuleVersion.rule_id == rule.id)).all()
    engine.dispose()


def test_preview_delta_against_the_saved_mql_line(app_database):
    at = _open()
    # The MQL tab opens on the saved line: lowering the engagement bar matches more leads than it.
    _type(at, next(ta.key for ta in at.text_area if ta.key.startswith("rules_mql_") and ta.key.endswith("_text")),
          'grade in ("A", "B") and engagement >= 5')
    texts = [m.value for m in at.markdown if "与已保存版本相比" in m.value]
    assert texts and "相比 +" in texts[0], texts


def test_manager_edits_only_the_mql_line(app_database):
    at = _open("manager")
    keys = {ta.key for ta in at.text_area}
    assert keys and all(k.startswith("rules_mql_") for k in keys), keys


def test_why_this_score_lists_the_ledger(app_database):
    engine = make_engine(app_database)
    with Session(engine) as session:
        lead_id = session.scalar(select(Lead.id).where(Lead.fit_score > 0).order_by(Lead.id))
    engine.dispose()
    at = _open()
    at.text_input(key="rules_why_query").input(str(lead_id))
    at.run()
    assert not at.exception, at.exception
    assert any(m.label == t("rules.why.fit", "zh") for m in at.metric)
    assert any(df.value.shape[0] > 0 for df in at.dataframe)
