"""The database side of dedup: checking new leads, the nightly scan, the review queue and its decisions.

Every path goes through ``core.dedup.engine.find_duplicates`` over the stored leads (their stored ``name_key``
and ``company_key`` are used as they are). Pairs at or above the ``auto_merge`` threshold (setting ``dedup``)
merge by themselves; pairs between ``review`` and ``auto_merge`` wait in the review queue as
``DuplicateCandidate`` rows; a pair someone marked "not the same person" is never proposed again. A new lead
that matches a lead a sales rep owns, or a customer, is flagged "already in follow-up by …"
(``Lead.followup_lead_id`` / ``followup_owner_id``) so routing leaves it alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session

from core import audit
from core.auth import SYSTEM, Actor, require
from core.dedup.bulk import merge_many
from core.dedup.engine import clusters, find_duplicates
from core.dedup.merge import merge
from core.dedup.thresholds import thresholds
from core.errors import NotFound, ValidationError
from core.lifecycle import stage_rank
from db.bulk import among
from db.models import CandidateStatus, DuplicateCandidate, Lead, LeadStatus, Touchpoint, User

PAIR_FIELDS = ("name", "company", "phone", "email", "title", "city", "stage", "owner_id")
COMPARED_FIELDS = ("name", "email", "phone", "wechat_id", "company", "title", "industry", "province", "city",
                   "company_size", "product_interest")
# What the engine compares (``lead_frame``); who owns a lead is read afterwards, for the leads in a pair only.
FRAME_COLUMNS = ("id", "name", "name_key", "email", "phone", "wechat_id", "company", "company_key", "title",
                 "city")
OWNER_COLUMNS = ("id", "owner_id", "stage", "is_customer")
_CHUNK = 500


def lead_frame(session: Session) -> pd.DataFrame:
    """The valid leads with the columns dedup compares, indexed by lead id (one statement)."""
    columns = [getattr(Lead, c) for c in FRAME_COLUMNS]
    result = session.connection().execute(select(*columns).where(Lead.status == LeadStatus.VALID).order_by(Lead.id))
    # Plain columns (text, integers): the driver's rows as they are, without per-value processing, kept as Python
    # objects — the engine works on object arrays, and inferring Arrow strings only to convert them back costs
    # more than the read itself.
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS), dtype=object)
    frame.index = pd.Index(frame.pop("id").to_numpy(dtype=np.int64), name="id")
    return frame


def owner_frame(session: Session, lead_ids: Iterable[int]) -> pd.DataFrame:
    """Owner, stage and customer flag of the given leads, indexed by lead id (a statement per 500 ids): what
    choosing a survivor and flagging follow-ups need, for the leads of the pairs found only."""
    ids = sorted({int(i) for i in lead_ids})
    columns = [getattr(Lead, c) for c in OWNER_COLUMNS]
    rows: list[Any] = []
    if len(ids) > 20 * _CHUNK:  # a nightly scan's pairs: one pass over the table beats many IN lists
        rows = session.execute(select(*columns).where(Lead.status != LeadStatus.MERGED)).all()
    else:
        for start in range(0, len(ids), _CHUNK):
            rows += session.execute(select(*columns).where(Lead.id.in_(ids[start:start + _CHUNK]))).all()
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(OWNER_COLUMNS)).set_index("id")
    frame["is_customer"] = frame["is_customer"].astype(bool)
    return frame.loc[frame.index.intersection(ids)]


def _decided_pairs(session: Session, pairs: pd.DataFrame) -> dict[tuple[int, int], tuple[int, str]]:
    """Existing review rows (id, status) for the given pairs."""
    found: dict[tuple[int, int], tuple[int, str]] = {}
    keys = list(zip(pairs["left"].astype(int), pairs["right"].astype(int), strict=True))
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        rows = session.execute(
            select(DuplicateCandidate.id, DuplicateCandidate.left_id, DuplicateCandidate.right_id,
                   DuplicateCandidate.status)
            .where(tuple_(DuplicateCandidate.left_id, DuplicateCandidate.right_id).in_(chunk))).all()
        found.update({(r.left_id, r.right_id): (r.id, r.status) for r in rows})
    return found


def _survivor(frame: pd.DataFrame, members: list[int]) -> int:
    """Of a cluster, the lead that absorbs the others: the most advanced stage, then an owner, then the oldest."""
    def rank(lead_id: int) -> tuple[Any, ...]:
        row = frame.loc[lead_id]
        return (-stage_rank(row["stage"]), row["owner_id"] is None or pd.isna(row["owner_id"]), lead_id)

    return min(members, key=rank)


def process_pairs(
    *, session: Session, pairs: pd.DataFrame, now: datetime, actor: Actor = SYSTEM,
    new_ids: Iterable[int] | None = None, merged: dict[int, int] | None = None,
) -> dict[str, int]:
    """Act on scored pairs: merge the certain ones, queue the likely ones, flag follow-up matches.
    ``merged``, when given, receives each merged-away lead → its survivor."""
    auto, review = thresholds(session)
    summary = {"pairs": int(len(pairs)), "merged": 0, "queued": 0, "flagged": 0}
    if pairs.empty:
        return summary
    frame = owner_frame(session, pd.concat([pairs["left"], pairs["right"]]).unique())
    pairs = pairs.copy()
    low, high = np.minimum(pairs["left"], pairs["right"]), np.maximum(pairs["left"], pairs["right"])
    pairs["left"], pairs["right"] = low.astype(int), high.astype(int)
    existing = _decided_pairs(session, pairs)
    # "Not the same person" is final; merged/skipped pairs are not proposed again either.
    decided = {k for k, (_, status) in existing.items() if status != CandidateStatus.PENDING}
    keep = [(a, b) not in decided for a, b in zip(pairs["left"], pairs["right"], strict=True)]
    pairs = pairs[keep]
    summary["flagged"] = _flag_followups(session, frame, pairs[pairs["score"] < auto], new_ids, now)
    # Certain: merge each cluster into its survivor.
    merged_away: set[int] = set()
    certain = pairs[pairs["score"] >= auto]
    if not certain.empty:
        groups = clusters(certain, auto)
        scores = {(a, b): s for a, b, s in zip(certain["left"], certain["right"], certain["score"], strict=True)}
        steps = []
        for _, ids in groups.groupby(groups).groups.items():
            members = sorted(int(i) for i in ids)
            survivor = _survivor(frame, members)
            for member in members:
                if member != survivor:
                    steps.append((survivor, member, scores.get((min(member, survivor), max(member, survivor)))))
                    merged_away.add(member)
        summary["merged"] = merge_many(session=session, actor=SYSTEM, merges=steps, now=now)
        if merged is not None:
            merged.update({member: survivor for survivor, member, _ in steps})
    # Likely: the review queue (pairs whose lead was just merged away are found again by the next scan).
    queue = pairs[(pairs["score"] >= review) & (pairs["score"] < auto)]
    queue = queue[~queue["left"].isin(merged_away) & ~queue["right"].isin(merged_away)]
    inserts, refresh = [], []
    for a, b, score, reasons in zip(queue["left"], queue["right"], queue["score"], queue["reasons"], strict=True):
        if (a, b) in existing:
            refresh.append({"id": existing[(a, b)][0], "score": float(score), "reasons": list(reasons)})
        else:
            inserts.append({"left_id": int(a), "right_id": int(b), "score": float(score), "reasons": list(reasons),
                            "status": CandidateStatus.PENDING, "created_at": now})
    table = DuplicateCandidate.__table__  # type: ignore[attr-defined]
    for start in range(0, len(inserts), _CHUNK):
        session.execute(table.insert(), inserts[start:start + _CHUNK])
    for row in refresh:
        session.execute(update(table).where(table.c.id == row["id"]).values(score=row["score"],
                                                                             reasons=row["reasons"]))
    summary["queued"] = len(inserts)
    return summary


def _flag_followups(session: Session, frame: pd.DataFrame, pairs: pd.DataFrame, new_ids: Iterable[int] | None,
                    now: datetime) -> int:
    """New leads that match a lead sales owns or a customer: "already in follow-up by …"."""
    if new_ids is None or pairs.empty:
        return 0
    new = set(int(i) for i in new_ids)
    owned = frame[(frame["owner_id"].notna()) | (frame["is_customer"].astype(bool))]
    flags: dict[int, tuple[int, int | None, float]] = {}
    for a, b, score in zip(pairs["left"], pairs["right"], pairs["score"], strict=True):
        for new_id, other in ((a, b), (b, a)):
            if new_id in new and other not in new and other in owned.index:
                owner = owned.at[other, "owner_id"]
                owner_id = None if pd.isna(owner) else int(owner)
                if new_id not in flags or score > flags[new_id][2]:
                    flags[new_id] = (int(other), owner_id, float(score))
    for new_id, (other, owner_id, _) in flags.items():
        session.execute(update(Lead).where(Lead.id == new_id, Lead.status == LeadStatus.VALID)
                        .values(followup_lead_id=other, followup_owner_id=owner_id, updated_at=now)
                        .execution_options(synchronize_session=False))
    return len(flags)


def check_new_leads(*, session: Session, lead_ids: Iterable[int], now: datetime,
                    actor: Actor = SYSTEM, found: pd.DataFrame | None = None,
                    merged: dict[int, int] | None = None) -> dict[str, int]:
    """After an import: compare the new leads with the whole base (and with each other), merge certain
    matches, queue likely ones, flag new leads already followed by sales. Returns counts.

    ``found``: the pairs, when a helper process already compared these leads with the base as the batch left it
    (``core.dedup.search``); pairs whose lead is no longer valid (merged by someone meanwhile) are dropped.
    ``merged``, when given, receives each merged-away lead → its survivor."""
    require(actor, "import")
    ids = sorted({int(i) for i in lead_ids})
    if not ids:
        return {"pairs": 0, "merged": 0, "queued": 0, "flagged": 0}
    _, review = thresholds(session)
    if found is not None:
        pairs = _still_valid(session, found)
    else:
        frame = lead_frame(session)
        pairs = find_duplicates(frame, only=ids, min_score=review) if len(frame) > 1 else pd.DataFrame(
            columns=["left", "right", "score", "reasons"])
    summary = process_pairs(session=session, pairs=pairs, now=now, actor=actor, new_ids=ids, merged=merged)
    summary["compared"] = int(pairs.attrs.get("candidate_pairs", 0))
    return summary


def _still_valid(session: Session, pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs both of whose leads are valid now (one statement)."""
    if pairs.empty:
        return pairs
    ids = pd.concat([pairs["left"], pairs["right"]]).astype("int64").unique().tolist()
    with among(session, Lead.id, ids, name="pair_leads") as wanted:
        valid = set(session.scalars(select(Lead.id).where(wanted, Lead.status == LeadStatus.VALID)))
    keep = pairs["left"].astype("int64").isin(valid) & pairs["right"].astype("int64").isin(valid)
    kept = pairs[keep.to_numpy()]
    kept.attrs = dict(pairs.attrs)
    return kept


