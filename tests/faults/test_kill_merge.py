"""A process killed in the middle of a bulk merge: the database is as before, and the merge can be redone.

The merge runs in a child process against the same database file (or PostgreSQL database) and is killed with
SIGKILL — no cleanup, no rollback handler, as when a machine loses power or an operator kills the app.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlmodel import Session

from core.auth import SYSTEM
from core.dedup import bulk_merge
from db.models import CandidateStatus, DuplicateCandidate, Lead, LeadStatus, MergeRecord

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
PAIRS = 3000  # a set-based bulk merge is quick: enough pairs that the kill lands inside it

CHILD = """
import sys
from datetime import datetime, UTC
from sqlalchemy import select
from sqlmodel import Session
from core.auth import SYSTEM
from core.dedup import bulk_merge
from db.engine import make_engine
from db.models import DuplicateCandidate

engine = make_engine(sys.argv[1])
with Session(engine) as session:
    ids = list(session.scalars(select(DuplicateCandidate.id)))
    print("begin", flush=True)
    bulk_merge(session=session, actor=SYSTEM, candidate_ids=ids, now=datetime(2026, 11, 2, 2, 0, tzinfo=UTC))
    session.commit()
print("done", flush=True)
"""


def _pairs(session: Session) -> None:
    """PAIRS pairs of the same person (one with an email, one with the phone), queued for review."""
    created = NOW - timedelta(days=10)
    rows = []
    for k in range(PAIRS):
        phone = f"+86139{k:08d}"
        base = {"company": f"测试科技{k}有限公司", "company_key": f"测试科技{k}", "name_key": "zhangwei",
                "created_at": created, "updated_at": created, "search_text": "zhangwei"}
        rows.append({**base, "name": "张伟", "email": f"zw{k}@example.cn"})
        rows.append({**base, "name": "Zhang Wei", "phone": phone})
    session.execute(insert(Lead), rows)
    ids = list(session.scalars(select(Lead.id).order_by(Lead.id)))
    session.execute(insert(DuplicateCandidate), [
        {"left_id": ids[2 * k], "right_id": ids[2 * k + 1], "score": 0.9, "reasons": ["name", "company"],
         "status": CandidateStatus.PENDING, "created_at": created} for k in range(PAIRS)
    ])
    session.commit()


def _state(session: Session) -> tuple[int, int, int]:
    merged = session.scalar(select(func.count()).where(Lead.status == LeadStatus.MERGED))
    records = session.scalar(select(func.count()).select_from(MergeRecord))
    pending = session.scalar(select(func.count()).where(DuplicateCandidate.status == CandidateStatus.PENDING))
    return merged, records, pending


def test_a_merge_killed_midway_leaves_nothing_half_done_and_can_be_redone(engine):
    with Session(engine) as session:
        _pairs(session)
    url = engine.url.render_as_string(hide_password=False)
    child = subprocess.Popen([sys.executable, "-c", CHILD, url], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "begin"
    time.sleep(0.5)  # well inside the batch: the merges are running, nothing is committed
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    rest = child.stdout.read()
    assert "done" not in rest, "the batch finished before the kill: make it larger for this machine"

    with Session(engine) as session:
        assert _state(session) == (0, 0, PAIRS), "all or nothing: a killed batch leaves no trace"
        ids = list(session.scalars(select(DuplicateCandidate.id)))
        assert bulk_merge(session=session, actor=SYSTEM, candidate_ids=ids, now=NOW) == PAIRS
        session.commit()
        assert _state(session) == (PAIRS, PAIRS, 0), "redone after the restart, every pair exactly once"
