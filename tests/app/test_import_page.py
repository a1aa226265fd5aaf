"""The Import page: upload, preview with counts and problems, mapping edits, confirm, summary, undo."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from db.engine import make_engine
from db.models import Channel, ImportBatch, ImportStatus, Lead
from tests.app.conftest import logged_in

PAGE = "pages/import_leads.py"


@pytest.fixture
def database(app_database):  # noqa: ANN001, ANN201
    engine = make_engine(app_database)
    yield engine
    engine.dispose()


def open_page(username: str = "marketer", lang: str = "en"):
    at = logged_in(username)
    at.selectbox(key="language_switch").set_value(lang)
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def unique_file(tag: str) -> bytes:
    # Numbers unlikely to be in the demo data: 199 + tag digits.
    return ("标题：测试导出\n姓名,手机,邮箱,公司,备注\n"
            f"测试甲,19912{tag}00001,jia{tag}@importtest.cn,导入测试有限公司,A\n"
            f"测试甲,19912{tag}00001,,导入测试,B\n"
            f"测试乙,13800138000,test@x.com,某公司,\n"
            f"测试丙,19912{tag}00003,bing{tag}@importtest.cn,丙公司,C\n").encode("gb18030")


def metric(at, label: str) -> str:
    for m in at.metric:
        if m.label == label:
            return m.value
    raise AssertionError(f"no metric {label}: {[m.label for m in at.metric]}")


def channel_id(engine, name: str) -> int:
    with Session(engine) as session:
        return session.scalar(select(Channel.id).where(Channel.name == name))


def test_upload_preview_confirm_and_undo(database) -> None:
    at = open_page()
    assert at.title[0].value == "Channel import"
    at.file_uploader[0].upload("展会名单.csv", unique_file("1"), "text/csv")
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert metric(at, "New leads") == "2"
    assert metric(at, "Duplicates in the file") == "1"
    assert metric(at, "Invalid (kept)") == "1"
    assert any("header on line 2" in c.value for c in at.caption)
    # Mapping selectboxes, one per column, prefilled by synonyms.
    assert at.selectbox(key="import_map_1").value == "phone"
    assert at.selectbox(key="import_map_4").value is None
    before = _count(database, Lead)
    at.button(key="import_confirm").click()
    at.run()
    assert not at.exception, at.exception
    assert any("Import done" in s.value for s in at.success), [s.value for s in at.success]
    assert _count(database, Lead) == before + 3
    with Session(database) as session:
        batch = session.scalars(select(ImportBatch).order_by(ImportBatch.id.desc())).first()
        assert batch.filename == "展会名单.csv" and batch.counts["inserted"] == 2
        batch_id = batch.id
    # The uploader was cleared; the past batches list the new one; undo it.
    assert not at.metric
    at.selectbox(key="import_undo_id").set_value(batch_id)
    at.checkbox(key="import_undo_sure").check()
    at.button[[b.label for b in at.button].index("Undo import")].click()
    at.run()
    assert not at.exception, at.exception
    assert any(f"Batch #{batch_id} undone" in s.value for s in at.success), [s.value for s in at.success]
    assert _count(database, Lead) == before
    with Session(database) as session:
        assert session.get(ImportBatch, batch_id).status == ImportStatus.UNDONE


def test_mapping_edit_is_applied_and_remembered(database) -> None:
    at = open_page()
    at.file_uploader[0].upload("list.csv", unique_file("2"), "text/csv")
    at.run()
    at.selectbox(key="import_map_4").set_value("ignore")  # 备注 → ignored
    at.button[[b.label for b in at.button].index("Preview with this mapping")].click()
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="import_map_4").value == "ignore"
    at.button(key="import_confirm").click()
    at.run()
    assert not at.exception, at.exception
    channel = at.session_state["import_channel"]
    with Session(database) as session:
        assert session.get(Channel, channel).import_mapping.get("备注") == "ignore"


def test_same_file_again_is_recognised_and_a_bad_file_explained(database) -> None:
    at = open_page()
    data = unique_file("3")
    at.file_uploader[0].upload("again.csv", data, "text/csv")
    at.run()
    at.button(key="import_confirm").click()
    at.run()
    at.file_uploader[0].upload("again.csv", data, "text/csv")
    at.run()
    assert any("imported as batch" in w.value for w in at.warning), [w.value for w in at.warning]
    at.button(key="import_confirm").click()
    at.run()
    assert any("nothing changed" in i.value for i in at.info), [i.value for i in at.info]
    at.file_uploader[0].upload("broken.xlsx", b"PK\x03\x04not a workbook", "application/octet-stream")
    at.run()
    assert not at.exception
    assert any("Excel file cannot be opened" in e.value for e in at.error), [e.value for e in at.error]


def test_chinese_labels_and_sales_cannot_import(database) -> None:
    at = open_page(lang="zh")
    assert at.title[0].value == "渠道导入"
    rep = logged_in("sales1")
    with pytest.raises(ValueError):
        rep.switch_page(PAGE)


def _count(engine, model) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model))
