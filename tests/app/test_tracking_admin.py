"""Admin → Campaigns: a marketer creates a tracking link and gets its QR code."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from core.i18n import t
from db.engine import make_engine
from db.models import TrackingLink
from tests.app.conftest import logged_in, open_tab


def test_marketer_creates_a_tracking_link_with_qr(app_database) -> None:
    # In Chinese: other tabs' selectboxes format their options through the session's language.
    at = logged_in("marketer")
    at.switch_page("pages/admin.py")
    at.run()
    assert not at.exception, at.exception
    assert "目标网址" not in [w.label for w in at.text_input], "only the open tab runs"
    open_tab(at, "admin_tab", t("admin.tab.campaigns", "zh"))
    labels = [t.label for t in at.text_input]
    url_at = labels.index("目标网址")
    at.text_input[url_at].input("https://www.example.cn/expo")
    at.text_input[url_at + 1].input("展位海报 A3")  # the link's label, beside the URL
    [b for b in at.button if b.label == "新建追踪链接"][0].click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.success, [w.value for w in at.warning]
    engine = make_engine(app_database)
    with Session(engine) as session:
        link = session.scalars(select(TrackingLink).where(TrackingLink.label == "展位海报 A3")).one()
    engine.dispose()
    assert any(link.code in c.value for c in at.code) or at.selectbox(key="tracking_qr_pick") is not None
    at.selectbox(key="tracking_qr_pick").set_value(link.id)
    at.run()
    assert any(f"ll={link.code}" in c.value for c in at.code), [c.value for c in at.code]