def scan_all(*, session: Session, now: datetime, actor: Actor = SYSTEM) -> dict[str, int]:
    """The nightly scan over the whole base: the same decisions as after an import, for every pair."""
    require(actor, "dedup")
    _, review = thresholds(session)
    frame = lead_frame(session)
    pairs = find_duplicates(frame, min_score=review) if len(frame) > 1 else pd.DataFrame(
        columns=["left", "right", "score", "reasons"])
    summary = process_pairs(session=session, pairs=pairs, now=now, actor=actor)
    summary["compared"] = int(pairs.attrs.get("candidate_pairs", 0))
    return summary


# ---------------------------------------------------------------------------------------------------------------
# The review queue
# ---------------------------------------------------------------------------------------------------------------
def count_candidates(*, session: Session, status: str = CandidateStatus.PENDING) -> int:
    return session.scalar(select(func.count()).where(DuplicateCandidate.status == status)) or 0


def list_candidates(
    *, session: Session, status: str = CandidateStatus.PENDING, limit: int = 50, offset: int = 0,
    min_score: float | None = None,
) -> pd.DataFrame:
    """Candidate pairs with both leads' main fields side by side (``left_name``, ``right_name`` …), best first."""
    left, right = aliased(Lead), aliased(Lead)
    columns = [DuplicateCandidate.id, DuplicateCandidate.score, DuplicateCandidate.reasons,
               DuplicateCandidate.status, DuplicateCandidate.left_id, DuplicateCandidate.right_id]
    for side, alias in (("left", left), ("right", right)):
        columns += [getattr(alias, name).label(f"{side}_{name}") for name in PAIR_FIELDS]
    statement = (
        select(*columns)
        .join(left, left.id == DuplicateCandidate.left_id)
        .join(right, right.id == DuplicateCandidate.right_id)
        .where(DuplicateCandidate.status == status)
    )
    if min_score is not None:
        statement = statement.where(DuplicateCandidate.score >= min_score)
    rows = session.execute(
        statement.order_by(DuplicateCandidate.score.desc(), DuplicateCandidate.id).limit(limit).offset(offset)
    ).all()
    return pd.DataFrame([r._asdict() for r in rows], columns=[c.key for c in columns])


