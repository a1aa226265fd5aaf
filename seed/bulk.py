"""Columnar bulk inserts for the seed.

The seed generates whole columns with numpy and hands them over here. ``connection.execute(table.insert(), rows)``
is the portable way, but with a million touchpoints SQLAlchemy's per-value bind processing (UTC datetimes, JSON)
alone takes ~25 s on this machine; so the two databases LeadLoop supports get a direct path, in the same
transaction as everything else:

- SQLite: values are converted column by column to what SQLAlchemy itself stores (``YYYY-MM-DD HH:MM:SS.ffffff``
  UTC text for datetimes, ISO dates, JSON text, 0/1) and passed to the driver's ``executemany``;
- PostgreSQL (psycopg 3): ``COPY … FROM STDIN``.

Any other dialect falls back to ``connection.execute(table.insert(), rows)``. A unit test checks that rows written
here read back through the ORM exactly as if SQLAlchemy had written them.

Datetime columns take epoch seconds (int or float; ``None``/NaN for no value) or aware datetimes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import JSON, Boolean, Date, DateTime, Table
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

Columns = dict[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHUNK = 100_000


def _impl(column_type: Any) -> Any:
    return column_type.impl if isinstance(column_type, TypeDecorator) else column_type


def _kind(table: Table, name: str) -> str:
    column_type = _impl(table.c[name].type)
    if isinstance(column_type, DateTime):
        return "datetime"
    if isinstance(column_type, Date):
        return "date"
    if isinstance(column_type, JSON):
        return "json"
    if isinstance(column_type, Boolean):
        return "bool"
    return "plain"


def _length(columns: Columns) -> int:
    lengths = {len(v) for v in columns.values() if not np.isscalar(v) and v is not None}
    if len(lengths) != 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    return lengths.pop()


def _complete(table: Table, columns: Columns) -> Columns:
    """Every column of ``table``: missing ones get their scalar default or NULL; a column whose default is
    computed at insert time (``created_at``) must be given, so that the seed stays deterministic."""
    unknown = set(columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name}: unknown columns {sorted(unknown)}")
    n = _length(columns)
    full: Columns = {}
    for column in table.columns:
        if column.name in columns:
            value = columns[column.name]
            full[column.name] = [value] * n if np.isscalar(value) or value is None else value
            continue
        default = column.default
        if default is not None and getattr(default, "is_scalar", False):
            value = default.arg.value if hasattr(default.arg, "value") else default.arg
            full[column.name] = [value] * n
        elif column.nullable and default is None:
            full[column.name] = [None] * n
        else:
            raise ValueError(f"{table.name}.{column.name} needs a value (NOT NULL or computed default)")
    return full


def _epoch_seconds(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """(seconds as float64, present mask) from epoch numbers, datetimes or None."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        seconds = values.astype(np.float64)
    else:
        seconds = np.array(
            [
                np.nan if v is None
                else (v - _EPOCH).total_seconds() if isinstance(v, datetime)
                else float(v)
                for v in values
            ],
            dtype=np.float64,
        )
    return seconds, ~np.isnan(seconds)


def _sqlite_datetimes(values: Any) -> list[str | None]:
    """SQLAlchemy's SQLite storage format for UTC datetimes: ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    seconds, present = _epoch_seconds(values)
    whole = np.all(seconds[present] == np.floor(seconds[present]))
    if whole:  # the seed's times are whole seconds: format to the second, append the microseconds
        stamps = seconds[present].astype("int64").astype("datetime64[s]")
        formatted = [f"{t[:10]} {t[11:]}.000000" for t in np.datetime_as_string(stamps, unit="s").tolist()]
    else:
        stamps = np.round(seconds[present] * 1_000_000).astype("int64").astype("datetime64[us]")
        formatted = [f"{t[:10]} {t[11:]}" for t in np.datetime_as_string(stamps, unit="us").tolist()]
    if present.all():
        return formatted
    out: list[str | None] = [None] * len(seconds)
    for index, text in zip(np.flatnonzero(present).tolist(), formatted, strict=True):
        out[index] = text
    return out


def _python_datetimes(values: Any) -> list[datetime | None]:
    seconds, present = _epoch_seconds(values)
    return [
        _EPOCH + timedelta(microseconds=round(s * 1_000_000)) if ok else None
        for s, ok in zip(seconds.tolist(), present.tolist(), strict=True)
    ]


def _json_texts(values: Sequence[Any]) -> list[str | None]:
    """JSON text per value; the seed reuses dict objects a lot, so each distinct object is serialized once."""
    cache: dict[int, str] = {}
    out: list[str | None] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        if not value:
            out.append("[]" if isinstance(value, list) else "{}")
            continue
        key = id(value)
        text = cache.get(key)
        if text is None:
            text = cache[key] = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        out.append(text)
    return out


def _plain(values: Any) -> list[Any]:
    if isinstance(values, np.ndarray):
        return values.tolist()
    return list(values)


def _convert(table: Table, columns: Columns, dialect: str) -> list[list[Any]]:
    converted: list[list[Any]] = []
    done: dict[int, list[Any]] = {}  # the same array given for two columns (created_at = occurred_at) once
    for name, values in columns.items():
        kind = _kind(table, name)
        if kind == "datetime":
            if id(values) not in done:
                done[id(values)] = _sqlite_datetimes(values) if dialect == "sqlite" else _python_datetimes(values)
            converted.append(done[id(values)])
        elif kind == "date":
            dates = _plain(values)
            converted.append([d.isoformat() if isinstance(d, date) else d for d in dates] if dialect == "sqlite"
                             else dates)
        elif kind == "json":
            converted.append(_json_texts(_plain(values)) if dialect != "generic" else _plain(values))
        elif kind == "bool":
            flags = _plain(values)
            converted.append([None if v is None else int(bool(v)) for v in flags] if dialect == "sqlite"
                             else [None if v is None else bool(v) for v in flags])
        else:
            converted.append(_plain(values))
    return converted


def insert(connection: Connection, table: Table, columns: Columns) -> int:
    """Insert the rows given as columns (name → sequence, or a scalar for all rows); returns the row count."""
    full = _complete(table, columns)
    n = _length(full)
    if n == 0:
        return 0
    dialect = connection.dialect.name
    names = list(full)
    converted = _convert(table, full, dialect)
    quoted = ", ".join(f'"{name}"' for name in names)
    if dialect == "sqlite":
        sql = f'INSERT INTO "{table.name}" ({quoted}) VALUES ({", ".join("?" * len(names))})'
        rows = list(zip(*converted, strict=True))
        for start in range(0, n, CHUNK):
            connection.exec_driver_sql(sql, rows[start : start + CHUNK])
    elif dialect == "postgresql" and connection.dialect.driver == "psycopg":
        driver_connection = connection.connection.driver_connection
        with driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
                for row in zip(*converted, strict=True):
                    copy.write_row(row)
    else:
        dicts = [dict(zip(names, row, strict=True)) for row in zip(*_convert(table, full, "generic"), strict=True)]
        for start in range(0, n, CHUNK):
            connection.execute(table.insert(), dicts[start : start + CHUNK])
    return n
