"""The Accounts page on the seeded database: list and filters, one account's committee and fit, target lists,
the ICP form for marketers, owners for managers, rebuild."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlmodel import Session

from core.i18n import t
from db.engine import make_engine
from db.models import Account, Lead, Setting, User
from tests.app.conftest import logged_in


def _db(url: str):  # noqa: ANN202
    return make_engine(url)


def _biggest_account(url: str) -> dict:
    engine = _db(url)
    with Session(engine) as session:
        row = session.execute(
            select(Account.id, Account.name, func.count(Lead.id).label("n"))
            .join(Lead, Lead.account_id == Account.id)
            .where(Lead.status == "valid")
            .group_by(Account.id, Account.name)
            .order_by(func.count(Lead.id).desc(), Account.id).limit(1)
        ).one()
    engine.dispose()
    return {"id": row.id, "name": row.name, "contacts": row.n}


def _open(username: str, account_id: int | None = None):  # noqa: ANN202
    at = logged_in(username)
    at.switch_page("pages/accounts.py")
    if account_id is not None:
        at.session_state["accounts_selected"] = [account_id]
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _caption(at) -> str:  # noqa: ANN001
    return " ".join(c.value for c in at.caption)


def test_the_list_filters_by_mqa_and_target_list(app_database):
    at = _open("marketer")
    assert at.dataframe, "the accounts are listed"
    everything = len(at.dataframe[0].value)
    engine = _db(app_database)
    with Session(engine) as session:
        mqa = session.scalar(select(func.count()).where(Account.mqa_at.is_not(None)))
        listed = session.scalar(select(func.count()).where(Account.is_target.is_(True)))
    engine.dispose()
    assert mqa > 0, "the demo has MQA accounts"
    at.checkbox(key="accounts_mqa").check()
    at.button[[b.label for b in at.button].index(t("accounts.apply", "zh"))].click().run()
    assert not at.exception
    assert t("accounts.count", "zh", n=mqa, page=1, pages=max(1, -(-mqa // 50))).split("·")[0] in _caption(at)
    at.checkbox(key="accounts_mqa").uncheck()
    at.selectbox(key="accounts_list").select("2026 重点客户")
    at.button[[b.label for b in at.button].index(t("accounts.apply", "zh"))].click().run()
    assert not at.exception
    shown = len(at.dataframe[0].value) if at.dataframe else 0
    assert 0 < shown <= min(listed, 50) and shown <= everything


def test_an_account_shows_committee_fit_and_timeline(app_database):
    account = _biggest_account(app_database)
    at = _open("marketer", account["id"])
    assert any(s.value.startswith(account["name"]) for s in at.subheader)
    headings = [m.value for m in at.markdown]
    assert f"#### {t('accounts.committee', 'zh')}" in headings
    assert f"#### {t('accounts.fit_title', 'zh')}" in headings
    committee = [d.value for d in at.dataframe if t("col.seniority", "zh") in d.value.columns]
    assert committee and len(committee[0]) == account["contacts"]
    assert set(committee[0][t("col.role", "zh")]) <= {t(f"accounts.role.{r}", "zh") for r in
                                                      ("decision_maker", "influencer", "user", "unknown")}
    timeline = [d.value for d in at.dataframe if t("col.contact", "zh") in d.value.columns]
    assert timeline and len(timeline[0]) > 0


def test_a_marketer_puts_an_account_on_a_target_list_and_edits_the_icp(app_database):
    account = _biggest_account(app_database)
    at = _open("marketer", account["id"])
    assert "accounts_owner" not in [s.key for s in at.selectbox], "owners are set by routing managers"
    [w for w in at.text_input if w.label == t("accounts.list_name", "zh")][0].input("2027 华东重点")
    [b for b in at.button if b.label == t("accounts.list_add", "zh")][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(s.value == t("accounts.lists_saved", "zh", n=1) for s in at.success)
    [w for w in at.text_input if w.label == t("accounts.icp_industries", "zh")][0].input("软件、金融")
    [b for b in at.button if b.label == t("accounts.icp_save", "zh")][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    engine = _db(app_database)
    with Session(engine) as session:
        saved = session.get(Account, account["id"])
        assert "2027 华东重点" in saved.target_lists and saved.is_target
        assert session.get(Setting, "icp").value["industries"] == ["软件", "金融"]
    engine.dispose()


def test_a_wrong_size_range_is_explained_not_saved(app_database):
    at = _open("marketer")
    [w for w in at.number_input if w.label == t("accounts.icp_size_min", "zh")][0].set_value(5000)
    [w for w in at.number_input if w.label == t("accounts.icp_size_max", "zh")][0].set_value(100)
    [b for b in at.button if b.label == t("accounts.icp_save", "zh")][0].click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [t("accounts.size_range", "zh", size_min=5000, size_max=100)]


def test_a_manager_gives_an_account_an_owner(app_database):
    account = _biggest_account(app_database)
    engine = _db(app_database)
    with Session(engine) as session:
        rep_id = session.scalar(select(User.id).where(User.username == "sales1"))
    engine.dispose()
    at = _open("manager", account["id"])
    assert not [w for w in at.text_input if w.label == t("accounts.icp_industries", "zh")], "the ICP is marketing's"
    at.selectbox(key="accounts_owner").select(rep_id)
    [b for b in at.button if b.label == t("accounts.owner_save", "zh")][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    engine = _db(app_database)
    with Session(engine) as session:
        assert session.get(Account, account["id"]).owner_id == rep_id
    engine.dispose()


def test_rebuild_from_the_page(app_database):
    at = _open("admin")
    [b for b in at.button if b.label == t("accounts.rebuild", "zh")][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success, "the rebuild says what it did"