def pair_detail(*, session: Session, actor: Actor, candidate_id: int, touchpoints: int = 10) -> dict[str, Any]:
    """Everything the review page shows for one pair: both leads field by field (which differ), their owners,
    stages and latest touchpoints, the score and the reasons."""
    if not (actor.can("dedup") or actor.can("dedup_view")):
        require(actor, "dedup")
    candidate = session.get(DuplicateCandidate, candidate_id)
    if candidate is None:
        raise NotFound(f"Not found: pair {candidate_id}.", what=f"#{candidate_id}")
    leads = {lead.id: lead for lead in session.scalars(
        select(Lead).where(Lead.id.in_((candidate.left_id, candidate.right_id))))}
    left, right = leads[candidate.left_id], leads[candidate.right_id]
    owners = {u.id: u.display_name for u in session.scalars(
        select(User).where(User.id.in_([x for x in (left.owner_id, right.owner_id) if x is not None])))}
    fields = []
    for name in COMPARED_FIELDS:
        a, b = getattr(left, name), getattr(right, name)
        fields.append({"field": name, "left": a, "right": b,
                       "differs": (a or None) != (b or None) and not (a in (None, "") and b in (None, ""))})
    touches = {}
    for lead in (left, right):
        rows = session.execute(
            select(Touchpoint.occurred_at, Touchpoint.kind, Touchpoint.channel_id)
            .where(Touchpoint.lead_id == lead.id).order_by(Touchpoint.occurred_at.desc()).limit(touchpoints)).all()
        touches[lead.id] = pd.DataFrame([r._asdict() for r in rows], columns=["occurred_at", "kind", "channel_id"])
    counts = dict(session.execute(select(Touchpoint.lead_id, func.count()).where(
        Touchpoint.lead_id.in_((left.id, right.id))).group_by(Touchpoint.lead_id)).all())
    return {
        "candidate": candidate, "left": left, "right": right, "fields": pd.DataFrame(fields),
        "owners": {lead.id: owners.get(lead.owner_id) for lead in (left, right)},
        "touchpoints": touches, "touchpoint_counts": {k: int(counts.get(k, 0)) for k in (left.id, right.id)},
    }


