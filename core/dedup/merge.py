"""Merging two leads into one, and undoing it exactly.

``merge`` moves every row that references the merged lead — touchpoints, tags, group memberships, assignments,
workflow enrollments, messages, score events, stage changes, import rows, opportunities, review pairs, and the
leads that point at it — to the survivor, found from the schema's foreign keys so that no table is forgotten.
The survivor's fields follow survivorship rules (the most recent non-empty value unless the user chose, first-
touch source kept, the most advanced stage and its owner). A ``MergeRecord`` keeps both leads as they were and
the id of every row that moved, was changed or was deleted (a tag both leads had), so ``unmerge`` restores the
database as it was before the merge.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Table, and_, delete, func, insert, or_, select, update
from sqlmodel import Session, SQLModel

from core import audit, normalize
from core.auth import SYSTEM, Actor, require
from core.errors import ConcurrentUpdate, MergeConflict, NotFound, PermissionDenied, ValidationError
from core.lifecycle import stage_rank
from db.models import (
    CandidateStatus,
    DuplicateCandidate,
    Enrollment,
    EnrollmentStatus,
    Lead,
    LeadStatus,
    MergeRecord,
    ScoreEvent,
    User,
)

SNAPSHOT_VERSION = 1
LEAD_TABLE: Table = Lead.__table__  # type: ignore[attr-defined]

# Profile fields: the most recent non-empty value survives unless the user chooses.
PROFILE_FIELDS = ("name", "email", "phone", "wechat_id", "company", "title", "industry", "province", "city",
                  "company_size", "product_interest", "account_id")
# First-touch attribution: the earliest lead's source is the lead's source.
SOURCE_FIELDS = ("source_channel_id", "source_campaign_id", "tracking_code", "referrer_id", "utm_source",
                 "utm_medium", "utm_campaign", "import_batch_id")
CHOOSABLE_FIELDS = PROFILE_FIELDS + SOURCE_FIELDS
_ACTIVE_ENROLLMENT = (EnrollmentStatus.ACTIVE, EnrollmentStatus.RUNNING)
_CHUNK = 500


# ---------------------------------------------------------------------------------------------------------------
# Rows as JSON and back
# ---------------------------------------------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$d" in value:
            return date.fromisoformat(value["$d"])
    return value


def _row(session: Session, table: Table, condition: Any) -> dict[str, Any] | None:
    found = session.execute(select(table).where(condition)).mappings().first()
    return {k: _encode(v) for k, v in found.items()} if found is not None else None


def _rows(session: Session, table: Table, condition: Any) -> list[dict[str, Any]]:
    return [{k: _encode(v) for k, v in r.items()} for r in session.execute(select(table).where(condition)).mappings()]


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _decode(v) for k, v in row.items()}


def _references() -> list[tuple[Table, str]]:
    """Every (table, column) that holds a lead id, except the merge records themselves, the lead's own
    ``merged_into_id`` (history of earlier merges) and the review pairs (handled on their own)."""
    found = []
    for table in SQLModel.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name != "lead" or table.name in ("mergerecord", "duplicatecandidate"):
                continue
            if table.name == "lead" and fk.parent.name == "merged_into_id":
                continue
            found.append((table, fk.parent.name))
    return sorted(found, key=lambda tc: (tc[0].name, tc[1]))


def _pk(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


# ---------------------------------------------------------------------------------------------------------------
# Survivorship
# ---------------------------------------------------------------------------------------------------------------
def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _when(lead: dict[str, Any], name: str) -> str:
    value = lead.get(name)
    return value.get("$dt", "") if isinstance(value, dict) else str(value or "")


def _recency(lead: dict[str, Any]) -> tuple[str, str, int]:
    return (_when(lead, "updated_at"), _when(lead, "created_at"), lead["id"])


def surviving_values(
    survivor: dict[str, Any], merged: dict[str, Any], choices: dict[str, int] | None = None
) -> dict[str, Any]:
    """The survivor's new field values. ``choices`` maps a field to the id of the lead whose value to keep."""
    by_id = {survivor["id"]: survivor, merged["id"]: merged}
    recent, older = sorted((survivor, merged), key=_recency, reverse=True)
    earliest = min((survivor, merged), key=lambda lead: (_when(lead, "created_at"), lead["id"]))
    latest_other = merged if earliest is survivor else survivor
    values: dict[str, Any] = {}
    for name in PROFILE_FIELDS:
        values[name] = recent[name] if not _empty(recent[name]) else older[name]
    for name in SOURCE_FIELDS:
        values[name] = earliest[name] if not _empty(earliest[name]) else latest_other[name]
    for name, lead_id in (choices or {}).items():
        if name not in CHOOSABLE_FIELDS:
            raise ValidationError(f"This field cannot be chosen: {name}.", key="dedup.field_not_choosable",
                                  field=name)
        if lead_id not in by_id:
            raise ValidationError("A chosen value must come from one of the two leads.", key="dedup.choice_invalid",
                                  field=name)
        values[name] = by_id[lead_id][name]
    # Stage and owner: the most advanced lead decides both (a rep keeps the lead they are working).
    ahead = max((survivor, merged), key=lambda lead: (stage_rank(lead["stage"]), lead["owner_id"] is not None,
                                                      lead is survivor))
    values["stage"] = ahead["stage"]
    values["stage_changed_at"] = _decode(ahead["stage_changed_at"])
    values["recycle_at"] = _decode(ahead["recycle_at"])
    values["owner_id"] = ahead["owner_id"] if ahead["owner_id"] is not None else (
        survivor["owner_id"] if survivor["owner_id"] is not None else merged["owner_id"])
    values["is_customer"] = bool(survivor["is_customer"] or merged["is_customer"])
    values["unsubscribed"] = bool(survivor["unsubscribed"] or merged["unsubscribed"])  # never mail someone who left
    valid = LeadStatus.VALID in (survivor["status"], merged["status"])
    values["status"] = LeadStatus.VALID if valid else survivor["status"]
    values["invalid_reason"] = None if valid else survivor["invalid_reason"]
    for name in ("followup_lead_id", "followup_owner_id"):
        values[name] = survivor[name] if survivor[name] is not None else merged[name]
    if values["followup_lead_id"] in by_id:
        values["followup_lead_id"], values["followup_owner_id"] = None, None
    values["grade"] = survivor["grade"] if survivor["grade"] is not None else merged["grade"]
    values["attributes"] = {**(older["attributes"] or {}), **(recent["attributes"] or {})}
    created = [_decode(lead["created_at"]) for lead in (survivor, merged)]
    values["created_at"] = min(c for c in created if c is not None)
    activity = [_decode(lead["last_activity_at"]) for lead in (survivor, merged) if lead["last_activity_at"]]
    values["last_activity_at"] = max(activity) if activity else None
    return values


