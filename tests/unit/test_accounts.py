"""Accounts from leads: keys, rebuild and incremental assignment, committee, engagement, stage, ICP fit, MQA,
target lists and owners — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from core.accounts import (
    AccountFilters,
    account_timeline,
    assign_accounts,
    buying_committee,
    corporate_domain,
    fit_explanation,
    get_account,
    infer_department,
    infer_seniority,
    list_accounts,
    rebuild_accounts,
    refresh_accounts,
    save_icp,
    set_account_owner,
    update_target_lists,
)
from core.errors import PermissionDenied, ValidationError
from core.journeys import lead_profile
from db.models import Account, AuditLog, Lead, StageChange, Touchpoint
from tests.unit.journey_data import NOW, add_leads


def accounts_by_name(session: Session) -> dict[str, Account]:
    return {a.name: a for a in session.scalars(select(Account))}


def account_of(session: Session, lead_id: int) -> int | None:
    return session.scalar(select(Lead.account_id).where(Lead.id == lead_id))


def test_free_mail_never_names_an_employer():
    emails = pd.Series(["a@qq.com", "b@163.com", "c@126.com", "d@GMAIL.com", "e@yunshan.cn", "f@Lanhai.com.cn ",
                        None, "broken", "g@mailinator.com", "h@vip.qq.com"])
    assert list(corporate_domain(emails)) == [None, None, None, None, "yunshan.cn", "lanhai.com.cn", None, None,
                                              None, None]


def test_the_domain_is_read_the_same_way_from_plain_and_unusual_addresses():
    emails = pd.Series([" a@Corp.CN  ", "b@ corp.cn>", "c@corp.cn.", "@corp.cn", "d@b@corp.cn", "王@云杉.cn",
                        "Ｅ@ＣＯＲＰ.ＣＮ", "e@nodot", "f@corp.cn\x1c", 3], dtype=object)
    assert list(corporate_domain(emails)) == ["corp.cn", "corp.cn", "corp.cn", "corp.cn", "corp.cn", "云杉.cn",
                                              "corp.cn", None, "corp.cn", None]


@pytest.mark.parametrize(
    ("title", "seniority", "department"),
    [
        ("CEO", "c_level", "executive"), ("首席执行官", "c_level", "executive"), ("董事长", "c_level", "executive"),
        ("副总经理", "vp", "executive"), ("VP of Sales", "vp", "sales"), ("总经理助理", "staff", "executive"),
        ("IT总监", "director", "it"), ("信息部部长", "director", "it"), ("Head of IT", "director", "it"),
        ("市场经理", "manager", "marketing"), ("Marketing Manager", "manager", "marketing"),
        ("采购专员", "staff", "procurement"), ("财务总监", "director", "finance"), ("CTO", "c_level", "it"),
        ("软件工程师", "staff", "it"), ("运营主管", "manager", "operations"), ("人力资源经理", "manager", "hr"),
        ("Procurement Director", "director", "procurement"), ("", "unknown", "other"),
    ],
)
def test_titles_give_seniority_and_department(title, seniority, department):
    titles = pd.Series([title])
    assert infer_seniority(titles).iloc[0] == seniority
    assert infer_department(titles).iloc[0] == department


@pytest.fixture
def company_leads(session: Session) -> list[int]:
    return add_leads(session, [
        {"name": "张伟", "company": "上海云杉科技有限公司", "email": "zw@yunshan.cn", "title": "IT总监",
         "industry": "软件", "company_size": 800, "province": "上海"},
        {"name": "李娜", "company": "云杉科技(上海)有限公司", "email": "lina@qq.com", "title": "采购经理"},
        {"name": "王芳", "email": "wangfang@yunshan.cn", "title": "CFO"},  # no company: joins through the domain
        {"name": "赵六", "email": "zhao@qq.com"},  # nothing to go on
        {"name": "钱七", "email": "qian@qq.com"},
        {"name": "孙八", "email": "sun@lanhai.com", "title": "工程师"},  # a domain nobody named
        {"name": "周九", "company": "星河数据", "email": "zj@xinghe.cn", "status": "invalid"},
    ])


def test_rebuild_groups_leads_by_company_and_corporate_domain(session, company_leads):
    result = rebuild_accounts(session=session, now=NOW)
    session.commit()
    accounts = accounts_by_name(session)
    assert set(accounts) == {"上海云杉科技有限公司", "lanhai.com"}
    yunshan = accounts["上海云杉科技有限公司"]
    assert yunshan.name_key == "云杉科技" and yunshan.domain == "yunshan.cn"
    assert [account_of(session, i) for i in company_leads[:3]] == [yunshan.id] * 3
    assert account_of(session, company_leads[3]) is None and account_of(session, company_leads[4]) is None
    assert account_of(session, company_leads[6]) is None, "invalid leads belong to no account"
    assert yunshan.industry == "软件" and yunshan.company_size == 800 and yunshan.province == "上海"
    assert result.created == 2 and result.leads_assigned == 4


def test_rebuild_is_idempotent_and_keeps_ids_owner_and_lists(session, make_actor, company_leads):
    rebuild_accounts(session=session, now=NOW)
    session.commit()
    manager = make_actor("manager")
    rep = make_actor("sales", username="rep_abm")
    ids = {name: a.id for name, a in accounts_by_name(session).items()}
    set_account_owner(session=session, actor=manager, account_ids=[ids["上海云杉科技有限公司"]], owner_id=rep.id, now=NOW)
    update_target_lists(session=session, actor=manager, account_ids=[ids["lanhai.com"]], add="2027 重点客户", now=NOW)
    session.commit()
    again = rebuild_accounts(session=session, now=NOW)
    session.commit()
    assert (again.created, again.leads_assigned, again.removed) == (0, 0, 0)
    after = accounts_by_name(session)
    assert {name: a.id for name, a in after.items()} == ids
    assert after["上海云杉科技有限公司"].owner_id == rep.id
    assert after["lanhai.com"].target_lists == ["2027 重点客户"] and after["lanhai.com"].is_target


def test_a_named_company_takes_over_its_domain_account(session, make_actor, company_leads):
    rebuild_accounts(session=session, now=NOW)
    session.commit()
    manager, rep = make_actor("manager"), make_actor("sales", username="rep_lanhai")
    domain_account = accounts_by_name(session)["lanhai.com"]
    set_account_owner(session=session, actor=manager, account_ids=[domain_account.id], owner_id=rep.id, now=NOW)
    new = add_leads(session, [{"name": "吴十", "company": "深圳蓝海电子有限公司", "email": "wu@lanhai.com"}])
    result = assign_accounts(session=session, lead_ids=new, now=NOW)
    session.commit()
    session.expire_all()
    renamed = session.get(Account, domain_account.id)
    assert result.renamed == 1 and result.created == 0
    assert renamed.name == "深圳蓝海电子有限公司" and renamed.owner_id == rep.id
    assert account_of(session, new[0]) == renamed.id == account_of(session, company_leads[5])


def test_new_leads_are_placed_incrementally(session, company_leads):
    rebuild_accounts(session=session, now=NOW)
    session.commit()
    yunshan = accounts_by_name(session)["上海云杉科技有限公司"]
    new = add_leads(session, [
        {"name": "郑一", "company": "云杉科技股份有限公司"},
        {"name": "冯二", "email": "feng@yunshan.cn"},
        {"name": "陈三", "company": "北京启明软件有限公司", "email": "chen@qiming.com"},
        {"name": "褚四", "email": "chu@163.com"},
    ])
    before = session.scalar(select(func.count()).select_from(Account))
    result = assign_accounts(session=session, lead_ids=new, now=NOW)
    session.commit()
    assert [account_of(session, i) for i in new[:2]] == [yunshan.id, yunshan.id]
    assert account_of(session, new[2]) is not None and account_of(session, new[3]) is None
    assert result.created == 1 and session.scalar(select(func.count()).select_from(Account)) == before + 1


def test_empty_accounts_go_unless_someone_cares_about_them(session, make_actor, company_leads):
    rebuild_accounts(session=session, now=NOW)
    session.commit()
    manager = make_actor("manager")
    target = accounts_by_name(session)["lanhai.com"]
    update_target_lists(session=session, actor=manager, account_ids=[target.id], add="名单A", now=NOW)
    session.execute(Lead.__table__.update().values(status="invalid"))
    session.commit()
    result = rebuild_accounts(session=session, now=NOW)
    session.commit()
    assert set(accounts_by_name(session)) == {"lanhai.com"} and result.removed == 1


def test_engagement_is_capped_and_stage_is_the_most_advanced_contact(session, make_actor):
    marketer = make_actor("marketer")
    ids = add_leads(session, [
        {"name": f"员工{i}", "company": "云杉科技", "engagement_score": score, "stage": stage}
        for i, (score, stage) in enumerate([(150, "mql"), (80, "opportunity"), (120, "lost"), (90, "new")])
    ] + [{"name": "独行", "company": "蓝海电子", "engagement_score": 40, "stage": "won"}])
    rebuild_accounts(session=session, now=NOW)
    session.commit()
    frame, total = list_accounts(session=session, actor=marketer)
    rows = frame.set_index("name")
    assert total == 2
    assert rows.loc["云杉科技", "engagement_score"] == 300  # 100 + 80 + 100 + 90 = 370, capped at 300
    assert rows.loc["云杉科技", "stage"] == "opportunity"  # an open opportunity is further than a lost one
    assert rows.loc["云杉科技", "contacts"] == 4
    assert rows.loc["蓝海电子", "stage"] == "won" and bool(rows.loc["蓝海电子", "is_customer"])
    profile = lead_profile(session=session, actor=marketer, lead_id=ids[0])
    assert profile["account"] == "云杉科技" and profile["account_info"]["stage"] == "opportunity"


def test_fit_against_the_icp_the_marketers_define(session, make_actor):
    marketer, manager = make_actor("marketer"), make_actor("manager")
    add_leads(session, [
        {"name": "甲", "company": "云杉科技", "industry": "软件", "company_size": 800, "province": "上海",
         "title": "CTO"},
        {"name": "乙", "company": "蓝海物流", "industry": "物流", "company_size": 50, "province": "广东"},
    ])
    rebuild_accounts(session=session, now=NOW)
    assert {a.fit_score for a in accounts_by_name(session).values()} == {0}, "no ICP yet: nothing fits"
    with pytest.raises(PermissionDenied):
        save_icp(session=session, actor=manager, icp={"industries": ["软件"]}, now=NOW)
    with pytest.raises(ValidationError) as error:
        save_icp(session=session, actor=marketer, icp={"size_min": 500, "size_max": 100}, now=NOW)
    assert error.value.key == "accounts.size_range"
    save_icp(session=session, actor=marketer, now=NOW, icp={
        "industries": "软件, SaaS", "size_min": 200, "size_max": 5000, "regions": ["上海", "北京"],
        "departments": ["it"], "weights": {"industry": 40, "size": 30, "region": 20, "committee": 10}})
    session.commit()
    accounts = accounts_by_name(session)
    assert accounts["云杉科技"].fit_score == 100 and accounts["蓝海物流"].fit_score == 0
    explained = fit_explanation(session=session, actor=marketer, account_id=accounts["云杉科技"].id)
    assert list(explained["criterion"]) == ["industry", "size", "region", "committee"]
    assert explained["matched"].all() and "CTO" in explained.iloc[3]["account_value"]
    save_icp(session=session, actor=marketer, now=NOW, icp={"industries": ["物流"], "regions": [], "size_min": None,
                                                            "size_max": None, "departments": []})
    session.commit()
    session.expire_all()
    accounts = accounts_by_name(session)
    assert accounts["蓝海物流"].fit_score == pytest.approx(40 / 50 * 100)  # industry + committee weight configured
    assert session.scalar(select(func.count()).where(AuditLog.action == "accounts.icp")) == 2


def _touch(session: Session, lead_id: int, days_ago: float, kind: str = "page_view") -> None:
    session.add(Touchpoint(lead_id=lead_id, kind=kind, occurred_at=NOW - timedelta(days=days_ago),
                           natural_key=f"{lead_id}-{kind}-{days_ago}"))


def test_mqa_when_several_people_engage_within_the_window(session, make_actor):
    marketer = make_actor("marketer")
    ids = add_leads(session, [{"name": f"云杉{i}", "company": "云杉科技"} for i in range(4)]
                    + [{"name": f"蓝海{i}", "company": "蓝海电子"} for i in range(3)])
    _touch(session, ids[0], 20)
    _touch(session, ids[0], 2)
    _touch(session, ids[1], 10)
    _touch(session, ids[2], 5)
    _touch(session, ids[3], 1)
    _touch(session, ids[4], 3)
    _touch(session, ids[5], 2, kind="email_sent")  # sent to them, not something they did
    _touch(session, ids[6], 45)  # outside the 30-day window
    session.commit()
    rebuild_accounts(session=session, now=NOW)
    session.commit()
    accounts = accounts_by_name(session)
    assert accounts["云杉科技"].mqa_at == NOW - timedelta(days=5), "the time the third person engaged"
    assert accounts["蓝海电子"].mqa_at is None
    mqa_only, total = list_accounts(session=session, actor=marketer, filters=AccountFilters(mqa_only=True))
    assert total == 1 and list(mqa_only["name"]) == ["云杉科技"]
    # Later, still qualified: the original time stays. Much later, nobody engaged recently: the signal goes.
    refresh_accounts(session=session, now=NOW + timedelta(days=3))
    session.commit()
    session.expire_all()
    assert session.get(Account, accounts["云杉科技"].id).mqa_at == NOW - timedelta(days=5)
    refresh_accounts(session=session, now=NOW + timedelta(days=40))
    session.commit()
    session.expire_all()
    assert session.get(Account, accounts["云杉科技"].id).mqa_at is None


def test_target_lists_and_filters(session, make_actor):
    marketer = make_actor("marketer")
    add_leads(session, [
        {"name": "甲", "company": "云杉科技", "industry": "软件", "stage": "mql"},
        {"name": "乙", "company": "蓝海电子", "industry": "电子", "stage": "new"},
        {"name": "丙", "company": "星河数据", "industry": "软件", "stage": "sql"},
    ])
    rebuild_accounts(session=session, now=NOW)
    ids = {name: a.id for name, a in accounts_by_name(session).items()}
    update_target_lists(session=session, actor=marketer, account_ids=[ids["云杉科技"], ids["蓝海电子"]],
                        add="2027 重点客户", now=NOW)
    update_target_lists(session=session, actor=marketer, account_ids=[ids["蓝海电子"]], add="华南", now=NOW)
    update_target_lists(session=session, actor=marketer, account_ids=[ids["云杉科技"]], remove="2027 重点客户", now=NOW)
    session.commit()

    def names(**kwargs) -> set[str]:  # noqa: ANN003
        frame, total = list_accounts(session=session, actor=marketer, filters=AccountFilters(**kwargs))
        assert total == len(frame)
        return set(frame["name"])

    assert names(target_list="2027 重点客户") == {"蓝海电子"}
    assert names(target_list="华南") == {"蓝海电子"}
    assert names(targets_only=True) == {"蓝海电子"}
    assert names(industries=("软件",)) == {"云杉科技", "星河数据"}
    assert names(stages=("sql", "mql")) == {"云杉科技", "星河数据"}
    assert names(text="云杉") == {"云杉科技"}
    assert names(text="%") == set(), "wildcards are literal"
    assert session.get(Account, ids["云杉科技"]).is_target is False
    with pytest.raises(ValidationError):
        update_target_lists(session=session, actor=marketer, account_ids=[ids["云杉科技"]], add="  ", now=NOW)
    page, total = list_accounts(session=session, actor=marketer, limit=2, offset=2)
    assert total == 3 and len(page) == 1


def test_owners_are_set_by_routing_managers_only(session, make_actor):
    marketer, manager = make_actor("marketer"), make_actor("manager")
    rep = make_actor("sales", username="rep_owner")
    add_leads(session, [{"name": "甲", "company": "云杉科技"}])
    rebuild_accounts(session=session, now=NOW)
    account_id = accounts_by_name(session)["云杉科技"].id
    with pytest.raises(PermissionDenied):
        set_account_owner(session=session, actor=marketer, account_ids=[account_id], owner_id=rep.id, now=NOW)
    with pytest.raises(ValidationError):
        set_account_owner(session=session, actor=manager, account_ids=[account_id], owner_id=marketer.id, now=NOW)
    set_account_owner(session=session, actor=manager, account_ids=[account_id], owner_id=rep.id, now=NOW)
    session.commit()
    assert session.get(Account, account_id).owner_id == rep.id
    assert get_account(session=session, actor=manager, account_id=account_id)["owner"] == "rep_owner"
    assert session.scalar(select(func.count()).where(AuditLog.action == "accounts.owner")) == 1
    with pytest.raises(PermissionDenied):
        list_accounts(session=session, actor=rep)


def test_committee_and_account_timeline(session, make_actor):
    marketer = make_actor("marketer")
    ids = add_leads(session, [
        {"name": "工程师甲", "company": "云杉科技", "title": "软件工程师", "engagement_score": 50},
        {"name": "老板", "company": "云杉科技", "title": "总经理", "engagement_score": 10},
        {"name": "经理乙", "company": "云杉科技", "title": "IT经理"},
    ])
    _touch(session, ids[0], 3)
    session.add(StageChange(lead_id=ids[1], from_stage="new", to_stage="mql", at=NOW - timedelta(days=1)))
    session.commit()
    rebuild_accounts(session=session, now=NOW)
    account_id = accounts_by_name(session)["云杉科技"].id
    committee = buying_committee(session=session, actor=marketer, account_id=account_id)
    assert list(committee["name"]) == ["老板", "经理乙", "工程师甲"]
    assert list(committee["role"]) == ["decision_maker", "influencer", "user"]
    assert list(committee["department"]) == ["executive", "it", "it"]
    events, total = account_timeline(session=session, actor=marketer, account_id=account_id)
    assert total == 2 and list(events["contact"]) == ["老板", "工程师甲"]
    stages, total = account_timeline(session=session, actor=marketer, account_id=account_id, kinds=["stage"])
    assert total == 1
