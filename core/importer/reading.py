"""Reading a channel's file: encoding, delimiter, header row below title lines, XLSX sheets.

Everything comes back as text cells (``str``, empty string for an empty cell), so a phone number is never turned
into a float by the reader and leading zeros survive; the normalizer repairs what Excel already damaged.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time

import numpy as np
import pandas as pd

from core.errors import FileFormatError

_DELIMITERS = (",", "\t", ";", "|")
_SNIFF_LINES = 60
_HEADER_SCAN_ROWS = 30
_XLSX_MAGIC = b"PK\x03\x04"
# An .xlsx is a zip of XML. A "zip bomb" workbook unpacks to gigabytes from a few hundred kilobytes; real
# exports compress XML perhaps 10–50×. Refuse what unpacks past an absolute ceiling, or past a moderate size at an
# implausible ratio, before openpyxl inflates any of it.
# The csv module refuses fields over 128 KB by default; a cell may be as large as the upload limit allows.
csv.field_size_limit(256 * 1024 * 1024)
_XLSX_UNPACKED_CEILING = 1024 * 1024 * 1024
_XLSX_SUSPICIOUS_SIZE = 64 * 1024 * 1024
_XLSX_SUSPICIOUS_RATIO = 100
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls
_GB_FAMILY = ("gbk", "gb2312", "gb18030", "hz", "cp936")


@dataclass
class RawTable:
    """A file as read: text cells under their header, and what the reader found out about the file."""

    frame: pd.DataFrame
    encoding: str | None = None
    delimiter: str | None = None
    header_line: int = 1  # 1-based line (or sheet row) of the header
    sheet: str | None = None
    sheets: list[str] = field(default_factory=list)
    # Spreadsheet row number of each data row (what a person sees when they open the file).
    line_numbers: list[int] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]


def header_key(text: object) -> str:
    """A header as compared with synonyms: half-width, lower-case, without spaces, underscores, dashes, brackets
    and a trailing "(必填)"-style note."""
    value = unicodedata.normalize("NFKC", str(text)).strip().lower()
    value = re.sub(r"[(\[（【][^)\]）】]*(必填|选填|required|optional)[^)\]）】]*[)\]）】]", "", value)
    value = re.sub(r"[\s_\-:：*]+", "", value)
    return value


def decode(data: bytes) -> tuple[str, str]:
    """The file's text and the encoding it was in: BOMs first, then strict UTF-8, then charset-normalizer."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as error:
            raise _unreadable_encoding() from error
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[:512_000]).best()
    if best is None:
        raise _unreadable_encoding()
    encoding = best.encoding.lower()
    # Chinese files from Excel or WPS on Windows are GBK; GB18030 is its superset and decodes both.
    if encoding.replace("_", "") in _GB_FAMILY or encoding in ("big5",) and _looks_gb(data):
        encoding = "gb18030"
    try:
        return data.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError) as error:
        if encoding != "gb18030":
            try:
                return data.decode("gb18030"), "gb18030"
            except UnicodeDecodeError:
                pass
        raise _unreadable_encoding() from error


def _looks_gb(data: bytes) -> bool:
    try:
        data[:65536].decode("gb18030")
    except UnicodeDecodeError:
        return False
    return True


def _unreadable_encoding() -> FileFormatError:
    return FileFormatError("The file's text encoding is not recognised; save it as UTF-8 CSV or as XLSX.",
                           key="import.encoding_unknown")


def sniff_delimiter(lines: list[str]) -> str:
    """The delimiter that splits most of the first lines into the same number of fields (title lines above the
    header have fewer, so the most common count wins, not the first line's)."""
    best, best_score = ",", (0.0, 0)
    for delimiter in _DELIMITERS:
        counts = [line.count(delimiter) for line in lines if line.strip()]
        if not counts:
            continue
        common = pd.Series(counts).mode().max()
        if common <= 0:
            continue
        score = (sum(1 for c in counts if c == common) / len(counts), int(common))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def find_header(rows: list[list[str]]) -> int:
    """Index of the header among the first rows: the row naming most known columns, else the first row as wide
    as the data below it."""
    from core.importer.mapping import known_header

    scan = rows[:_HEADER_SCAN_ROWS]
    scores = [sum(1 for cell in row if cell and known_header(cell)) for row in scan]
    if scores and max(scores) > 0:
        return scores.index(max(scores))
    widths = [sum(1 for cell in row if str(cell).strip()) for row in scan]
    if not widths:
        return 0
    common = max(widths) if len(widths) < 3 else int(pd.Series(widths).mode().max())
    for index, width in enumerate(widths):
        if width >= max(2, common):
            return index
    return 0


