"""Tracking links and QR codes, and the import CLI — on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from PIL import Image
from sqlalchemy import func, select

from core.__main__ import main
from core.errors import PermissionDenied, ValidationError
from core.importer import run_import
from core.tracking import (
    create_employee_links,
    create_tracking_link,
    list_tracking_links,
    qr_png,
    tracked_url,
)
from db.engine import dispose_engines
from db.models import Campaign, Channel, ImportBatch, Lead
from tests.unit import import_files as files

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def campaign(session) -> Campaign:
    channel = Channel(name="线下海报", kind="event")
    session.add(channel)
    session.commit()
    campaign = Campaign(name="地铁海报", channel_id=channel.id)
    session.add(campaign)
    session.commit()
    return campaign


def test_tracked_url_keeps_other_parameters() -> None:
    assert tracked_url("https://x.cn/lp?utm_source=poster&ll=OLD", "ABC") == "https://x.cn/lp?utm_source=poster&ll=ABC"
    assert tracked_url("https://x.cn", "ABC") == "https://x.cn/?ll=ABC"


def test_links_per_campaign_and_employee_attribute_imported_leads(session, campaign, make_actor) -> None:
    marketer = make_actor("marketer")
    rep1, rep2 = make_actor("sales"), make_actor("sales")
    link = create_tracking_link(session=session, actor=marketer, campaign_id=campaign.id,
                                target_url="https://x.cn/lp", label="地铁 2 号线", now=NOW)
    made = create_employee_links(session=session, actor=marketer, campaign_id=campaign.id,
                                 target_url="https://x.cn/lp", now=NOW)
    session.commit()
    assert made == 2
    assert create_employee_links(session=session, actor=marketer, campaign_id=campaign.id,
                                 target_url="https://x.cn/lp", now=NOW) == 0  # each rep once
    links = list_tracking_links(session=session, campaign_id=campaign.id)
    assert len(links) == 3 and set(links["employee_id"].dropna().astype(int)) == {rep1.id, rep2.id}
    rep_link = links[links["employee_id"] == rep1.id].iloc[0]
    data = ("姓名,手机,落地页\n"
            f"甲,13512345671,{tracked_url('https://x.cn/lp', link.code)}\n"
            f"乙,13512345672,{rep_link['url']}\n").encode()
    run_import(session=session, actor=marketer, data=data, filename="poster.csv", channel_id=campaign.channel_id,
               now=NOW)
    session.commit()
    leads = {r.name: r for r in session.execute(select(Lead.name, Lead.tracking_code, Lead.source_campaign_id,
                                                       Lead.referrer_id))}
    assert leads["甲"].tracking_code == link.code and leads["甲"].source_campaign_id == campaign.id
    assert leads["乙"].referrer_id == rep1.id and leads["乙"].source_campaign_id == campaign.id
    counted = list_tracking_links(session=session)
    assert int(counted.loc[counted["code"] == link.code, "leads"].iloc[0]) == 1


def test_link_checks(session, campaign, make_actor) -> None:
    with pytest.raises(PermissionDenied):
        create_tracking_link(session=session, actor=make_actor("sales"), campaign_id=campaign.id,
                             target_url="https://x.cn", now=NOW)
    with pytest.raises(ValidationError):
        create_tracking_link(session=session, actor=make_actor("marketer"), campaign_id=campaign.id,
                             target_url="x.cn/no-scheme", now=NOW)


def test_qr_png_is_an_image() -> None:
    image = Image.open(io.BytesIO(qr_png("https://x.cn/?ll=ABCDEFGH")))
    assert image.format == "PNG" and image.size[0] == image.size[1] > 100


@pytest.fixture
def cli_database(engine, monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    dispose_engines()
    yield engine
    dispose_engines()


def test_cli_json_summary_and_same_file_again(cli_database, session, tmp_path, capsys) -> None:
    session.add(Channel(name="展会", kind="tradeshow"))
    session.commit()
    path = tmp_path / "展会名单.csv"
    path.write_bytes(files.gbk_with_title_rows())
    assert main(["import", str(path), "--channel", "展会", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {k: result[k] for k in ("inserted", "updated", "duplicates_in_file", "invalid", "touchpoints")} == {
        "inserted": 3, "updated": 0, "duplicates_in_file": 0, "invalid": 0, "touchpoints": 3}
    assert isinstance(result["batch_id"], int)
    assert main(["import", str(path), "--channel", "展会", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["already_imported"] and again["batch_id"] == result["batch_id"]
    assert main(["import", str(path), "--channel", "展会", "--dry-run", "--force"]) == 0
    assert "dry run" in capsys.readouterr().out
    assert session.scalar(select(func.count()).select_from(ImportBatch)) == 1


def test_cli_refuses_an_unreadable_file_with_one_sentence(cli_database, session, tmp_path, capsys) -> None:
    session.add(Channel(name="展会", kind="tradeshow"))
    session.commit()
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 100)
    assert main(["import", str(path), "--channel", "展会"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "Old .xls workbooks cannot be read: save the file as .xlsx or .csv."
    assert main(["import", str(tmp_path / "missing.csv"), "--channel", "展会"]) == 1
    assert "cannot be opened" in capsys.readouterr().err
    assert main(["import", str(path), "--channel", "没有这个渠道"]) == 1
