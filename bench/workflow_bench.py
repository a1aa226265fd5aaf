"""A workflow tick at volume: 10,000 enrollments due at once, each sending an email (merge fields, unsubscribe
footer) and entering a wait — then the outbox delivered to a real SMTP server (aiosmtpd) on 127.0.0.1.

Run: ``python -m bench.workflow_bench``. Builds a temporary SQLite database (or uses ``BENCH_DATABASE_URL``),
prints the figures, then one PASS/FAIL line for the target: the tick (``run_due``: claim, execute, commit)
advancing 10,000 due enrollments in under 5 s. Delivery through SMTP is timed and printed too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlmodel import Session

from core.auth import SYSTEM
from core.messaging import deliver_due
from core.settings import set_setting
from core.workflows import activate_workflow, create_workflow, run_due
from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.models import Enrollment, Lead, Message, StepRun

ENROLLMENTS = 10_000
TARGET_S = 5.0
NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


# The SMTP server runs in its own process (as a local mail relay would), counting what it accepts into a file.
_SERVER = """
import sys, time
from aiosmtpd.controller import Controller
class Counter:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Counter.count += 1
        return "250 OK"
controller = Controller(Counter(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
try:
    for line in sys.stdin:
        print(Counter.count, flush=True)
finally:
    controller.stop()
"""


class _SmtpProcess:
    def __init__(self, port: int) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", _SERVER, str(port)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "ready"

    @property
    def count(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("?\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def build(engine, port: int) -> None:  # noqa: ANN001
    with Session(engine) as session:
        set_setting(session, "smtp", {"host": "127.0.0.1", "port": port, "security": "none",
                                      "sender": "bench@example.cn"})
        set_setting(session, "workflows", {"unsubscribe_text": "退订："})
        session.connection().execute(insert(Lead.__table__), [
            {"name": f"客户{i}", "email": f"c{i}@example.cn", "company": f"公司{i % 500}", "stage": "new",
             "status": "valid", "unsubscribed": False, "fit_score": 0, "engagement_score": 0, "is_customer": False,
             "attributes": {}, "search_text": "", "version": 1, "is_demo": False, "created_at": NOW,
             "updated_at": NOW} for i in range(ENROLLMENTS)])
        wf = create_workflow(session=session, actor=SYSTEM, now=NOW, name="bench", definition={
            "start": "mail", "steps": {
                "mail": {"type": "send_email", "subject": "{name}，您好", "body": "{company} 的资料", "next": "wait"},
                "wait": {"type": "wait", "days": 3, "next": "end"}, "end": {"type": "end"}}})
        activate_workflow(session=session, actor=SYSTEM, now=NOW, workflow_id=wf.id)
        lead_ids = list(session.scalars(select(Lead.id)))
        session.connection().execute(insert(Enrollment.__table__), [
            {"workflow_id": wf.id, "lead_id": lead, "workflow_version": 1, "status": "active", "next_run_at": NOW,
             "attempts": 0, "entered_at": NOW} for lead in lead_ids])
        session.commit()


def main() -> int:
    from tests.conftest import free_port

    port = free_port()
    counter = _SmtpProcess(port)
    folder = tempfile.mkdtemp(prefix="workflow-bench-")
    url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{Path(folder) / 'bench.db'}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    try:
        started = time.perf_counter()
        build(engine, port)
        print(f"built {ENROLLMENTS:,} leads and due enrollments in {time.perf_counter() - started:.1f} s "
              f"({engine.dialect.name})")
        with Session(engine, expire_on_commit=False) as session:
            started = time.perf_counter()
            report = run_due(session=session, now=NOW)
            tick_s = time.perf_counter() - started
            print(f"tick: claimed {report.claimed:,}, steps {report.steps:,}, messages {report.messages:,}, "
                  f"waiting {report.waiting:,}, failed {report.failed} in {tick_s:.2f} s "
                  f"({report.claimed / tick_s:,.0f} enrollments/s)")
            started = time.perf_counter()
            delivered = 0
            while True:
                sent = deliver_due(session=session, now=NOW, limit=5000)
                delivered += sent.sent
                if not sent.claimed:
                    break
            deliver_s = time.perf_counter() - started
            received = counter.count
            print(f"delivery: {delivered:,} emails to the local SMTP server in {deliver_s:.2f} s "
                  f"({delivered / max(deliver_s, 1e-9):,.0f}/s); server received {received:,}")
            steps = session.scalar(select(func.count()).select_from(StepRun))
            messages = session.scalar(select(func.count()).select_from(Message))
            print(f"rows: {steps:,} step runs, {messages:,} messages")
            again = run_due(session=session, now=NOW + timedelta(seconds=1))
            print(f"rerun at the same moment: claimed {again.claimed}")
        print("(2 shared cores; timings are noisy)")
        ok = (report.claimed == ENROLLMENTS and report.waiting == ENROLLMENTS and received == ENROLLMENTS
              and tick_s < TARGET_S)
        verdict = "PASS" if ok else "FAIL"
        print(f"{verdict} workflow tick advancing {report.claimed:,} due enrollments: {tick_s:.2f} s "
              f"(target < {TARGET_S:.0f} s; SMTP delivery of all {received:,} took {deliver_s:.2f} s)")
        return 0 if ok else 1
    finally:
        counter.stop()
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
