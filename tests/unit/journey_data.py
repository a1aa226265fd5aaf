"""Small builders for journey and account tests: leads with their derived keys, and events of every kind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import insert, select
from sqlmodel import Session

from core.normalize import lead_keys
from db.models import Channel, Lead

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def add_leads(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert leads as the importer would (keys and search text from core.normalize); returns their ids."""
    frame = pd.DataFrame(rows)
    keys = lead_keys(frame)
    records = []
    for (_, row), (_, key) in zip(frame.iterrows(), keys.iterrows(), strict=True):
        # Columns a row leaves empty keep their defaults.
        record = {k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and pd.isna(v))}
        phone = record.get("phone")
        if phone and not str(phone).startswith("+"):
            record["phone"] = "+86" + str(phone).replace(" ", "").replace("-", "")
        record.setdefault("created_at", NOW)
        record.setdefault("last_activity_at", record["created_at"])
        record.update({name: (None if isinstance(value, float) else value) for name, value in key.items()})
        record["attributes"] = {}
        records.append(record)
    ids = [session.execute(insert(Lead).values(**record).returning(Lead.id)).scalar_one() for record in records]
    session.commit()
    return ids


def channel(session: Session, name: str, kind: str = "other") -> int:
    existing = session.scalar(select(Channel.id).where(Channel.name == name))
    if existing:
        return existing
    row = Channel(name=name, kind=kind)
    session.add(row)
    session.commit()
    assert row.id is not None
    return row.id
