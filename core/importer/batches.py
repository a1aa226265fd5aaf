"""Channel import: read a file, map its columns, normalize, validate and upsert one batch; undo a batch."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from db.models import Campaign, Channel, ImportBatch

BATCH_COLUMNS = [
    "id", "created_at", "filename", "channel", "campaign", "kind", "status", "row_count",
    "inserted", "updated", "duplicates_in_file", "invalid", "touchpoints", "is_demo",
]


def list_batches(*, session: Session, limit: int = 50, offset: int = 0) -> pd.DataFrame:
    """Past batches, newest first, with their outcome counts flattened into columns."""
    rows = session.execute(
        select(
            ImportBatch.id,
            ImportBatch.created_at,
            ImportBatch.filename,
            Channel.name.label("channel"),
            Campaign.name.label("campaign"),
            ImportBatch.kind,
            ImportBatch.status,
            ImportBatch.row_count,
            ImportBatch.counts,
            ImportBatch.is_demo,
        )
        .join(Channel, Channel.id == ImportBatch.channel_id, isouter=True)
        .join(Campaign, Campaign.id == ImportBatch.campaign_id, isouter=True)
        .order_by(ImportBatch.created_at.desc(), ImportBatch.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    frame = pd.DataFrame([r._asdict() for r in rows])
    if frame.empty:
        return pd.DataFrame(columns=BATCH_COLUMNS)
    counts = pd.DataFrame(frame.pop("counts").tolist(), index=frame.index)
    for name in ("inserted", "updated", "duplicates_in_file", "invalid", "touchpoints"):
        frame[name] = pd.to_numeric(counts.get(name), errors="coerce").fillna(0).astype(int) if name in counts else 0
    return frame[BATCH_COLUMNS]
