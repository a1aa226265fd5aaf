"""Bad files at the importer: every one ends in a clear, translated message or a clean import — never an
unexpected exception — and a refused file leaves the database exactly as it was.

The cases are the ones people send by mistake or by malice: truncated and damaged workbooks, images and
binaries with a spreadsheet's name, wrong or mixed encodings, ragged rows, a thousand columns, a 10 MB cell,
NUL bytes, a zip bomb; then random bytes from hypothesis.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlmodel import Session

from core.auth import SYSTEM
from core.errors import LeadLoopError
from core.i18n import t
from core.importer import run_import
from db.models import Channel, ImportBatch, ImportRow, Lead, Touchpoint

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
HEADER = "姓名,手机,邮箱,公司\n"


def _xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _zip_bomb() -> bytes:
    """A valid-looking workbook whose one sheet inflates to 1.5 GB of zeros (about 1.5 MB on disk)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            chunk = b"0" * (16 * 1024 * 1024)
            for _ in range(96):
                sheet.write(chunk)
    return buffer.getvalue()


GOOD_XLSX = _xlsx([["姓名", "手机", "邮箱"], ["张伟", "13912345678", "zw@example.cn"]])
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + bytes(200)

BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "empty.csv"),
    "only spaces and newlines": (b"   \n\n \r\n", "blank.csv"),
    "header without rows": (HEADER.encode(), "header.csv"),
    "truncated workbook": (GOOD_XLSX[: len(GOOD_XLSX) // 2], "cut.xlsx"),
    "damaged workbook": (GOOD_XLSX[:200] + bytes(500) + GOOD_XLSX[700:], "damaged.xlsx"),
    "an image named .csv": (PNG, "photo.csv"),
    "an image named .xlsx": (PNG, "photo.xlsx"),
    "an old .xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "old.xls"),
    "a zip bomb workbook": (_zip_bomb(), "bomb.xlsx"),
    "random binary": (bytes(range(256)) * 40, "data.csv"),
}

# Files that are awkward but readable: they import, or are refused with a message — either way cleanly.
AWKWARD_FILES: dict[str, tuple[bytes, str]] = {
    "ragged rows": ((HEADER + "张伟,13912345678\n李娜,13912345679,ln@example.cn,云杉,多余,更多\n王芳\n")
                    .encode(), "ragged.csv"),
    "a thousand columns": ((",".join(["姓名", "手机"] + [f"c{i}" for i in range(998)]) + "\n"
                            + ",".join(["张伟", "13912345678"] + ["x"] * 998) + "\n").encode(), "wide.csv"),
    "a 10 MB cell": ((HEADER + "张伟,13912345678,zw@example.cn," + "公" * (10 * 1024 * 1024 // 3) + "\n")
                     .encode(), "huge-cell.csv"),
    "NUL bytes": ((HEADER + "张\x00伟,139\x0012345678,zw@example.cn,云杉\n").encode(), "nul.csv"),
    "GBK with broken bytes": (HEADER.encode("gbk") + "张伟,13912345678,zw@example.cn,云杉科技\n".encode("gbk")
                              + b"\xff\xfe\x81,\x80\x80,,\n", "mixed.csv"),
    "UTF-16 without BOM": ((HEADER + "张伟,13912345678,zw@example.cn,云杉\n").encode("utf-16-le"), "u16.csv"),
    "formulas in cells": ((HEADER + '=HYPERLINK("http://x"),+8613912345678,@zw@example.cn,-云杉\n').encode(),
                          "formula.csv"),
}


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(session.scalar(select(func.count()).select_from(table)) or 0
                 for table in (Lead, Touchpoint, ImportBatch, ImportRow))


@pytest.fixture
def channel_id(session: Session) -> int:
    channel = Channel(name="官网表单", kind="web_form")
    session.add(channel)
    session.commit()
    return int(channel.id)  # type: ignore[arg-type]


def _attempt(session: Session, channel_id: int, data: bytes, filename: str) -> LeadLoopError | None:
    """Import as the page does: one transaction, committed on success, rolled back on a refusal."""
    try:
        run_import(session=session, actor=SYSTEM, data=data, filename=filename, channel_id=channel_id, now=NOW)
        session.commit()
        return None
    except LeadLoopError as error:
        session.rollback()
        return error


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_refused_with_a_message_and_nothing_changes(session, channel_id, case):
    data, filename = BAD_FILES[case]
    before = _counts(session)
    error = _attempt(session, channel_id, data, filename)
    assert error is not None, f"{case}: accepted"
    for lang in ("zh", "en"):
        message = error.localized(lang)
        assert message and "{" not in message and message != error.key, (case, lang, message)
    assert error.key == "" or t(error.key, "zh") != error.key, f"{case}: untranslated {error.key}"
    assert _counts(session) == before, f"{case}: the database changed"


@pytest.mark.parametrize("case", list(AWKWARD_FILES))
def test_an_awkward_file_imports_or_is_refused_cleanly(session, channel_id, case):
    data, filename = AWKWARD_FILES[case]
    before = _counts(session)
    error = _attempt(session, channel_id, data, filename)
    if error is not None:
        assert error.localized("zh") and error.localized("en")
        assert _counts(session) == before, f"{case}: the database changed"
    else:
        assert _counts(session)[3] > before[3], f"{case}: imported, so its raw rows are kept"


def test_a_zip_bomb_is_refused_before_it_is_inflated(session, channel_id):
    import time

    data, filename = BAD_FILES["a zip bomb workbook"]
    started = time.perf_counter()
    error = _attempt(session, channel_id, data, filename)
    assert error is not None and error.key == "import.xlsx_bomb"
    assert time.perf_counter() - started < 5, "refused from the zip directory, not by inflating 1.5 GB"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=4096), suffix=st.sampled_from(["csv", "tsv", "txt", "xlsx"]))
def test_random_bytes_never_escape_as_an_unexpected_exception(session, channel_id, data, suffix):
    before = _counts(session)
    error = _attempt(session, channel_id, data, f"fuzz.{suffix}")
    if error is not None:
        assert _counts(session) == before
