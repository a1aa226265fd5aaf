"""Duplicate detection and merging: candidate pairs, the review queue, merge and unmerge."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from db.models import CandidateStatus, DuplicateCandidate, Lead

PAIR_FIELDS = ("name", "company", "phone", "email", "title", "city", "stage", "owner_id")


def count_candidates(*, session: Session, status: str = CandidateStatus.PENDING) -> int:
    return session.scalar(select(func.count()).where(DuplicateCandidate.status == status)) or 0


def list_candidates(
    *, session: Session, status: str = CandidateStatus.PENDING, limit: int = 50, offset: int = 0
) -> pd.DataFrame:
    """Candidate pairs with both leads' main fields side by side (``left_name``, ``right_name`` …), best first."""
    left, right = aliased(Lead), aliased(Lead)
    columns = [DuplicateCandidate.id, DuplicateCandidate.score, DuplicateCandidate.reasons,
               DuplicateCandidate.status, DuplicateCandidate.left_id, DuplicateCandidate.right_id]
    for side, alias in (("left", left), ("right", right)):
        columns += [getattr(alias, name).label(f"{side}_{name}") for name in PAIR_FIELDS]
    rows = session.execute(
        select(*columns)
        .join(left, left.id == DuplicateCandidate.left_id)
        .join(right, right.id == DuplicateCandidate.right_id)
        .where(DuplicateCandidate.status == status)
        .order_by(DuplicateCandidate.score.desc(), DuplicateCandidate.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return pd.DataFrame([r._asdict() for r in rows], columns=[c.key for c in columns])