def _candidates(session: Session, ids: Iterable[int]) -> list[DuplicateCandidate]:
    wanted = sorted({int(i) for i in ids})
    found = list(session.scalars(select(DuplicateCandidate).where(DuplicateCandidate.id.in_(wanted))))
    missing = set(wanted) - {c.id for c in found}
    if missing:
        raise NotFound(f"Not found: pair {min(missing)}.", what=f"#{min(missing)}")
    return found


def _decide(session: Session, actor: Actor, ids: Iterable[int], status: str, now: datetime) -> int:
    require(actor, "dedup")
    candidates = _candidates(session, ids)
    for candidate in candidates:
        candidate.status = status
        candidate.decided_by_id = actor.id or None
        candidate.decided_at = now
        session.add(candidate)
    audit.record(session, actor_id=actor.id or None, action=f"dedup.{status}", entity="duplicatecandidate",
                 entity_id=",".join(str(c.id) for c in candidates)[:64],
                 detail={"pairs": [[c.left_id, c.right_id] for c in candidates]}, now=now)
    session.flush()
    return len(candidates)


def mark_not_duplicate(*, session: Session, actor: Actor, candidate_ids: Iterable[int], now: datetime) -> int:
    """"Not the same person": the pairs leave the queue and are never proposed again."""
    return _decide(session, actor, candidate_ids, CandidateStatus.NOT_DUPLICATE, now)


def skip(*, session: Session, actor: Actor, candidate_ids: Iterable[int], now: datetime) -> int:
    """Decide later: the pairs leave the pending queue (listed under "skipped", where they can be decided)."""
    return _decide(session, actor, candidate_ids, CandidateStatus.SKIPPED, now)


