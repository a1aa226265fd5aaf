"""Many automatic merges at once: what a scan or an import check decides, applied set-based.

``merge_many`` ends in the same database, with the same undo snapshots, as calling ``core.dedup.merge.merge``
for each pair in order (a unit test checks both), but reads and writes each table a few times in all instead
of a few times per merge: the steps are replayed in memory, then written with ``CASE`` updates in chunks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Table, bindparam, case, delete, func, insert, or_, select, tuple_, update
from sqlmodel import Session

from core import audit, normalize
from core.auth import Actor, require
from core.dedup.merge import (
    _ACTIVE_ENROLLMENT,
    _CHUNK,
    LEAD_TABLE,
    SNAPSHOT_VERSION,
    _decode,
    _encode,
    _pk,
    _references,
    _rows,
    surviving_values,
)
from core.errors import ConcurrentUpdate, MergeConflict, NotFound, ValidationError
from db.models import (
    CandidateStatus,
    DuplicateCandidate,
    Enrollment,
    EnrollmentStatus,
    Lead,
    LeadStatus,
    MergeRecord,
    ScoreEvent,
)


def _chunks(values: list[Any]) -> list[list[Any]]:
    return [values[start:start + _CHUNK] for start in range(0, len(values), _CHUNK)]


def _repoint(session: Session, table: Table, column: str, mapping: dict[int, int]) -> None:
    """``UPDATE table SET column = CASE column WHEN merged THEN survivor … END`` in chunks."""
    col = table.c[column]
    keys = sorted(mapping)
    for chunk in _chunks(keys):
        session.execute(update(table).where(col.in_(chunk)).values(
            {column: case({k: mapping[k] for k in chunk}, value=col)}))


def merge_many(
    *, session: Session, actor: Actor, merges: list[tuple[int, int, float | None]], now: datetime,
    automatic: bool = True,
) -> int:
    """Several merges ``(survivor_id, merged_id, score)`` at once, with the same outcome and the same undo
    snapshots as calling ``merge`` for each in order — in a few statements per table instead of a few per merge.
    A merged lead may appear once and may not be a survivor itself (the clusters of a scan are stars)."""
    require(actor, "dedup")
    if not merges:
        return 0
    merged_ids = [m for _, m, _ in merges]
    survivors = sorted({s for s, _, _ in merges})
    if len(set(merged_ids)) != len(merged_ids) or set(merged_ids) & set(survivors):
        raise ValidationError("Each lead can be merged away once, into a lead that stays.", key="dedup.same_lead")
    involved = sorted(set(survivors) | set(merged_ids))
    leads: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(involved):
        for row in _rows(session, LEAD_TABLE, LEAD_TABLE.c.id.in_(chunk)):
            leads[row["id"]] = row
    for lead_id in involved:
        if lead_id not in leads:
            raise NotFound(f"Not found: lead {lead_id}.", what=f"#{lead_id}")
        if leads[lead_id]["status"] == LeadStatus.MERGED:
            raise MergeConflict(f"Lead #{lead_id} was already merged into another lead.",
                                key="dedup.already_merged", lead=f"#{lead_id}")
    original_version = {i: leads[i]["version"] for i in involved}
    merged_set = set(merged_ids)

    # What references the merged leads (simple tables), and the state the steps change (in memory).
    references = _references()
    simple: dict[str, dict[int, list[Any]]] = {}
    composite: dict[str, dict[int, dict[Any, dict[str, Any]]]] = {}
    for table, column in _references():
        pk = _pk(table)
        label = f"{table.name}.{column}"
        if column in pk:
            (other,) = [c for c in pk if c != column]
            held: dict[int, dict[Any, dict[str, Any]]] = {i: {} for i in involved}
            for chunk in _chunks(involved):
                for row in _rows(session, table, table.c[column].in_(chunk)):
                    held[row[column]][row[other]] = row
            composite[table.name] = held
            continue
        found: dict[int, list[Any]] = {}
        for chunk in _chunks(merged_ids):
            for key, owner in session.execute(select(table.c[pk[0]], table.c[column]).where(
                    table.c[column].in_(chunk))):
                found.setdefault(owner, []).append(key)
        simple[label] = {k: sorted(v) for k, v in found.items()}
    following = {m: set(ids) for m, ids in simple.get("lead.followup_lead_id", {}).items()}
    enrollments: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(involved):
        for row in _rows(session, Enrollment.__table__, Enrollment.__table__.c.lead_id.in_(chunk)):  # type: ignore[attr-defined]
            enrollments[row["id"]] = row
    candidate_table: Table = DuplicateCandidate.__table__  # type: ignore[attr-defined]
    candidates: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(involved):
        for row in _rows(session, candidate_table, or_(candidate_table.c.left_id.in_(chunk),
                                                       candidate_table.c.right_id.in_(chunk))):
            candidates[row["id"]] = row
    original_candidates = {k: dict(v) for k, v in candidates.items()}
    paired: dict[int, set[int]] = {}
    for row in candidates.values():
        for side in ("left_id", "right_id"):
            paired.setdefault(row[side], set()).add(row["id"])
    enrolled: dict[int, list[dict[str, Any]]] = {}
    for row in enrollments.values():
        enrolled.setdefault(row["lead_id"], []).append(row)
    sums: dict[int, dict[str, float]] = {i: {"fit": 0.0, "engagement": 0.0} for i in involved}
    for chunk in _chunks(involved):
        for lead_id, component, total in session.execute(
                select(ScoreEvent.lead_id, ScoreEvent.component, func.coalesce(func.sum(ScoreEvent.points), 0.0))
                .where(ScoreEvent.lead_id.in_(chunk)).group_by(ScoreEvent.lead_id, ScoreEvent.component)):
            sums[lead_id][component] = float(total)

    # Pass 1: the surviving values of every step, in order (keys come in one vectorized pass afterwards).
    current = {i: dict(leads[i]) for i in involved}
    steps = []
    for survivor_id, merged_id, score in merges:
        values = surviving_values(current[survivor_id], current[merged_id])
        steps.append((survivor_id, merged_id, score, values))
        current[survivor_id] = {**current[survivor_id], **{k: _encode(v) for k, v in values.items()},
                                "updated_at": _encode(now)}
    keys = normalize.lead_keys(pd.DataFrame([{k: values.get(k) for k in ("name", "email", "phone", "company",
                                                                         "wechat_id")} for *_, values in steps]))

    # Pass 2: replay the steps, recording each snapshot exactly as ``merge`` would.
    current = {i: dict(leads[i]) for i in involved}
    records = []
    repoint: dict[str, dict[int, int]] = {}
    exits: dict[int, dict[str, Any]] = {}
    deletes: dict[str, list[dict[str, Any]]] = {}
    merged_into_moves: dict[int, int] = {}
    earlier_merged = {}
    for chunk in _chunks(merged_ids):
        for lead_id, into in session.execute(select(Lead.id, Lead.merged_into_id).where(
                Lead.merged_into_id.in_(chunk))):
            earlier_merged.setdefault(into, []).append(lead_id)
    for number, (survivor_id, merged_id, score, _) in enumerate(steps):
        survivor, merged = current[survivor_id], current[merged_id]
        values = surviving_values(survivor, merged)
        snapshot: dict[str, Any] = {"version": SNAPSHOT_VERSION, "survivor": dict(survivor), "merged": dict(merged)}
        moved: dict[str, list[Any]] = {}
        deleted: dict[str, list[dict[str, Any]]] = {}
        changed: dict[str, list[dict[str, Any]]] = {}
        for table, column in references:
            label = f"{table.name}.{column}"
            if table.name in composite:
                held = composite[table.name]
                clash = sorted(set(held[merged_id]) & set(held[survivor_id]))
                move = sorted(set(held[merged_id]) - set(clash))
                if clash:
                    deleted[table.name] = [held[merged_id][k] for k in clash]
                    deletes.setdefault(table.name, []).extend(held[merged_id][k] for k in clash)
                if move:
                    moved[label] = move
                    for k in move:
                        held[survivor_id][k] = {**held[merged_id][k], column: survivor_id}
                        repoint.setdefault(label, {})[(merged_id, k)] = survivor_id  # type: ignore[index]
                held[merged_id] = {}
                continue
            if label == "lead.followup_lead_id":
                ids = sorted(following.pop(merged_id, set()))
                if ids:
                    moved[label] = ids
                    following.setdefault(survivor_id, set()).update(ids)
                    for i in ids:
                        if i in current:
                            current[i]["followup_lead_id"] = survivor_id
                continue
            ids = simple[label].get(merged_id, [])
            if table.name == "enrollment":
                busy = {e["workflow_id"] for e in enrolled.get(survivor_id, [])
                        if e["status"] in _ACTIVE_ENROLLMENT}
                ending = [e for e in enrolled.get(merged_id, [])
                          if e["status"] in _ACTIVE_ENROLLMENT and e["workflow_id"] in busy]
                if ending:
                    changed["enrollment"] = [dict(e) for e in sorted(ending, key=lambda e: e["id"])]
                    for e in ending:
                        e.update(status=EnrollmentStatus.EXITED, finished_at=_encode(now),
                                 last_error="merged into another lead")
                        exits[e["id"]] = e
                for e in enrolled.pop(merged_id, []):
                    e["lead_id"] = survivor_id
                    enrolled.setdefault(survivor_id, []).append(e)
            if ids:
                moved[label] = ids
                repoint.setdefault(label, {})[merged_id] = survivor_id
        if earlier_merged.get(merged_id):
            moved["lead.merged_into_id"] = sorted(earlier_merged[merged_id])
            merged_into_moves[merged_id] = survivor_id
        # Review pairs, as ``_move_candidates`` does them.
        involved_rows = sorted((candidates[c] for c in paired.get(merged_id, set()) if c in candidates),
                               key=lambda c: c["id"])
        existing = {(candidates[c]["left_id"], candidates[c]["right_id"]) for c in paired.get(survivor_id, set())
                    if c in candidates}
        before_changed, before_deleted = [], []
        for row in involved_rows:
            other = row["right_id"] if row["left_id"] == merged_id else row["left_id"]
            if other == survivor_id:
                before_changed.append(dict(row))
                row.update(status=CandidateStatus.MERGED, decided_at=_encode(now))
                continue
            pair = (min(other, survivor_id), max(other, survivor_id))
            if pair in existing:
                before_deleted.append(dict(row))
                del candidates[row["id"]]
                continue
            existing.add(pair)
            before_changed.append(dict(row))
            row.update(left_id=pair[0], right_id=pair[1])
            paired.setdefault(survivor_id, set()).add(row["id"])
        if before_changed:
            changed["duplicatecandidate"] = before_changed
        if before_deleted:
            deleted["duplicatecandidate"] = before_deleted
        snapshot.update(moved=moved, deleted=deleted, changed=changed)
        # The survivor and the merged lead after this step.
        final = dict(values)
        final.update(name_key=keys.at[number, "name_key"], company_key=keys.at[number, "company_key"],
                     search_text=keys.at[number, "search_text"], updated_at=now, scored_at=now)
        sums[survivor_id] = {c: sums[survivor_id][c] + sums[merged_id][c] for c in ("fit", "engagement")}
        final.update(fit_score=sums[survivor_id]["fit"], engagement_score=sums[survivor_id]["engagement"])
        current[survivor_id] = {**survivor, **{k: _encode(v) for k, v in final.items()},
                                "version": survivor["version"] + 1}
        current[merged_id] = {**merged, "status": LeadStatus.MERGED, "merged_into_id": survivor_id,
                              "updated_at": _encode(now), "followup_lead_id": None, "followup_owner_id": None,
                              "version": merged["version"] + 1}
        records.append({"survivor_id": survivor_id, "merged_id": merged_id, "snapshot": snapshot,
                        "automatic": automatic, "score": score, "merged_by_id": actor.id or None,
                        "merged_at": now})

    # Writes: a few statements per table, whatever the number of merges (IN lists and CASE maps in chunks,
    # executemany for rows that each get their own values).
    for table_name, rows in deletes.items():
        table = next(t for t, _ in _references() if t.name == table_name)
        pk = _pk(table)
        keys = [tuple(row[c] for c in pk) for row in rows]
        for chunk in _chunks(keys):
            session.execute(delete(table).where(tuple_(*[table.c[c] for c in pk]).in_(chunk)))
    for table, column in _references():
        label = f"{table.name}.{column}"
        mapping = repoint.get(label)
        if not mapping:
            continue
        if table.name in composite:
            # Rows both leads had are gone (above); every other row of a merged lead moves to its survivor.
            _repoint(session, table, column, {merged_id: survivor_id
                                              for (merged_id, _), survivor_id in mapping.items()})  # type: ignore[misc]
            continue
        if table.name == "enrollment" and exits:
            for chunk in _chunks(sorted(exits)):
                session.execute(update(table).where(table.c.id.in_(chunk)).values(
                    status=EnrollmentStatus.EXITED, finished_at=now, last_error="merged into another lead"))
        _repoint(session, table, column, mapping)
    follow_moves = {m: s for s, m, _ in merges}
    _repoint(session, LEAD_TABLE, "followup_lead_id", follow_moves)
    if merged_into_moves:
        _repoint(session, LEAD_TABLE, "merged_into_id", merged_into_moves)
    gone = [k for k in original_candidates if k not in candidates]
    for chunk in _chunks(gone):
        session.execute(delete(candidate_table).where(candidate_table.c.id.in_(chunk)))
    changed_candidates = [
        {"c_id": k, "left_id": row["left_id"], "right_id": row["right_id"], "status": row["status"],
         "decided_at": _decode(row["decided_at"])}
        for k, row in candidates.items() if k in original_candidates and row != original_candidates[k]]
    if changed_candidates:
        session.execute(update(candidate_table).where(candidate_table.c.id == bindparam("c_id")),
                        changed_candidates)
    # Every lead in one executemany, each only if nobody changed it since it was read (optimistic locking).
    lead_rows = []
    for lead_id in involved:
        values = {k: _decode(v) for k, v in current[lead_id].items() if k != "id"}
        lead_rows.append({**values, "l_id": lead_id, "l_version": original_version[lead_id]})
    result = session.execute(update(LEAD_TABLE).where(LEAD_TABLE.c.id == bindparam("l_id"),
                                                      LEAD_TABLE.c.version == bindparam("l_version")), lead_rows)
    if result.rowcount != len(lead_rows):
        raise ConcurrentUpdate("Someone else changed this lead just now.",
                               detail=",".join(f"#{i}" for i in involved[:5]))
    session.execute(insert(MergeRecord.__table__), records)  # type: ignore[attr-defined]
    audit.record(session, actor_id=actor.id or None, action="dedup.merge", entity="lead",
                 entity_id=",".join(str(s) for s in survivors)[:64],
                 detail={"automatic": automatic, "merges": [[s, m] for s, m, _ in merges][:1000],
                         "count": len(merges)}, now=now)
    session.flush()
    assert merged_set  # every merged lead was written above
    return len(merges)
