"""Importing a batch: counts, invalid leads kept with reasons, upsert that fills and never overwrites, the same
file twice, all-or-nothing, undo that restores exactly, activity files, attribution — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.errors import FileFormatError, PermissionDenied, ValidationError
from core.importer import preview, run_import, undo_batch
from core.settings import set_setting
from db.bulk import insert_many
from db.models import (
    AuditLog,
    Campaign,
    Channel,
    ImportBatch,
    ImportRow,
    ImportStatus,
    Lead,
    LeadStatus,
    Touchpoint,
    TrackingLink,
    User,
)
from tests.unit import import_files as files

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def marketer(make_actor):
    return make_actor("marketer")


@pytest.fixture
def channel(session) -> Channel:
    channel = Channel(name="展会", kind="tradeshow")
    session.add(channel)
    session.commit()
    return channel


def lead_rows(session) -> list[dict]:
    columns = [c for c in Lead.__table__.columns if c.name not in ("version", "updated_at")]
    return [dict(r._mapping) for r in session.execute(select(*columns).order_by(Lead.id))]


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


MESSY = ("姓名,手机,邮箱,公司,职位,备注\n"
         "张伟,13912345671,zhangwei@yunshan.cn,上海云杉科技有限公司,市场总监,第一排\n"
         "张伟,1.3912345671E+10,,云杉科技,,重复\n"            # same phone: duplicate in the file
         "李四,13800138000,test@x.com,某公司,,\n"               # fake phone and fake email
         "王五,,,无联系方式公司,,\n"                            # no way to contact
         "赵六,13612345678,zl@mailinator.com,公司B,,\n"         # disposable email
         "钱七,12345,qian@corp.cn,钱氏集团,经理,\n"              # malformed phone, but a good email
         "孙八,13712345678,sun@@bad,孙氏,,\n")                  # malformed email, but a good phone


def test_messy_file_counts_reasons_and_problem_report(session, channel, marketer) -> None:
    summary = run_import(session=session, actor=marketer, data=MESSY.encode("gbk"), filename="展会.csv",
                         channel_id=channel.id, now=NOW)
    session.commit()
    assert (summary.inserted, summary.duplicates_in_file, summary.invalid, summary.updated) == (3, 1, 3, 0)
    assert summary.touchpoints == 6
    leads = {lead["name"]: lead for lead in lead_rows(session)}
    assert leads["张伟"]["phone"] == "+8613912345671" and leads["张伟"]["status"] == LeadStatus.VALID
    assert leads["张伟"]["source_channel_id"] == channel.id and leads["张伟"]["attributes"] == {"备注": "第一排"}
    assert leads["李四"]["status"] == LeadStatus.INVALID and "虚假手机号" in leads["李四"]["invalid_reason"]
    assert leads["王五"]["status"] == LeadStatus.INVALID and "无联系方式" in leads["王五"]["invalid_reason"]
    assert leads["赵六"]["status"] == LeadStatus.INVALID and "一次性邮箱" in leads["赵六"]["invalid_reason"]
    assert leads["钱七"]["status"] == LeadStatus.VALID and leads["钱七"]["phone"] is None
    assert leads["钱七"]["attributes"]["phone_as_typed"] == "12345"
    assert leads["孙八"]["status"] == LeadStatus.VALID and leads["孙八"]["email"] is None
    report = summary.problem_report
    assert {"row", "column", "problem", "value"} <= set(report.columns)
    assert ((report["row"] == 7) & (report["column"] == "手机") & (report["value"] == "12345")).any()
    batch = session.get(ImportBatch, summary.batch_id)
    assert batch.status == ImportStatus.COMMITTED and batch.encoding == "gb18030" and batch.row_count == 7
    assert count(session, ImportRow) == 7
    rows = session.execute(select(ImportRow.row_number, ImportRow.outcome).order_by(ImportRow.row_number)).all()
    assert [o for _, o in rows] == ["inserted", "duplicate", "invalid", "invalid", "invalid", "inserted", "inserted"]
    # The mapping is remembered for the channel; the action is audited.
    session.refresh(channel)
    assert channel.import_mapping["手机"] == "phone"
    assert session.scalar(select(func.count()).where(AuditLog.action == "import.run")) == 1


def test_blocklist_setting(session, channel, marketer) -> None:
    set_setting(session, "import", {"blocklist": ["@competitor.com", "13912345671"]})
    data = ("姓名,手机,邮箱\n甲,13912345671,\n乙,,x@competitor.com\n丙,13512345678,\n").encode()
    summary = run_import(session=session, actor=marketer, data=data, filename="b.csv", channel_id=channel.id,
                         now=NOW)
    assert (summary.inserted, summary.invalid) == (1, 2)


def test_preview_writes_nothing_and_matches_the_run(session, channel, marketer) -> None:
    shown = preview(session=session, actor=marketer, data=MESSY.encode(), filename="a.csv", channel_id=channel.id,
                    now=NOW)
    assert count(session, Lead) == 0 and count(session, ImportBatch) == 0
    assert shown.mapping["邮箱"] == "email" and shown.mapping["备注"] is None
    assert shown.sample.iloc[0]["phone"] == "+8613912345671"
    done = run_import(session=session, actor=marketer, data=MESSY.encode(), filename="a.csv",
                      channel_id=channel.id, now=NOW)
    for name in ("inserted", "updated", "duplicates_in_file", "invalid", "touchpoints"):
        assert shown.counts[name] == getattr(done, name), name


def test_upsert_fills_empty_fields_and_never_overwrites(session, channel, marketer, make_actor) -> None:
    rep = make_actor("sales")
    session.add(Lead(name="张伟", phone="+8613912345671", company="云杉科技", title=None, email=None,
                     owner_id=rep.id, created_at=NOW - timedelta(days=30)))
    session.commit()
    data = ("姓名,手机,邮箱,公司,职位\n"
            "张伟伟,13912345671,zhangwei@yunshan.cn,,市场总监\n").encode()
    summary = run_import(session=session, actor=marketer, data=data, filename="u.csv", channel_id=channel.id,
                         now=NOW)
    session.commit()
    assert (summary.inserted, summary.updated, summary.owned_by_sales) == (0, 1, 1)
    lead = lead_rows(session)[0]
    assert lead["name"] == "张伟" and lead["company"] == "云杉科技"  # kept, not overwritten
    assert lead["email"] == "zhangwei@yunshan.cn" and lead["title"] == "市场总监"  # filled
    assert "zhangwei@yunshan.cn" in lead["search_text"]


def test_same_file_twice_does_nothing_unless_forced(session, channel, marketer) -> None:
    data = files.gbk_with_title_rows()
    first = run_import(session=session, actor=marketer, data=data, filename="a.csv", channel_id=channel.id, now=NOW)
    session.commit()
    before = (count(session, Lead), count(session, Touchpoint), count(session, ImportBatch))
    again = run_import(session=session, actor=marketer, data=data, filename="a.csv", channel_id=channel.id, now=NOW)
    session.commit()
    assert again.already_imported and again.batch_id == first.batch_id
    assert (count(session, Lead), count(session, Touchpoint), count(session, ImportBatch)) == before
    forced = run_import(session=session, actor=marketer, data=data, filename="a.csv", channel_id=channel.id,
                        now=NOW, force=True)
    session.commit()
    # Overlapping rows update the existing leads; the same activity is not recorded twice.
    assert (forced.inserted, forced.updated, forced.touchpoints, forced.touchpoints_known) == (0, 3, 0, 3)
    assert count(session, Lead) == before[0] and count(session, Touchpoint) == before[1]


def test_dry_run_writes_nothing(session, channel, marketer) -> None:
    summary = run_import(session=session, actor=marketer, data=files.utf8_bom(), filename="a.csv",
                         channel_id=channel.id, now=NOW, dry_run=True)
    assert summary.dry_run and summary.inserted == 3 and summary.batch_id is None
    assert count(session, Lead) == 0 and count(session, ImportBatch) == 0


def test_failure_midway_rolls_everything_back(session, channel, marketer) -> None:
    session.add(Lead(name="老客户", phone="+8613912345672", created_at=NOW - timedelta(days=3)))
    session.commit()
    before = lead_rows(session)

    def explode(fraction: float, stage: str) -> None:
        if stage == "rows":  # leads and touchpoints are written by now
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        run_import(session=session, actor=marketer, data=files.utf8_bom(), filename="a.csv",
                   channel_id=channel.id, now=NOW, progress=explode)
    session.rollback()
    assert lead_rows(session) == before
    assert count(session, Touchpoint) == 0 and count(session, ImportBatch) == 0 and count(session, ImportRow) == 0


def test_database_error_midway_rolls_back_with_a_clear_message(session, channel, marketer, monkeypatch) -> None:
    run_import(session=session, actor=marketer, data=files.utf8_bom(), filename="a.csv", channel_id=channel.id,
               now=NOW)
    session.commit()
    before = (lead_rows(session), count(session, Touchpoint), count(session, ImportBatch))
    # Touchpoints already recorded are no longer skipped, so the insert hits the unique natural key.
    def insert_all(session, table, columns, *, serialized=(), skip_existing=None):  # noqa: ANN001, ANN202
        return insert_many(session, table, columns, serialized=serialized)

    monkeypatch.setattr("core.importer.run.insert_many", insert_all)
    extra = files.utf8_bom() + "新人,13512345679,new@corp.cn,新公司,经理,杭州\n".encode()
    with pytest.raises(ValidationError) as error:
        run_import(session=session, actor=marketer, data=extra, filename="b.csv", channel_id=channel.id, now=NOW)
    assert error.value.key == "import.failed"
    session.rollback()
    assert (lead_rows(session), count(session, Touchpoint), count(session, ImportBatch)) == before


def test_undo_restores_exactly(session, channel, marketer) -> None:
    session.add(Lead(name="张伟", phone="+8613912345671", company="云杉科技", created_at=NOW - timedelta(days=9)))
    session.add(Lead(name="无关", phone="+8613512340000", created_at=NOW - timedelta(days=9)))
    session.commit()
    before = lead_rows(session)
    summary = run_import(session=session, actor=marketer, data=files.utf8_bom(), filename="a.csv",
                         channel_id=channel.id, now=NOW)
    session.commit()
    assert (summary.inserted, summary.updated) == (2, 1)
    assert lead_rows(session) != before
    result = undo_batch(session=session, actor=marketer, batch_id=summary.batch_id, now=NOW + timedelta(hours=1))
    session.commit()
    assert result == {"removed_leads": 2, "restored_leads": 1, "removed_touchpoints": 3}
    after = lead_rows(session)
    for row in before + after:
        row.pop("account_id", None)  # accounts are rebuilt from the restored fields
    for old, new in zip(before, after, strict=True):
        assert {k: (v, new[k]) for k, v in old.items() if new[k] != v} == {}
    assert after == before
    assert count(session, Touchpoint) == 0
    assert session.get(ImportBatch, summary.batch_id).status == ImportStatus.UNDONE
    # A second click finds the batch undone.
    with pytest.raises(Exception) as error:
        undo_batch(session=session, actor=marketer, batch_id=summary.batch_id, now=NOW)
    assert error.value.key == "import.not_undoable"


def test_undo_refused_when_later_work_depends_on_it(session, channel, marketer, make_actor) -> None:
    rep = make_actor("sales")
    summary = run_import(session=session, actor=marketer, data=files.utf8_bom(), filename="a.csv",
                         channel_id=channel.id, now=NOW)
    session.commit()
    lead = session.scalars(select(Lead).where(Lead.name == "李娜")).one()
    lead.owner_id = rep.id
    session.commit()
    with pytest.raises(ValidationError) as error:
        undo_batch(session=session, actor=marketer, batch_id=summary.batch_id, now=NOW)
    assert error.value.key == "import.undo_blocked"
    assert "分配给销售" in error.value.localized("zh")
    session.rollback()
    assert count(session, Lead) == 3


def test_activity_file_matches_people_and_creates_the_identifiable(session, marketer) -> None:
    webinar = Channel(name="线上研讨会", kind="event")
    session.add(webinar)
    session.commit()
    session.add(Lead(name="老朋友", email="old@corp.cn", created_at=NOW - timedelta(days=40)))
    session.commit()
    data = ("邮箱,手机,姓名,行为,参会时长,时间\n"
            "old@corp.cn,,老朋友,报名,0,2026-10-30 14:00\n"
            "OLD@corp.cn,,老朋友,参会,45,2026-10-30 15:00\n"
            ",13512345678,新朋友,观看直播,30,2026-10-30 15:00\n"
            ",,匿名,观看直播,5,2026-10-30 15:00\n").encode()
    summary = run_import(session=session, actor=marketer, data=data, filename="webinar.csv",
                         channel_id=webinar.id, now=NOW)
    session.commit()
    assert summary.kind == "touchpoints"
    assert (summary.inserted, summary.updated, summary.skipped, summary.touchpoints) == (1, 1, 1, 3)
    kinds = dict(session.execute(select(Touchpoint.kind, Touchpoint.properties).order_by(Touchpoint.id)).all())
    assert set(kinds) == {"webinar_registered", "webinar_attended", "livestream_view"}
    assert kinds["webinar_attended"]["duration_minutes"] == 45
    times = session.scalars(select(Touchpoint.occurred_at).order_by(Touchpoint.id)).all()
    assert times[0].astimezone(UTC).hour == 6  # 14:00 in Shanghai


def test_attribution_from_landing_url_tracking_link_and_employee_code(session, channel, marketer,
                                                                      make_actor) -> None:
    rep = make_actor("sales")
    user = session.get(User, rep.id)
    user.employee_code = "E042"
    session.add(user)
    campaign = Campaign(name="工博会", channel_id=channel.id, utm_campaign="ciif2026")
    session.add(campaign)
    session.commit()
    link = TrackingLink(code="POSTER1", campaign_id=campaign.id, employee_id=None)
    session.add(link)
    session.commit()
    data = ("姓名,手机,落地页,推荐码\n"
            "甲,13512345671,https://x.cn/p?utm_source=wechat&utm_medium=social&utm_campaign=ciif2026,\n"
            "乙,13512345672,https://x.cn/p?code=POSTER1,\n"
            "丙,13512345673,,E042\n").encode()
    run_import(session=session, actor=marketer, data=data, filename="a.csv", channel_id=channel.id, now=NOW)
    session.commit()
    leads = {lead["name"]: lead for lead in lead_rows(session)}
    assert (leads["甲"]["utm_source"], leads["甲"]["utm_medium"], leads["甲"]["utm_campaign"]) == (
        "wechat", "social", "ciif2026")
    assert leads["甲"]["source_campaign_id"] == campaign.id
    assert leads["乙"]["tracking_code"] == "POSTER1" and leads["乙"]["source_campaign_id"] == campaign.id
    assert leads["丙"]["referrer_id"] == rep.id


def test_xlsx_and_utf16_import(session, channel, marketer) -> None:
    first = run_import(session=session, actor=marketer, data=files.xlsx_chinese(), filename="名单.xlsx",
                       channel_id=channel.id, now=NOW)
    second = run_import(session=session, actor=marketer, data=files.utf16_tab(), filename="u.txt",
                        channel_id=channel.id, now=NOW)
    assert (first.inserted, second.updated) == (3, 3)


def test_permissions_and_unreadable_files(session, channel, make_actor) -> None:
    rep = make_actor("sales")
    with pytest.raises(PermissionDenied):
        run_import(session=session, actor=rep, data=files.utf8_bom(), filename="a.csv", channel_id=channel.id,
                   now=NOW)
    marketer = make_actor("marketer")
    set_setting(session, "import", {"max_upload_mb": 0.001})
    with pytest.raises(FileFormatError) as error:
        run_import(session=session, actor=marketer, data=files.utf8_bom() * 10, filename="a.csv",
                   channel_id=channel.id, now=NOW)
    assert error.value.key == "import.too_large"


def test_summary_is_json_serialisable(session, channel, marketer) -> None:
    summary = run_import(session=session, actor=marketer, data=files.semicolons(), filename="s.csv",
                         channel_id=channel.id, now=NOW)
    data = json.loads(json.dumps(summary.as_dict()))
    assert {"inserted", "updated", "duplicates_in_file", "invalid", "touchpoints", "batch_id"} <= set(data)


def test_undo_puts_back_what_the_batchs_own_chain_did(session, channel, marketer) -> None:
    from core.rules.store import save_rule
    from db.models import StageChange

    save_rule(session=session, actor=marketer, rule_id=None, name="MQL", kind="mql", text='title = "市场总监"',
              now=NOW - timedelta(days=1))
    session.add(Lead(name="张伟", phone="+8613912345671", created_at=NOW - timedelta(days=9)))
    session.commit()
    before = lead_rows(session)
    summary = run_import(session=session, actor=marketer, data=files.utf8_bom(), filename="a.csv",
                         channel_id=channel.id, now=NOW)
    session.commit()
    stages = dict(session.execute(select(Lead.name, Lead.stage)).all())
    assert stages["张伟"] == "mql"  # the title the batch filled crossed the MQL line
    assert session.scalar(select(func.count()).select_from(StageChange)) >= 1
    undo_batch(session=session, actor=marketer, batch_id=summary.batch_id, now=NOW + timedelta(hours=1))
    session.commit()
    after = lead_rows(session)
    for row in before + after:
        row.pop("account_id", None)
    for old, new in zip(before, after, strict=True):
        assert {k: (v, new[k]) for k, v in old.items() if new[k] != v} == {}
    assert session.scalar(select(func.count()).select_from(StageChange)) == 0


def test_an_import_places_its_leads_in_accounts_as_a_rebuild_would(session, channel, marketer) -> None:
    from core.accounts import rebuild_accounts
    from db.models import Account

    session.add_all([
        Lead(name="周一", phone="+8613912340001", email="zhou@yunshan.cn", company="上海云杉科技有限公司",
             company_key="云杉科技", created_at=NOW - timedelta(days=30)),
        Lead(name="吴二", phone="+8613912340002", created_at=NOW - timedelta(days=30)),
        Lead(name="郑三", phone="+8613912340003", company="博瑞物流", company_key="博瑞物流",
             created_at=NOW - timedelta(days=30)),
    ])
    session.commit()
    rebuild_accounts(session=session, now=NOW - timedelta(days=30))
    session.commit()
    # Certain pairs merge by themselves: a new lead that is 郑三 with a mistyped mobile and another company.
    set_setting(session, "dedup", {"auto_merge": 0.5, "review": 0.4})
    data = ("姓名,手机,邮箱,公司,行业\n"
            "陈四,13912340004,chen@yunshan.cn,云杉科技,软件\n"       # joins 云杉科技 (company and domain)
            "林五,13912340005,lin@yunshan.cn,,\n"                    # joins it by the domain alone
            "吴二,13912340002,wu@haichuan.cn,海川电子有限公司,\n"    # a stored lead gets a company: a new account
            "郑三,13912340013,,思源数据服务有限公司,\n"              # merged into 郑三, whom it duplicates
            "何六,13912340006,,,\n").encode()                        # no company, no domain: no account
    summary = run_import(session=session, actor=marketer, data=data, filename="a.csv", channel_id=channel.id,
                         now=NOW)
    session.commit()
    assert (summary.inserted, summary.updated) == (4, 1)
    merged = session.scalars(select(Lead).where(Lead.status == LeadStatus.MERGED)).all()
    assert [lead.name for lead in merged] == ["郑三"]

    def placed() -> dict[str, str | None]:
        names = dict(session.execute(select(Account.id, Account.name_key)).all())
        return {lead.name: names.get(lead.account_id) for lead in session.scalars(
            select(Lead).where(Lead.status == LeadStatus.VALID).order_by(Lead.id))}

    after_import = placed()
    assert after_import["陈四"] == after_import["林五"] == after_import["周一"] == "云杉科技"
    assert after_import["吴二"] == "海川电子" and after_import["何六"] is None
    # The figures were refreshed with the batch: 云杉科技 takes its industry from its new contact.
    yunshan = session.scalars(select(Account).where(Account.name_key == "云杉科技")).one()
    assert yunshan.industry == "软件"
    # No account is left without a valid lead, and a rebuild from scratch changes nothing.
    accounts = set(session.scalars(select(Account.name_key)))
    assert accounts == {name for name in after_import.values() if name}
    rebuilt = rebuild_accounts(session=session, now=NOW)
    session.commit()
    assert (rebuilt.created, rebuilt.removed, rebuilt.leads_assigned) == (0, 0, 0)
    assert placed() == after_import
