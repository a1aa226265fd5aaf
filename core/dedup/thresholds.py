"""The dedup thresholds as a team setting: read, check, preview and save (Admin → Dedup).

Pairs scoring at or above ``auto_merge`` merge by themselves (after an import and in the nightly scan); pairs
from ``review`` up to ``auto_merge`` wait in the review queue; below ``review`` nothing happens. Both live in
the ``dedup`` setting; the import check, the nightly scan and the Dedup page read them through ``thresholds``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlmodel import Session

from core import audit
from core.auth import Actor, require
from core.errors import ValidationError
from core.settings import get_setting, set_setting
from db.models import CandidateStatus, DuplicateCandidate


def check_thresholds(auto: Any, review: Any, *, stored: bool = False) -> tuple[float, float]:
    """``(auto, review)`` as floats when ``0 <= review < auto <= 1``; a ``ValidationError`` otherwise.

    ``stored``: a value already in the setting is also accepted with ``review == auto`` (no review band), which
    the setting allowed before the Admin tab existed — an import must not start failing because of it."""
    try:
        auto_value, review_value = float(auto), float(review)
    except (TypeError, ValueError) as error:
        raise ValidationError("The thresholds must be numbers between 0 and 1.",
                              key="dedup.thresholds_invalid") from error
    band = review_value <= auto_value if stored else review_value < auto_value
    if not (0 <= review_value and band and auto_value <= 1):
        raise ValidationError("The review threshold must be at least 0 and below the automatic-merge threshold, "
                              "which is at most 1.", key="dedup.thresholds_invalid")
    return auto_value, review_value


def thresholds(session: Session) -> tuple[float, float]:
    """(auto_merge, review) from the team setting ``dedup``."""
    setting = get_setting(session, "dedup")
    return check_thresholds(setting["auto_merge"], setting["review"], stored=True)


def preview_thresholds(*, session: Session, actor: Actor, auto: float, review: float) -> dict[str, Any]:
    """What the given thresholds would mean for the pairs waiting now, against the current ones (one statement):
    how many pending pairs would merge automatically (the next scan merges them), how many would stay for
    review, and how many score below the review threshold (pairs like them are no longer proposed)."""
    require(actor, "manage_settings")
    auto, review = check_thresholds(auto, review)
    current_auto, current_review = thresholds(session)
    score = DuplicateCandidate.score

    def band(low: float | None, high: float | None) -> Any:
        """How many pending pairs score in [low, high) (an open end where None)."""
        conditions = [c for c in (score >= low if low is not None else None,
                                  score < high if high is not None else None) if c is not None]
        return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)

    row = session.execute(select(
        func.count(), band(auto, None), band(review, auto), band(None, review),
        band(current_auto, None), band(current_review, current_auto), band(None, current_review),
    ).where(DuplicateCandidate.status == CandidateStatus.PENDING)).one()
    pending, automatic, queued, below, now_automatic, now_queued, now_below = (int(v or 0) for v in row)
    return {
        "auto": auto, "review": review, "current_auto": current_auto, "current_review": current_review,
        "pending": pending, "automatic": automatic, "review_band": queued, "below": below,
        "current_automatic": now_automatic, "current_review_band": now_queued, "current_below": now_below,
    }


def save_thresholds(*, session: Session, actor: Actor, auto: float, review: float, now: datetime) -> None:
    """Store the thresholds (admins only), with an audit entry of the old and the new values."""
    require(actor, "manage_settings")
    auto, review = check_thresholds(auto, review)
    before = get_setting(session, "dedup")
    set_setting(session, "dedup", {"auto_merge": auto, "review": review}, actor_id=actor.id or None)
    audit.record(session, actor_id=actor.id or None, action="settings.dedup", entity="setting", entity_id="dedup",
                 detail={"before": {"auto_merge": before["auto_merge"], "review": before["review"]},
                         "after": {"auto_merge": auto, "review": review}}, now=now)
    session.flush()
