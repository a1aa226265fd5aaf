"""Dedup speed: a full scan of 100,000 stored leads and a batch of 1,000 new leads against them.

    python -m bench.dedup_bench [--leads N] [--batch N] [--scan-target S] [--batch-target S]

Builds its own data (the labelled generator of ``bench.dedup_data``: about a third of the people written two or
three times) in a temporary SQLite database, in the stored form the import writes (E.164 phones, normalized
emails, name and company keys). Timed, as the product runs them:

- the nightly scan's search: load the valid leads (one statement) and find and score every candidate pair;
- the check after an import: load the base and find and score the pairs that involve the 1,000 new leads.

Prints the candidate-pair counts (they show whether blocking works) and what the pairs would become (automatic
merges, review queue). Acting on the batch's pairs (automatic merges with their undo snapshots, the review queue)
is timed and printed as information. Then the review page's bulk action: 1,000 pairs of the scan's review band,
their leads holding touchpoints and tags, merged at once (``bulk_merge``, target < 5 s). Wall-clock times decide; the process CPU time is
printed beside them, since a shared machine's load shows in the first and not in the second. Last line:
``PASS …`` or ``FAIL …``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import insert, select
from sqlmodel import Session

from bench.dedup_data import labelled_leads
from core import normalize
from core.auth import SYSTEM
from core.dedup.engine import find_duplicates
from core.dedup.queue import bulk_merge, lead_frame, process_pairs, thresholds
from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.models import DuplicateCandidate, Lead, LeadStatus, LeadTag, Tag, Touchpoint

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def stored_rows(frame: pd.DataFrame, first_id: int) -> list[dict]:
    """Leads as the import stores them."""
    keys = normalize.lead_keys(frame)
    phone = normalize.phone_e164(frame["phone"])
    email = normalize.email_normalize(frame["email"])
    rows = []
    for k, (index, row) in enumerate(frame.iterrows()):
        created = NOW - timedelta(days=400) + timedelta(seconds=int(index) * 300)
        rows.append({
            "id": first_id + k, "name": row["name"], "email": email[index], "phone": phone[index],
            "wechat_id": row["wechat_id"], "company": row["company"], "title": row["title"], "city": row["city"],
            "name_key": keys.at[index, "name_key"], "company_key": keys.at[index, "company_key"],
            "search_text": keys.at[index, "search_text"], "status": "valid", "stage": "new",
            "created_at": created, "updated_at": created, "attributes": {}, "version": 1,
        })
    for row in rows:
        for name, value in row.items():
            if not isinstance(value, str) and value is not None and pd.isna(value):
                row[name] = None
    return rows


def load(engine, rows: list[dict]) -> None:  # noqa: ANN001
    with engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            connection.execute(insert(Lead), rows[start:start + 5000])


def review_queue(session: Session, pairs: pd.DataFrame, *, auto: float, review: float, count: int) -> list[int]:
    """``count`` pending review pairs from the scan's review band, among leads still valid, whose leads get three
    touchpoints and a tag each (so a merge has rows to move and tags that clash). Returns the candidate ids."""
    band = pairs[(pairs["score"] >= review) & (pairs["score"] < auto)]
    valid = set(session.scalars(select(Lead.id).where(Lead.status == LeadStatus.VALID)))
    band = band[band["left"].isin(valid) & band["right"].isin(valid)].head(count)
    leads = sorted(set(band["left"]) | set(band["right"]))
    tags = [Tag(name=f"bench {k}") for k in range(3)]
    session.add_all(tags)
    session.flush()
    session.execute(insert(Touchpoint), [
        {"lead_id": lead_id, "kind": "page_view", "occurred_at": NOW - timedelta(days=k + 1), "properties": {},
         "natural_key": f"bench-{lead_id}-{k}", "created_at": NOW} for lead_id in leads for k in range(3)])
    session.execute(insert(LeadTag), [{"lead_id": lead_id, "tag_id": tags[lead_id % 3].id, "source": "manual",
                                       "created_at": NOW} for lead_id in leads])
    rows = [{"left_id": int(a), "right_id": int(b), "score": float(s), "reasons": list(r), "status": "pending",
             "created_at": NOW} for a, b, s, r in zip(band["left"], band["right"], band["score"], band["reasons"],
                                                     strict=True)]
    session.execute(insert(DuplicateCandidate), rows)
    session.commit()
    return list(session.scalars(select(DuplicateCandidate.id).where(DuplicateCandidate.status == "pending")
                                .order_by(DuplicateCandidate.score.desc()).limit(count)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dedup_bench")
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--scan-target", type=float, default=30.0, help="seconds")
    parser.add_argument("--batch-target", type=float, default=2.0, help="seconds")
    parser.add_argument("--merge-pairs", type=int, default=1_000)
    parser.add_argument("--merge-target", type=float, default=5.0, help="seconds")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    people = int((args.leads + args.batch) / 1.36) + 500
    data = labelled_leads(people, seed=11)
    while len(data) < args.leads + args.batch:
        people = int(people * 1.05)
        data = labelled_leads(people, seed=11)
    base, batch = data.iloc[:args.leads], data.iloc[args.leads:args.leads + args.batch]
    print(f"generated {len(base):,} leads + a batch of {len(batch):,} in {time.perf_counter() - started:.1f} s")

    with tempfile.TemporaryDirectory(prefix="leadloop-dedup-bench-") as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        try:
            upgrade_to_head(engine)
            load(engine, stored_rows(base, 1))
            with Session(engine) as session:
                auto, review = thresholds(session)
                t0, c0 = time.perf_counter(), time.process_time()
                frame = lead_frame(session)
                t1 = time.perf_counter()
                pairs = find_duplicates(frame, min_score=review)
                scan, scan_cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"full scan of {len(frame):,} leads: {scan:.1f} s (loading {t1 - t0:.1f} s; CPU {scan_cpu:.1f} s), "
                  f"{pairs.attrs['candidate_pairs']:,} candidate pairs compared "
                  f"({pairs.attrs['candidate_pairs'] / max(1, len(frame)):.1f} per lead; all against all would be "
                  f"{len(frame) * (len(frame) - 1) // 2:,})")
            print(f"  {int((pairs['score'] >= auto).sum()):,} pairs to merge automatically, "
                  f"{int(((pairs['score'] >= review) & (pairs['score'] < auto)).sum()):,} for review")

            load(engine, stored_rows(batch, args.leads + 1))
            batch_ids = list(range(args.leads + 1, args.leads + 1 + len(batch)))
            with Session(engine) as session:
                t0, c0 = time.perf_counter(), time.process_time()
                frame = lead_frame(session)
                t1 = time.perf_counter()
                found = find_duplicates(frame, only=batch_ids, min_score=review)
                check, check_cpu = time.perf_counter() - t0, time.process_time() - c0
                print(f"batch of {len(batch):,} against {args.leads:,}: {check:.2f} s (loading {t1 - t0:.2f} s; "
                      f"CPU {check_cpu:.2f} s), "
                      f"{found.attrs['candidate_pairs']:,} candidate pairs compared")
                print(f"  {int((found['score'] >= auto).sum()):,} pairs to merge automatically, "
                      f"{int(((found['score'] >= review) & (found['score'] < auto)).sum()):,} for review")
                t0 = time.perf_counter()
                summary = process_pairs(session=session, pairs=found, now=NOW, new_ids=batch_ids)
                session.commit()
                print(f"  acting on them (information): {summary['merged']} merges, {summary['queued']} queued, "
                      f"{summary['flagged']} flagged in {time.perf_counter() - t0:.1f} s")
            with Session(engine) as session:
                ids = review_queue(session, pairs, auto=auto, review=review, count=args.merge_pairs)
                t0, c0 = time.perf_counter(), time.process_time()
                merged = bulk_merge(session=session, actor=SYSTEM, candidate_ids=ids, now=NOW)
                session.commit()
                bulk, bulk_cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"bulk merge of {len(ids):,} review pairs (leads with touchpoints and tags): {merged:,} merges in "
                  f"{bulk:.2f} s (CPU {bulk_cpu:.2f} s)")
        finally:
            engine.dispose()

    ok = scan < args.scan_target and check < args.batch_target and bulk < args.merge_target
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict} dedup full scan {scan:.1f} s (target < {args.scan_target:g} s), batch {check:.2f} s "
          f"(target < {args.batch_target:g} s), bulk merge of {len(ids):,} pairs {bulk:.2f} s "
          f"(target < {args.merge_target:g} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
