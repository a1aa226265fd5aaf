"""Statements over many rows at once, for SQLite and PostgreSQL alike.

- :func:`insert_many`: INSERT through the driver's executemany, each column's bind processing (JSON, datetimes)
  applied once per distinct value instead of per row by the ORM.
- :func:`keys_table`: a temporary table of keys (lead ids, contact values) to join, instead of IN lists of
  thousands of bound parameters that are compiled and sent chunk by chunk.
- :func:`update_from`: new values for many rows in one ``UPDATE … FROM`` a temporary table (SQLite ≥ 3.33 and
  PostgreSQL both have it), instead of one UPDATE per row.

Temporary tables live in the caller's transaction and connection; each gets a name of its own, so two helpers
can be open at once, and is dropped when the block ends.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from json.encoder import encode_basestring_ascii as _encode_text
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Column, Integer, MetaData, String, Table, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine
from sqlmodel import Session

_BATCH = 20_000
_names = itertools.count(1)


def _connection(session: Session | Connection) -> Connection:
    return session.connection() if isinstance(session, Session) else session


def insert_many(session: Session | Connection, table: Table, columns: dict[str, Sequence[Any]], *,
                serialized: Iterable[str] = (), skip_existing: str | None = None) -> int:
    """INSERT one row per position of the (equally long) column lists; returns the number of rows inserted.

    Values go through each column type's bind processor (JSON text, SQLite datetimes) once per distinct value —
    batches repeat the same batch id, time and channel on every row. Columns named in ``serialized`` hold the
    driver's form already (JSON text from :func:`json_objects`). ``skip_existing``: a column with a unique
    constraint; a row whose value is stored already is left out (instead of failing the statement), and the
    count returned leaves it out too."""
    connection = _connection(session)
    dialect = connection.dialect
    names = list(columns)
    if not names or not len(columns[names[0]]):
        return 0
    ready = set(serialized)
    prepared: list[list[Any]] = []
    for name in names:
        values = columns[name]
        processor = None if name in ready else table.c[name].type._cached_bind_processor(dialect)
        prepared.append(list(values) if processor is None else per_value(values, processor))
    quote = dialect.identifier_preparer.quote
    if dialect.name == "postgresql":
        # PostgreSQL loads rows fastest through COPY.
        if skip_existing is not None:
            # COPY cannot skip a row: the rows go to a temporary copy of the columns, then across in one INSERT.
            spec = [Column(n, table.c[n].type) for n in names]
            with temp_table(connection, spec, name=f"{table.name}_new") as staged:
                _copy(connection, staged, names, prepared)
                listed = ", ".join(quote(n) for n in names)
                result = connection.exec_driver_sql(
                    f"INSERT INTO {quote(table.name)} ({listed}) SELECT {listed} FROM {quote(staged.name)} "
                    f"ON CONFLICT ({quote(skip_existing)}) DO NOTHING")
                return int(result.rowcount)
        _copy(connection, table, names, prepared)
        return len(prepared[0])
    # SQLite binds every parameter of every row; a column with one value on every row (the batch id, the time, a
    # default flag — half of a new lead's columns) is written once, as a literal of the statement.
    literals = [_sqlite_literal(values) for values in prepared]
    bound = [values for values, literal in zip(prepared, literals, strict=True) if literal is None]
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
           f"VALUES ({', '.join('?' if literal is None else literal for literal in literals)})")
    if skip_existing is not None:
        sql += f" ON CONFLICT ({quote(skip_existing)}) DO NOTHING"
    rows = list(zip(*bound, strict=True)) if bound else [()] * len(prepared[0])
    inserted = 0
    for start in range(0, len(rows), _BATCH):
        # sqlite3 sums the rows each execution changed: a skipped row counts 0.
        inserted += connection.exec_driver_sql(sql, rows[start:start + _BATCH]).rowcount
    return inserted if skip_existing is not None else len(rows)


def _copy(connection: Connection, table: Table, names: list[str], prepared: list[list[Any]]) -> None:
    """PostgreSQL's COPY of the prepared columns into ``table``, on the connection — and so in the transaction —
    the session already uses (psycopg adapts each value as it would a parameter)."""
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    driver = connection.connection.dbapi_connection
    statement = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for row in zip(*prepared, strict=True):
                copy.write_row(row)
    except dialect.loaded_dbapi.Error as error:
        # The same error SQLAlchemy raises for a failed statement, so callers handle both paths alike.
        raise DBAPIError.instance(statement, None, error, dialect.loaded_dbapi.Error) from error


def _sqlite_literal(values: list[Any]) -> str | None:
    """The SQL literal of a column whose every value is the same None, bool, int, finite float or text (without
    NUL), exactly as SQLite would store that value bound; None when the values differ or are of another kind."""
    first = values[0]
    kind = type(first)
    if kind not in (type(None), bool, int, float, str) or values.count(first) != len(values):
        return None
    if len(set(map(type, values))) != 1:  # 1, 1.0 and True are equal but stored differently
        return None
    if first is None:
        return "NULL"
    if kind is str:
        return None if "\x00" in first else "'" + first.replace("'", "''") + "'"
    if kind is float:
        return repr(first) if math.isfinite(first) else None
    return str(int(first)) if -(2**63) <= first < 2**63 else None


def per_value(values: Sequence[Any], processor: Any) -> list[Any]:
    """``processor`` applied once to each distinct value, spread back over the positions (missing values — None,
    NaN, NaT — become None); value by value for dicts and lists, and where values of different kinds are equal to
    a hash table (1, 1.0 and True)."""
    array = np.fromiter(values, dtype=object, count=len(values))
    if len(set(map(type, array)) - {type(None)}) > 1:
        return [None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT else processor(v)
                for v in array]
    try:
        codes, uniques = pd.factorize(array, use_na_sentinel=True)
    except TypeError:  # unhashable: JSON documents
        return _processed_documents(array, processor)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [processor(v) for v in uniques]
    table[-1] = None
    out = table[codes]
    missing = codes < 0
    if missing.any():
        # NaN/NaT become NULL; None is NULL already.
        out[missing] = None
    return out.tolist()


def _processed_documents(values: np.ndarray, processor: Any) -> list[Any]:
    """JSON documents processed one by one, except that flat text-to-text dicts (custom attributes: a few
    distinct ones repeated over a batch) are processed once per distinct content."""
    cache: dict[tuple[tuple[str, str], ...], Any] = {}
    out = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        if type(value) is dict and all(type(k) is str and type(v) is str for k, v in value.items()):
            key = tuple(value.items())
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = processor(value)
            out.append(hit)
        else:
            out.append(processor(value))
    return out


def json_objects(columns: dict[str, Sequence[Any]]) -> list[str]:
    """Per row, the JSON text of ``{name: value, …}`` over ``columns`` — exactly what ``json.dumps`` gives for
    that dict — each distinct value of a column encoded once (file rows repeat cities, titles, campaigns, empty
    cells) and the rows assembled from one template."""
    names = [str(n) for n in columns]
    arrays = [np.fromiter(v, dtype=object, count=len(v)) for v in columns.values()]
    if not arrays:
        return []
    if len(set(names)) != len(names):  # a dict keeps one value per key: leave that to json.dumps itself
        return [json.dumps(dict(zip(names, row, strict=True))) for row in zip(*arrays, strict=True)]
    template = "{" + ", ".join(json.dumps(name).replace("%", "%%") + ": %s" for name in names) + "}"
    return [template % row for row in zip(*(_json_values(values) for values in arrays), strict=True)]


def _json_values(values: np.ndarray) -> np.ndarray:
    """``json.dumps`` of each value; text columns (the common case) encoded once per distinct value."""
    kinds = {type(v) for v in values}
    if kinds == {int}:
        out = np.empty(len(values), dtype=object)
        out[:] = [int.__repr__(v) for v in values]  # what json.dumps writes for an int
        return out
    if not kinds <= {str, type(None)}:
        # 1, 1.0 and True are one value to a hash table but three texts to JSON: value by value.
        out = np.empty(len(values), dtype=object)
        out[:] = [json.dumps(v) for v in values]
        return out
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    encoded = np.empty(len(uniques) + 1, dtype=object)
    encoded[:-1] = [_encode_text(v) for v in uniques]  # what json.dumps does for a str
    encoded[-1] = "null"
    return encoded[codes]


@contextmanager
def temp_table(session: Session | Connection, columns: Sequence[Column[Any]], *, name: str = "rows"
               ) -> Iterator[Table]:
    """A temporary table with ``columns`` for the duration of the block (dropped afterwards)."""
    connection = _connection(session)
    table = Table(f"tmp_{name}_{next(_names)}", MetaData(), *columns, prefixes=["TEMPORARY"])
    table.create(connection)
    try:
        yield table
    except BaseException:
        # The caller rolls back, which takes the table with it on PostgreSQL (whose failed transaction refuses
        # the DROP) and on SQLite when it was created inside the transaction; the original error is the news.
        with suppress(Exception):
            table.drop(connection)
        raise
    table.drop(connection)


@contextmanager
def keys_table(session: Session | Connection, keys: Iterable[Any], *, type_: TypeEngine[Any] | None = None,
               name: str = "keys") -> Iterator[Table]:
    """A temporary table with one column ``key`` (primary key) holding the distinct ``keys``; join or
    ``IN (SELECT key …)`` against it."""
    distinct = sorted({k if isinstance(k, str) else int(k) for k in keys if k is not None})
    if type_ is None:
        type_ = String() if distinct and isinstance(distinct[0], str) else Integer()
    column = Column("key", type_, primary_key=True, autoincrement=False)
    with temp_table(session, [column], name=name) as table:
        insert_many(session, table, {"key": distinct})
        yield table


def update_from(session: Session | Connection, target: Table, columns: dict[str, Sequence[Any]], *,
                key: str = "id", also: dict[str, Any] | None = None) -> int:
    """Set ``columns`` (other than ``key``) on the rows of ``target`` whose ``key`` is in ``columns[key]``, with
    the value at the same position: one UPDATE … FROM a temporary table. ``also``: further values or SQL
    expressions set on every one of those rows (a time, ``version + 1``). Returns the rows matched."""
    if not len(columns[key]):
        return 0
    names = [n for n in columns if n != key]
    spec = [Column(key, target.c[key].type, primary_key=True, autoincrement=False),
            *[Column(n, target.c[n].type) for n in names]]
    with temp_table(session, spec, name=f"{target.name}_set") as values:
        insert_many(session, values, columns)
        statement = (update(target).where(target.c[key] == values.c[key])
                     .values({**{n: values.c[n] for n in names}, **(also or {})}))
        result = _connection(session).execute(statement)
    return int(result.rowcount or 0)


@contextmanager
def among(session: Session | Connection, column: Any, keys: Iterable[Any], *, small: int = 1000,
          name: str = "keys") -> Iterator[Any]:
    """A condition "``column`` is one of ``keys``" for the block: a plain IN list for a few keys, a temporary
    table for many (one statement either way)."""
    distinct = sorted({k if isinstance(k, str) else int(k) for k in keys if k is not None})
    if len(distinct) <= small:
        yield column.in_(distinct)
        return
    with keys_table(session, distinct, name=name) as table:
        yield column.in_(select(table.c.key))