def _clean_columns(names: list[object]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for position, name in enumerate(names, start=1):
        text = " ".join(unicodedata.normalize("NFKC", "" if name is None else str(name)).split())
        if not text or text.lower().startswith("unnamed:"):
            text = f"column_{position}"
        if text in seen:
            seen[text] += 1
            text = f"{text} ({seen[text]})"
        else:
            seen[text] = 1
        out.append(text)
    return out


def filled_cells(values: np.ndarray) -> np.ndarray:
    """Which cells hold a value (not None/NaN, not blank text); each distinct value looked at once."""
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable values
        codes, uniques = np.arange(len(values)), values
        codes[pd.isna(pd.Series(values, dtype=object)).to_numpy()] = -1
    blank = np.fromiter((type(v) is str and not v.strip() for v in uniques), dtype=bool, count=len(uniques))
    filled = codes >= 0
    filled[filled] = ~blank[codes[filled]]
    return filled


def _finish(frame: pd.DataFrame, first_line: int) -> tuple[pd.DataFrame, list[int]]:
    """Drop blank rows and unnamed empty columns. Every cell is text already: the CSV parser runs without NA
    detection and workbook cells are converted by ``_cell_text``."""
    lines = pd.RangeIndex(first_line, first_line + len(frame))
    # Blank rows: the rows blank in the first column, narrowed down column by column (most rows drop out at once).
    rows = np.arange(len(frame))
    for column in frame.columns:
        if not len(rows):
            break
        rows = rows[~filled_cells(frame[column].to_numpy(dtype=object)[rows])]
    if len(frame.columns) and len(rows):
        keep = np.ones(len(frame), dtype=bool)
        keep[rows] = False
        frame = frame[keep]
        lines = lines[keep]
    # Columns with neither a header nor any value are the trailing commas of some exports.
    empty = [c for c in frame.columns
             if c.startswith("column_") and not filled_cells(frame[c].to_numpy(dtype=object)).any()]
    frame = frame.drop(columns=empty).reset_index(drop=True)
    return frame, [int(n) for n in lines]


def _read_text(data: bytes) -> RawTable:
    text, encoding = decode(data)
    if "\x00" in text[:4096]:
        raise FileFormatError("This is not a text file LeadLoop can read.", key="import.not_text")
    head = text[:200_000].splitlines()[:_SNIFF_LINES]
    delimiter = sniff_delimiter(head)
    try:
        head_rows = list(csv.reader(head, delimiter=delimiter))
    except csv.Error as error:
        raise FileFormatError("This is not a text file LeadLoop can read.", key="import.not_text") from error
    header_index = find_header(head_rows)
    # Title lines may hold quotes or odd widths: skip them as physical lines before the CSV parser starts.
    body = "\n".join(text.splitlines()[header_index:]) if header_index else text
    try:
        # Cells stay plain Python text (object columns): the importer works on them value by value, and pandas'
        # Arrow-backed text would be converted back and forth for every column it reads.
        frame = pd.read_csv(io.StringIO(body), sep=delimiter, dtype=object, keep_default_na=False, na_filter=False,
                            skip_blank_lines=False, engine="c")
    except (pd.errors.ParserError, ValueError, csv.Error) as error:
        match = re.search(r"line (\d+)", str(error))
        line = int(match.group(1)) + header_index if match else header_index + 1
        raise FileFormatError(f"The file cannot be read near line {line}: a row has more columns than the header.",
                              key="import.bad_row", line=line) from error
    except pd.errors.EmptyDataError as error:
        raise FileFormatError("The file is empty.", key="import.empty") from error
    frame.columns = _clean_columns(list(frame.columns))
    frame, lines = _finish(frame, header_index + 2)
    return RawTable(frame=frame, encoding=encoding, delimiter=delimiter, header_line=header_index + 1,
                    line_numbers=lines)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e19 else repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def _check_unpacked_size(data: bytes) -> None:
    """Refuse a workbook whose declared unpacked size is out of all proportion (the zip directory says it)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise FileFormatError("The Excel file cannot be opened; it may be damaged or protected.",
                              key="import.xlsx_unreadable") from error
    ratio = unpacked / max(len(data), 1)
    if unpacked > _XLSX_UNPACKED_CEILING or (unpacked > _XLSX_SUSPICIOUS_SIZE and ratio > _XLSX_SUSPICIOUS_RATIO):
        mb = unpacked // (1024 * 1024)
        raise FileFormatError(f"The Excel file would unpack to {mb} MB from {len(data) // 1024} KB; it is refused.",
                              key="import.xlsx_bomb", mb=mb, kb=len(data) // 1024)


def _read_xlsx(data: bytes, sheet: str | None) -> RawTable:
    from openpyxl import load_workbook

    _check_unpacked_size(data)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many types (zipfile, KeyError, InvalidFileException)
        raise FileFormatError("The Excel file cannot be opened; it may be damaged or protected.",
                              key="import.xlsx_unreadable") from error
    try:
        names = list(workbook.sheetnames)
        if sheet is not None and sheet not in names:
            raise FileFormatError(f"The workbook has no sheet named {sheet}.", key="import.no_sheet", sheet=sheet,
                                  sheets=", ".join(names))
        # Without a choice: the first sheet that holds a table (a cover or notes sheet often comes first).
        chosen, rows = names[0], []
        for candidate in [sheet] if sheet is not None else names:
            rows = [[_cell_text(v) for v in row] for row in workbook[candidate].iter_rows(values_only=True)]
            chosen = candidate
            if sum(1 for r in rows if sum(1 for c in r if c.strip()) >= 2) >= 2:
                break
    finally:
        workbook.close()
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    if not rows:
        raise FileFormatError("The file is empty.", key="import.empty")
    header_index = find_header(rows)
    width = max(len(r) for r in rows[header_index:])
    header = rows[header_index] + [""] * (width - len(rows[header_index]))
    body = [r + [""] * (width - len(r)) for r in rows[header_index + 1:]]
    frame = pd.DataFrame(body, columns=_clean_columns(header), dtype=object)
    frame, lines = _finish(frame, header_index + 2)
    return RawTable(frame=frame, encoding=None, delimiter=None, header_line=header_index + 1, sheet=chosen,
                    sheets=names, line_numbers=lines)


def read_file(data: bytes, filename: str, *, sheet: str | None = None, max_bytes: int | None = None) -> RawTable:
    """The file as a table of text cells, or ``FileFormatError`` with one sentence saying why it cannot be read.

    ``max_bytes`` is checked before anything is parsed, so an oversized file is refused, not half-read."""
    if max_bytes is not None and len(data) > max_bytes:
        raise FileFormatError(f"The file is larger than the {max_bytes // (1024 * 1024)} MB limit.",
                              key="import.too_large", limit_mb=max_bytes // (1024 * 1024))
    if not data or not data.strip():
        raise FileFormatError("The file is empty.", key="import.empty")
    name = filename.lower()
    if data.startswith(_OLE_MAGIC) or name.endswith(".xls"):
        raise FileFormatError("Old .xls workbooks cannot be read: save the file as .xlsx or .csv.",
                              key="import.old_excel")
    if data.startswith(_XLSX_MAGIC) or name.endswith((".xlsx", ".xlsm")):
        table = _read_xlsx(data, sheet)
    else:
        table = _read_text(data)
    if table.frame.empty or len(table.frame.columns) == 0:
        raise FileFormatError("The file has a header but no rows.", key="import.no_rows")
    return table
