"""Admin → Dedup thresholds: an admin previews what new thresholds would do to the pairs waiting for review and
saves them (validated, audited), in Chinese and in English; a marketer sees no such tab.

The whole Admin page reruns in English only once under AppTest (other tabs' select boxes format their options
outside the script run, in the default language), so the clicks run against the tab itself, signed in as the admin.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from core.i18n import fmt_number, fmt_percent, t
from core.settings import get_setting, set_setting
from db.engine import make_engine
from db.models import AuditLog, CandidateStatus, DuplicateCandidate, Lead
from tests.app.conftest import logged_in


@pytest.fixture
def database(app_database):  # noqa: ANN001, ANN201
    engine = make_engine(app_database)
    with Session(engine) as session:  # pending pairs on both sides of the thresholds tried below
        ids = list(session.scalars(select(Lead.id).order_by(Lead.id).limit(8)))
        known = {(a, b) for a, b in session.execute(select(DuplicateCandidate.left_id, DuplicateCandidate.right_id))}
        for k, score in enumerate((0.97, 0.9, 0.7, 0.55)):
            if (ids[2 * k], ids[2 * k + 1]) in known:  # added by an earlier test of the module
                continue
            session.add(DuplicateCandidate(left_id=ids[2 * k], right_id=ids[2 * k + 1], score=score, reasons=[],
                                           status=CandidateStatus.PENDING))
        session.commit()
    yield engine
    with Session(engine) as session:  # the module's database is shared: leave the defaults behind
        set_setting(session, "dedup", {"auto_merge": 0.95, "review": 0.6})
        session.commit()
    engine.dispose()


def pending_at_least(engine, score: float) -> int:  # noqa: ANN001
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(DuplicateCandidate).where(
            DuplicateCandidate.status == CandidateStatus.PENDING, DuplicateCandidate.score >= score)) or 0


def stored(engine) -> tuple[float, float]:  # noqa: ANN001
    with Session(engine) as session:
        value = get_setting(session, "dedup")
        return float(value["auto_merge"]), float(value["review"])


def click(at, label: str) -> None:  # noqa: ANN001
    [b for b in at.button if b.label == label][0].click()
    at.run()
    assert not at.exception, at.exception


def dedup_tab() -> None:
    from ui.admin import dedup
    from ui.common import current_actor

    dedup.render(current_actor())


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_an_admin_previews_and_saves_the_dedup_thresholds(database, lang: str) -> None:
    page = logged_in("admin", lang=lang)
    page.switch_page("pages/admin.py")
    page.run()
    assert not page.exception, page.exception
    assert t("admin.tab.dedup", lang) in [tab.label for tab in page.tabs]
    meaning = t("dedup.settings.meaning", lang, auto=fmt_percent(0.95, lang), review=fmt_percent(0.6, lang))
    assert any(m.value == meaning for m in page.markdown), [m.value for m in page.markdown]
    assert t("dedup.settings.auto", lang) in [n.label for n in page.number_input]

    at = AppTest.from_function(dedup_tab, default_timeout=60)
    at.session_state["actor"] = page.session_state["actor"]
    at.session_state["lang"] = lang
    at.run()
    assert not at.exception, at.exception
    at.number_input(key="dedup_settings_auto").set_value(0.85)
    at.number_input(key="dedup_settings_review").set_value(0.5)
    click(at, t("dedup.settings.preview", lang))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("dedup.settings.would_merge", lang, auto=fmt_percent(0.85, lang))] == fmt_number(
        pending_at_least(database, 0.85), lang)
    assert pending_at_least(database, 0.85) > pending_at_least(database, 0.95)
    assert stored(database) == (0.95, 0.6)  # a preview saves nothing

    click(at, t("dedup.settings.save", lang))
    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value == t("dedup.settings.saved", lang, auto=fmt_percent(0.85, lang),
                                    review=fmt_percent(0.5, lang))
    assert stored(database) == (0.85, 0.5)
    with Session(database) as session:
        entry = session.scalars(select(AuditLog).where(AuditLog.action == "settings.dedup")
                                .order_by(AuditLog.id.desc())).first()
    assert entry is not None and entry.detail["after"] == {"auto_merge": 0.85, "review": 0.5}

    # The review threshold must stay below the automatic one: refused with a message, nothing saved.
    at.number_input(key="dedup_settings_review").set_value(0.9)
    click(at, t("dedup.settings.save", lang))
    assert [e.value for e in at.error] == [t("dedup.thresholds_invalid", lang)]
    assert stored(database) == (0.85, 0.5)

    # The Dedup page says what the saved thresholds mean.
    page = logged_in("marketer", lang=lang)
    page.switch_page("pages/dedup.py")
    page.run()
    assert not page.exception, page.exception
    caption = t("dedup.thresholds_caption", lang, auto=fmt_percent(0.85, lang), review=fmt_percent(0.5, lang))
    assert caption in [c.value for c in page.caption]


def test_a_marketer_cannot_see_or_change_the_thresholds(database) -> None:
    at = logged_in("marketer", lang="en")
    at.switch_page("pages/admin.py")
    at.run()
    assert not at.exception, at.exception
    assert t("admin.tab.dedup", "en") not in [tab.label for tab in at.tabs]
    assert "dedup_settings_auto" not in [n.key for n in at.number_input]
    assert stored(database) == (0.95, 0.6)