def merge_candidate(
    *, session: Session, actor: Actor, candidate_id: int, now: datetime, survivor_id: int | None = None,
    choices: dict[str, int] | None = None,
) -> int:
    """Merge the two leads of a pair (the left one survives unless ``survivor_id`` says otherwise); returns the
    merge id."""
    require(actor, "dedup")
    (candidate,) = _candidates(session, [candidate_id])
    session.refresh(candidate)
    if candidate.status in (CandidateStatus.MERGED, CandidateStatus.NOT_DUPLICATE):
        raise ValidationError("This pair was already decided.", key="dedup.pair_decided")
    survivor = survivor_id if survivor_id is not None else candidate.left_id
    if survivor not in (candidate.left_id, candidate.right_id):
        raise ValidationError("The surviving lead must be one of the pair.", key="dedup.survivor_invalid")
    merged = candidate.right_id if survivor == candidate.left_id else candidate.left_id
    record = merge(session=session, actor=actor, survivor_id=survivor, merged_id=merged, now=now, choices=choices,
                   score=candidate.score)
    session.execute(update(DuplicateCandidate).where(DuplicateCandidate.id == candidate.id)
                    .values(decided_by_id=actor.id or None, decided_at=now))
    assert record.id is not None
    return record.id


def bulk_merge(*, session: Session, actor: Actor, candidate_ids: Iterable[int], now: datetime) -> int:
    """Merge many pairs at once (the obvious ones), each with the default survivorship (the pair's lower id
    survives), best score first; a pair whose lead was merged away by an earlier pair of the same batch merges
    into that lead's survivor. Each merge keeps its own undo snapshot, as one by one; the writes are set-based
    (``merge_many``): a few statements per table for the whole selection, not a round of queries per pair."""
    require(actor, "dedup")
    candidates = _candidates(session, candidate_ids)
    lead_ids = sorted({c.left_id for c in candidates} | {c.right_id for c in candidates})
    statuses: dict[int, str] = {}
    for start in range(0, len(lead_ids), _CHUNK):
        statuses.update((lead_id, status) for lead_id, status in session.execute(
            select(Lead.id, Lead.status).where(Lead.id.in_(lead_ids[start:start + _CHUNK]))))
    # Where each lead went within this batch; the steps are split into rounds in which no lead both absorbs
    # others and is absorbed (what ``merge_many`` replays in one go); a chain takes one more round.
    went: dict[int, int] = {}

    def resolve(lead_id: int) -> int:
        while lead_id in went:
            lead_id = went[lead_id]
        return lead_id

    rounds: list[list[tuple[int, int, float | None]]] = [[]]
    survivors_now: set[int] = set()
    done_ids: list[int] = []
    for candidate in sorted(candidates, key=lambda c: (-c.score, c.id)):
        if candidate.status not in (CandidateStatus.PENDING, CandidateStatus.SKIPPED):
            continue
        if LeadStatus.MERGED in (statuses.get(candidate.left_id), statuses.get(candidate.right_id)):
            continue  # merged before this batch
        a, b = resolve(candidate.left_id), resolve(candidate.right_id)
        if a == b:
            continue  # merged along with an earlier pair
        survivor, merged = min(a, b), max(a, b)
        if merged in survivors_now:
            rounds.append([])
            survivors_now = set()
        rounds[-1].append((survivor, merged, candidate.score))
        survivors_now.add(survivor)
        went[merged] = survivor
        done_ids.append(candidate.id)
    for steps in rounds:
        merge_many(session=session, actor=actor, merges=steps, now=now, automatic=False)
    for start in range(0, len(done_ids), _CHUNK):
        session.execute(update(DuplicateCandidate).where(DuplicateCandidate.id.in_(done_ids[start:start + _CHUNK]))
                        .values(decided_by_id=actor.id or None, decided_at=now)
                        .execution_options(synchronize_session=False))
    session.flush()
    return len(done_ids)


def pending_for_lead(*, session: Session, lead_id: int) -> int:
    """How many open review pairs involve a lead."""
    return session.scalar(select(func.count()).where(
        DuplicateCandidate.status == CandidateStatus.PENDING,
        or_(DuplicateCandidate.left_id == lead_id, DuplicateCandidate.right_id == lead_id))) or 0
