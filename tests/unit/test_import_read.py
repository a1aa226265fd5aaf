"""Reading channel files: encodings detected, delimiters sniffed, header found below title lines, XLSX sheets."""

from __future__ import annotations

import pytest

from core.errors import FileFormatError
from core.importer import read_file, suggest_mapping
from core.normalize import phone_e164
from tests.unit import import_files as files

EXPECTED_NAMES = ["张伟", "李娜", "王芳"]


@pytest.mark.parametrize(("maker", "filename", "encoding", "delimiter"), [
    (files.gbk_with_title_rows, "名单.csv", "gb18030", ","),
    (files.utf8_bom, "bom.csv", "utf-8-sig", ","),
    (files.utf16_tab, "unicode.txt", "utf-16", "\t"),
    (files.semicolons, "semi.csv", "utf-8", ";"),
    (files.scientific_phones, "sci.csv", "utf-8", ","),
])
def test_text_variants(maker, filename, encoding, delimiter) -> None:
    table = read_file(maker(), filename)
    assert table.encoding == encoding
    assert table.delimiter == delimiter
    assert table.columns == files.HEADER_ZH
    assert table.frame["姓名"].tolist() == EXPECTED_NAMES
    phones = phone_e164(table.frame["手机"]).tolist()
    assert phones == ["+8613912345671", "+8613912345672", "+8613912345673"]


def test_header_below_title_lines_and_line_numbers() -> None:
    table = read_file(files.gbk_with_title_rows(), "名单.csv")
    assert table.header_line == 3
    assert table.line_numbers == [4, 5, 6]


def test_xlsx_with_chinese_headers_and_sheet_choice() -> None:
    data = files.xlsx_chinese({
        "说明": [["这是说明页"]],
        "名单": [files.HEADER_ZH, ["张伟", 13912345671, "a@b.cn", "云杉", "经理", "上海"]],
    })
    first = read_file(data, "book.xlsx")
    assert first.sheets == ["说明", "名单"] and first.sheet == "名单"  # the notes sheet holds no table
    chosen = read_file(data, "book.xlsx", sheet="名单")
    assert chosen.columns == files.HEADER_ZH
    assert chosen.frame.iloc[0]["手机"] == "13912345671"  # a number cell, no ".0"
    with pytest.raises(FileFormatError) as error:
        read_file(data, "book.xlsx", sheet="不存在")
    assert error.value.key == "import.no_sheet"


def test_size_limit_checked_before_reading() -> None:
    with pytest.raises(FileFormatError) as error:
        read_file(b"x" * 2048, "big.csv", max_bytes=1024)
    assert error.value.key == "import.too_large"


@pytest.mark.parametrize(("data", "filename", "key"), [
    (b"", "empty.csv", "import.empty"),
    (b"\xd0\xcf\x11\xe0" + b"\x00" * 64, "old.xls", "import.old_excel"),
    (b"PK\x03\x04garbage", "broken.xlsx", "import.xlsx_unreadable"),
    ("姓名,手机\n".encode(), "header_only.csv", "import.no_rows"),
])
def test_unreadable_files_say_why(data: bytes, filename: str, key: str) -> None:
    with pytest.raises(FileFormatError) as error:
        read_file(data, filename)
    assert error.value.key == key
    assert str(error.value).endswith(".")


def test_mapping_by_synonyms_in_both_languages() -> None:
    mapping = suggest_mapping(["联系人", "手机号码(必填)", "E-mail", "企业名称", "职务", "所在城市", "公司规模",
                               "员工工号", "utm_campaign", "落地页", "观看时长(分钟)", "签到时间", "备注"])
    assert mapping == {
        "联系人": "name", "手机号码(必填)": "phone", "E-mail": "email", "企业名称": "company", "职务": "title",
        "所在城市": "city", "公司规模": "company_size", "员工工号": "referral_code", "utm_campaign": "utm_campaign",
        "落地页": "landing_url", "观看时长(分钟)": "duration", "签到时间": "occurred_at", "备注": None,
    }
    english = suggest_mapping(["Full Name", "Mobile", "Email Address", "Company", "Job Title"])
    assert list(english.values()) == ["name", "phone", "email", "company", "title"]


def test_saved_mapping_wins_over_synonyms() -> None:
    mapping = suggest_mapping(["姓名", "公司"], saved={"公司": "ignore", "姓名": "company"})
    assert mapping == {"姓名": "company", "公司": "ignore"}
