"""Generated channel files, one per variant the importer must read (no binary fixtures in the repository)."""

from __future__ import annotations

import io

from openpyxl import Workbook

HEADER_ZH = ["姓名", "手机", "邮箱", "公司", "职位", "城市"]
PEOPLE = [
    ["张伟", "13912345671", "zhangwei@yunshan.cn", "上海云杉科技有限公司", "市场总监", "上海"],
    ["李娜", "139 1234 5672", "lina@qiming.com", "北京启明软件股份有限公司", "IT经理", "北京"],
    ["王芳", "+86 139-1234-5673", "", "深圳海蓝电子", "采购", "深圳"],
]


def csv_text(rows: list[list[str]], delimiter: str = ",", header: list[str] | None = None) -> str:
    lines = [delimiter.join(header or HEADER_ZH)] + [delimiter.join(r) for r in rows]
    return "\n".join(lines) + "\n"


def gbk_with_title_rows() -> bytes:
    """What a Chinese Excel on Windows exports: two title lines above the header, GBK."""
    text = "2026年工博会展位扫码名单\n导出时间：2026-11-01 10:00,,,,,\n" + csv_text(PEOPLE)
    return text.encode("gbk")


def utf8_bom() -> bytes:
    return csv_text(PEOPLE).encode("utf-8-sig")


def utf16_tab() -> bytes:
    """Excel's "Unicode text": UTF-16 with BOM, tab-separated."""
    return csv_text(PEOPLE, delimiter="\t").encode("utf-16")


def semicolons() -> bytes:
    return csv_text(PEOPLE, delimiter=";").encode("utf-8")


def scientific_phones() -> bytes:
    """Phones that went through Excel: 1.39123E+10 and a trailing .0; full-width digits too."""
    rows = [
        ["张伟", "1.3912345671E+10", "zhangwei@yunshan.cn", "上海云杉科技有限公司", "市场总监", "上海"],
        ["李娜", "13912345672.0", "lina@qiming.com", "北京启明软件", "IT经理", "北京"],
        ["王芳", "１３９１２３４５６７３", "", "深圳海蓝电子", "采购", "深圳"],
    ]
    return csv_text(rows).encode("utf-8")


def xlsx_chinese(sheets: dict[str, list[list[object]]] | None = None) -> bytes:
    """A workbook with a Chinese header; phones as numbers (as Excel keeps them)."""
    workbook = Workbook()
    first = True
    sheets = sheets or {"名单": [HEADER_ZH, *[[r[0], int(r[1].replace(" ", "").replace("-", "").replace("+86", "")),
                                               r[2], r[3], r[4], r[5]] for r in PEOPLE]]}
    for name, rows in sheets.items():
        sheet = workbook.active if first else workbook.create_sheet()
        sheet.title = name
        first = False
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