# ---------------------------------------------------------------------------------------------------------------
# Merge
# ---------------------------------------------------------------------------------------------------------------
def _load_pair(session: Session, survivor_id: int, merged_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    if survivor_id == merged_id:
        raise ValidationError("A lead cannot be merged with itself.", key="dedup.same_lead")
    survivor = _row(session, LEAD_TABLE, LEAD_TABLE.c.id == survivor_id)
    merged = _row(session, LEAD_TABLE, LEAD_TABLE.c.id == merged_id)
    for lead_id, lead in ((survivor_id, survivor), (merged_id, merged)):
        if lead is None:
            raise NotFound(f"Not found: lead {lead_id}.", what=f"#{lead_id}")
        if lead["status"] == LeadStatus.MERGED:
            raise MergeConflict(f"Lead #{lead_id} was already merged into another lead.",
                                key="dedup.already_merged", lead=f"#{lead_id}")
    assert survivor is not None and merged is not None
    return survivor, merged


def _bump(session: Session, lead: dict[str, Any], values: dict[str, Any]) -> None:
    """Write ``values`` only if nobody changed the lead since it was read (optimistic locking on version)."""
    result = session.execute(
        update(LEAD_TABLE)
        .where(LEAD_TABLE.c.id == lead["id"], LEAD_TABLE.c.version == lead["version"])
        .values(**values, version=LEAD_TABLE.c.version + 1)
    )
    if result.rowcount != 1:
        raise ConcurrentUpdate("Someone else changed this lead just now.", detail=f"#{lead['id']}")


def _move_references(session: Session, survivor_id: int, merged_id: int, now: datetime,
                     snapshot: dict[str, Any]) -> None:
    moved: dict[str, list[Any]] = {}
    deleted: dict[str, list[dict[str, Any]]] = {}
    changed: dict[str, list[dict[str, Any]]] = {}
    for table, column in _references():
        col = table.c[column]
        label = f"{table.name}.{column}"
        pk = _pk(table)
        if column in pk:
            # Composite keys (tags, groups): a tag both leads have stays once, on the survivor.
            (other,) = [c for c in pk if c != column]
            held = [row[0] for row in session.execute(select(table.c[other]).where(col == survivor_id))]
            if held:
                clash = and_(col == merged_id, table.c[other].in_(held))
                rows = _rows(session, table, clash)
                if rows:
                    deleted[table.name] = rows
                    session.execute(delete(table).where(clash))
            keys = [row[0] for row in session.execute(select(table.c[other]).where(col == merged_id))]
            if keys:
                moved[label] = keys
                session.execute(update(table).where(col == merged_id).values({column: survivor_id}))
            continue
        if table.name == "enrollment":
            # A workflow the survivor is already in: the merged lead's run of it ends (no double messages).
            busy = select(Enrollment.workflow_id).where(Enrollment.lead_id == survivor_id,
                                                        Enrollment.status.in_(_ACTIVE_ENROLLMENT))
            ending = and_(col == merged_id, table.c.status.in_(_ACTIVE_ENROLLMENT),
                          table.c.workflow_id.in_(busy.scalar_subquery()))
            rows = _rows(session, table, ending)
            if rows:
                changed["enrollment"] = rows
                session.execute(update(table).where(ending).values(status=EnrollmentStatus.EXITED, finished_at=now,
                                                                   last_error="merged into another lead"))
        ids = [row[0] for row in session.execute(select(table.c[pk[0]]).where(col == merged_id))]
        if ids:
            moved[label] = ids
            for start in range(0, len(ids), _CHUNK):
                session.execute(update(table).where(table.c[pk[0]].in_(ids[start:start + _CHUNK]))
                                .values({column: survivor_id}))
    # Earlier merges into the merged lead now point at the survivor.
    earlier = [row[0] for row in session.execute(select(Lead.id).where(Lead.merged_into_id == merged_id))]
    if earlier:
        moved["lead.merged_into_id"] = earlier
        session.execute(update(LEAD_TABLE).where(LEAD_TABLE.c.id.in_(earlier)).values(merged_into_id=survivor_id))
    _move_candidates(session, survivor_id, merged_id, now, changed, deleted)
    snapshot.update(moved=moved, deleted=deleted, changed=changed)


def _move_candidates(session: Session, survivor_id: int, merged_id: int, now: datetime,
                     changed: dict[str, list[dict[str, Any]]], deleted: dict[str, list[dict[str, Any]]]) -> None:
    """Review pairs of the merged lead: the pair of these two is decided; the others now concern the survivor,
    except those that would pair the survivor with itself or repeat a pair it already has."""
    table: Table = DuplicateCandidate.__table__  # type: ignore[attr-defined]
    involved = or_(table.c.left_id == merged_id, table.c.right_id == merged_id)
    rows = _rows(session, table, involved)
    if not rows:
        return
    existing = {(r.left_id, r.right_id) for r in session.execute(
        select(table.c.left_id, table.c.right_id).where(or_(table.c.left_id == survivor_id,
                                                            table.c.right_id == survivor_id)))}
    before_changed, before_deleted = [], []
    for row in rows:
        other = row["right_id"] if row["left_id"] == merged_id else row["left_id"]
        if other == survivor_id:
            before_changed.append(row)
            session.execute(update(table).where(table.c.id == row["id"]).values(
                status=CandidateStatus.MERGED, decided_at=now))
            continue
        pair = (min(other, survivor_id), max(other, survivor_id))
        if pair in existing:
            before_deleted.append(row)
            session.execute(delete(table).where(table.c.id == row["id"]))
            continue
        existing.add(pair)
        before_changed.append(row)
        session.execute(update(table).where(table.c.id == row["id"]).values(left_id=pair[0], right_id=pair[1]))
    if before_changed:
        changed["duplicatecandidate"] = before_changed
    if before_deleted:
        deleted["duplicatecandidate"] = before_deleted


def _ledger_sums(session: Session, lead_id: int) -> dict[str, float]:
    rows = session.execute(select(ScoreEvent.component, func.coalesce(func.sum(ScoreEvent.points), 0.0))
                           .where(ScoreEvent.lead_id == lead_id).group_by(ScoreEvent.component)).all()
    sums = {component: float(total) for component, total in rows}
    return {"fit_score": sums.get("fit", 0.0), "engagement_score": sums.get("engagement", 0.0)}


def merge(
    *,
    session: Session,
    actor: Actor,
    survivor_id: int,
    merged_id: int,
    now: datetime,
    choices: dict[str, int] | None = None,
    automatic: bool = False,
    score: float | None = None,
) -> MergeRecord:
    """Merge lead ``merged_id`` into ``survivor_id``; returns the MergeRecord that can undo it.

    ``choices`` maps a field (``CHOOSABLE_FIELDS``) to the id of the lead whose value survives; other fields
    follow the survivorship rules of ``surviving_values``. Scores are not added up: the score ledgers are
    joined and the survivor's cached scores become the sums of its ledger (the scoring engine's ``rescore``
    recomputes them from the merged history)."""
    require(actor, "dedup")
    survivor, merged = _load_pair(session, survivor_id, merged_id)
    snapshot: dict[str, Any] = {"version": SNAPSHOT_VERSION, "survivor": survivor, "merged": merged}
    values = surviving_values(survivor, merged, choices)
    _move_references(session, survivor_id, merged_id, now, snapshot)
    keys = normalize.lead_keys(pd.DataFrame([{k: values.get(k) for k in ("name", "email", "phone", "company",
                                                                         "wechat_id")}]))
    values.update(name_key=keys.at[0, "name_key"], company_key=keys.at[0, "company_key"],
                  search_text=keys.at[0, "search_text"], updated_at=now, scored_at=now)
    values.update(_ledger_sums(session, survivor_id))
    _bump(session, survivor, values)
    _bump(session, merged, {"status": LeadStatus.MERGED, "merged_into_id": survivor_id, "updated_at": now,
                            "followup_lead_id": None, "followup_owner_id": None})
    record = MergeRecord(survivor_id=survivor_id, merged_id=merged_id, snapshot=snapshot, automatic=automatic,
                         score=score, merged_by_id=actor.id or None, merged_at=now)
    session.add(record)
    session.flush()
    audit.record(session, actor_id=actor.id or None, action="dedup.merge", entity="lead", entity_id=survivor_id,
                 detail={"merged_id": merged_id, "merge_id": record.id, "automatic": automatic,
                         "choices": {k: v for k, v in (choices or {}).items()}}, now=now)
    return record


# ---------------------------------------------------------------------------------------------------------------
# Unmerge
# ---------------------------------------------------------------------------------------------------------------
def unmerge(*, session: Session, actor: Actor, merge_id: int, now: datetime) -> None:
    """Undo a merge: both leads and every moved, changed or deleted row come back as they were.

    Merges are undone newest first: a later merge that involves the survivor must be undone before."""
    require(actor, "dedup")
    record = session.get(MergeRecord, merge_id)
    if record is None:
        raise NotFound(f"Not found: merge {merge_id}.", what=f"#{merge_id}")
    if record.undone_at is not None:
        raise MergeConflict("This merge was already undone.", key="dedup.already_undone")
    later = session.scalar(
        select(func.count()).select_from(MergeRecord).where(
            MergeRecord.id > record.id, MergeRecord.undone_at.is_(None),
            or_(MergeRecord.survivor_id.in_((record.survivor_id, record.merged_id)),
                MergeRecord.merged_id.in_((record.survivor_id, record.merged_id)))))
    if later:
        raise MergeConflict("A later merge involves this lead; undo that one first.", key="dedup.undo_later_first")
    snapshot = record.snapshot
    survivor_id, merged_id = record.survivor_id, record.merged_id
    tables = {t.name: t for t in SQLModel.metadata.sorted_tables}
    # Rows that moved go back to the merged lead.
    for label, keys in snapshot.get("moved", {}).items():
        table_name, column = label.split(".")
        table = tables[table_name]
        col = table.c[column]
        pk = _pk(table)
        if column in pk:
            (other,) = [c for c in pk if c != column]
            session.execute(update(table).where(col == survivor_id, table.c[other].in_(keys))
                            .values({column: merged_id}))
            continue
        for start in range(0, len(keys), _CHUNK):
            session.execute(update(table).where(table.c[pk[0]].in_(keys[start:start + _CHUNK]))
                            .values({column: merged_id}))
    # Rows that changed get their old values; rows that were deleted come back.
    for table_name, rows in snapshot.get("changed", {}).items():
        table = tables[table_name]
        pk = _pk(table)
        for row in rows:
            values = _decoded(row)
            session.execute(update(table).where(*[table.c[c] == values[c] for c in pk]).values(values))
    for table_name, rows in snapshot.get("deleted", {}).items():
        if rows:
            session.execute(insert(tables[table_name]), [_decoded(r) for r in rows])
    # Both leads exactly as they were.
    for side in ("survivor", "merged"):
        values = _decoded(snapshot[side])
        session.execute(update(LEAD_TABLE).where(LEAD_TABLE.c.id == values["id"]).values(values))
    record.undone_at = now
    record.undone_by_id = actor.id or None
    session.add(record)
    audit.record(session, actor_id=actor.id or None, action="dedup.unmerge", entity="lead", entity_id=survivor_id,
                 detail={"merged_id": merged_id, "merge_id": merge_id}, now=now)
    session.flush()


# ---------------------------------------------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------------------------------------------
MERGE_HISTORY_COLUMNS = ["merge_id", "merged_at", "survivor_id", "survivor_name", "merged_id", "merged_name",
                         "automatic", "score", "merged_by", "undone_at", "can_undo"]


def lead_merges(*, session: Session, actor: Actor = SYSTEM, lead_id: int) -> pd.DataFrame:
    """The merges a lead took part in (as survivor or as the merged lead), newest first, with whether each can be
    undone now. The Journeys page shows this in a lead's history."""
    if not any(actor.can(p) for p in ("dedup", "dedup_view", "journeys")):
        raise PermissionDenied(role=actor.role, action="dedup_view")
    rows = session.execute(
        select(MergeRecord.id, MergeRecord.merged_at, MergeRecord.survivor_id, MergeRecord.merged_id,
               MergeRecord.automatic, MergeRecord.score, User.display_name, MergeRecord.undone_at,
               MergeRecord.snapshot)
        .join(User, User.id == MergeRecord.merged_by_id, isouter=True)
        .where(or_(MergeRecord.survivor_id == lead_id, MergeRecord.merged_id == lead_id))
        .order_by(MergeRecord.merged_at.desc(), MergeRecord.id.desc())
    ).all()
    if not rows:
        return pd.DataFrame(columns=MERGE_HISTORY_COLUMNS)
    ids = {r.survivor_id for r in rows} | {r.merged_id for r in rows}
    blocking = session.execute(
        select(MergeRecord.id, MergeRecord.survivor_id, MergeRecord.merged_id)
        .where(MergeRecord.undone_at.is_(None),
               or_(MergeRecord.survivor_id.in_(ids), MergeRecord.merged_id.in_(ids)))).all()
    out = []
    for r in rows:
        later = any(b.id > r.id and {b.survivor_id, b.merged_id} & {r.survivor_id, r.merged_id} for b in blocking)
        out.append({
            "merge_id": r.id, "merged_at": r.merged_at, "survivor_id": r.survivor_id,
            "survivor_name": (r.snapshot or {}).get("survivor", {}).get("name"),
            "merged_id": r.merged_id, "merged_name": (r.snapshot or {}).get("merged", {}).get("name"),
            "automatic": r.automatic, "score": r.score, "merged_by": r.display_name or "LeadLoop",
            "undone_at": r.undone_at, "can_undo": r.undone_at is None and not later,
        })
    return pd.DataFrame(out, columns=MERGE_HISTORY_COLUMNS)
