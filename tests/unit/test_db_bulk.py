"""db.bulk: rows written in bulk read back exactly as the ORM would have written them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlmodel import Session

from db.bulk import _sqlite_literal, insert_many
from db.models import Lead, Touchpoint

LEAD = Lead.__table__  # type: ignore[attr-defined]
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def _columns(n: int) -> dict[str, list]:
    """Three leads: some columns differ per row, the rest hold one value of each kind on every row."""
    return {
        "id": list(range(1, n + 1)), "phone": [f"+86138000000{i:02d}" for i in range(n)],
        "name": ["O'Brien 王小明"] * n, "company": [None] * n, "company_size": [None] * n, "fit_score": [0.5] * n,
        "engagement_score": [0.0] * n, "is_customer": [True] * n, "unsubscribed": [False] * n, "version": [1] * n,
        "stage": ["new"] * n, "status": ["valid"] * n, "is_demo": [False] * n, "created_at": [NOW] * n,
        "updated_at": [NOW] * n, "attributes": [{"备注": "VIP"}] * n, "search_text": ["o'brien"] * n,
    }


def test_constant_columns_read_back_as_written(session: Session) -> None:
    insert_many(session, LEAD, _columns(3))
    leads = session.scalars(select(Lead).order_by(Lead.id)).all()
    assert [lead.phone for lead in leads] == ["+8613800000000", "+8613800000001", "+8613800000002"]
    for lead in leads:
        assert (lead.name, lead.company, lead.company_size) == ("O'Brien 王小明", None, None)
        assert (lead.fit_score, lead.engagement_score, lead.is_customer, lead.unsubscribed) == (0.5, 0.0, True, False)
        assert (lead.version, lead.stage, lead.status, lead.attributes) == (1, "new", "valid", {"备注": "VIP"})
        assert lead.created_at.replace(tzinfo=UTC) == NOW


def test_sqlite_stores_literals_as_it_stores_bound_values(session: Session) -> None:
    if session.get_bind().dialect.name != "sqlite":
        return
    insert_many(session, LEAD, _columns(2))  # every column but id and phone is one value: literals
    other = {"name": "x", "company": "c", "company_size": 5, "fit_score": 0.7, "engagement_score": 1.0,
             "is_customer": False, "unsubscribed": True, "version": 2, "stage": "mql", "status": "invalid",
             "is_demo": True, "created_at": datetime(2026, 1, 1, tzinfo=UTC), "updated_at": datetime(2026, 1, 2, tzinfo=UTC),
             "attributes": {}, "search_text": "x"}
    bound = {name: [values[0], other.get(name)] for name, values in _columns(2).items()}
    bound["id"], bound["phone"] = [3, 4], ["+8613800000003", "+8613800000004"]
    insert_many(session, LEAD, bound)  # no column holds one value: every value is bound
    names = [n for n in _columns(1) if n not in ("id", "phone")]
    typed = ", ".join(f"typeof({quoted}), {quoted}" for quoted in (f'"{n}"' for n in names))
    first, third = session.connection().execute(text(f"SELECT {typed} FROM lead WHERE id IN (1, 3) ORDER BY id"))
    assert tuple(first) == tuple(third)


def test_only_safe_constants_become_literals() -> None:
    assert _sqlite_literal(["a'b", "a'b"]) == "'a''b'"
    assert _sqlite_literal([None, None]) == "NULL"
    assert _sqlite_literal([True, True]) == "1"
    assert _sqlite_literal([0.1, 0.1]) == "0.1"
    assert _sqlite_literal([7]) == "7"
    assert _sqlite_literal([1, 1.0]) is None  # equal, yet stored differently
    assert _sqlite_literal([True, 1]) is None
    assert _sqlite_literal(["a", "b"]) is None
    assert _sqlite_literal([float("nan")]) is None
    assert _sqlite_literal([2**64]) is None
    assert _sqlite_literal(["a\x00b"]) is None
    assert _sqlite_literal([b"bytes"]) is None


def test_rows_stored_already_are_skipped_and_not_counted(session: Session) -> None:
    insert_many(session, LEAD, _columns(2))
    touch = Touchpoint.__table__  # type: ignore[attr-defined]

    def touches(keys: list[str]) -> dict[str, list]:
        return {"lead_id": [1] * len(keys), "kind": ["form"] * len(keys), "occurred_at": [NOW] * len(keys),
                "properties": [{}] * len(keys), "natural_key": keys, "created_at": [NOW] * len(keys)}

    assert insert_many(session, touch, touches(["a", "b"]), skip_existing="natural_key") == 2
    assert insert_many(session, touch, touches(["b", "c", "a", "d"]), skip_existing="natural_key") == 2
    assert insert_many(session, touch, touches(["a"]), skip_existing="natural_key") == 0
    stored = session.scalars(select(Touchpoint.natural_key).order_by(Touchpoint.natural_key)).all()
    assert stored == ["a", "b", "c", "d"]


def test_a_bulk_commit_leaves_the_checkpoint_to_a_background_thread(sqlite_engine) -> None:
    import time
    from pathlib import Path

    from db.engine import use_bulk_cache

    path = Path(sqlite_engine.url.database)
    with Session(sqlite_engine) as session:
        use_bulk_cache(session)
        session.connection().exec_driver_sql(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000) "
            "INSERT INTO importbatch (content_hash, filename, mapping, counts, created_at, status, kind, row_count, "
            "is_demo) SELECT hex(randomblob(32)), 'f.csv', '{}', '{}', '2026-01-01', 'committed', 'leads', 0, 0 FROM n")
        before = path.stat().st_size
        session.commit()
        assert path.stat().st_size == before  # the commit wrote the log only: no copy back while it waited
    deadline = time.monotonic() + 30
    while path.stat().st_size == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size > before + 5_000_000  # … the background checkpoint copied it
    with sqlite_engine.connect() as connection:  # and the pooled connection is back to the usual settings
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == -2000


def test_values_of_different_kinds_are_processed_each_as_itself() -> None:
    from db.bulk import per_value

    assert per_value([1, 1.0, True, None, float("nan")], repr) == ["1", "1.0", "True", None, None]
    assert per_value(["a", "a", None, "b"], str.upper) == ["A", "A", None, "B"]
