"""The stage funnel: counts and conversion over leads, read-only."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core.auth import Actor, require
from db.models import Channel, Lead, LeadStatus, Stage

STAGE_ORDER = [s.value for s in Stage]


def stage_counts_by_channel(*, session: Session, actor: Actor) -> pd.DataFrame:
    """Valid leads by source channel (rows) and current stage (columns, in funnel order), with a total column."""
    require(actor, "reports")
    rows = session.execute(
        select(func.coalesce(Channel.name, "—").label("channel"), Lead.stage, func.count().label("n"))
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .where(Lead.status == LeadStatus.VALID)
        .group_by(Channel.name, Lead.stage)
    ).all()
    frame = pd.DataFrame(rows, columns=["channel", "stage", "n"])
    table = frame.pivot_table(index="channel", columns="stage", values="n", aggfunc="sum", fill_value=0)
    table = table.reindex(columns=STAGE_ORDER, fill_value=0).astype(int)
    table["total"] = table.sum(axis=1)
    return table.sort_values("total", ascending=False)
