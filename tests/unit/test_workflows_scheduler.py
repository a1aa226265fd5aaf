"""The scheduler and crash safety with real processes: a worker killed mid-tick, two workers against one database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from core import scheduler
from core.auth import SYSTEM
from core.clock import utcnow
from core.settings import set_setting
from core.workflows import activate_workflow, create_workflow, enroll_leads
from db.models import Enrollment, JobRun, Lead, Message, StepRun
from tests.conftest import RecordingSmtp, running_smtp

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


class SlowSmtp(RecordingSmtp):
    """A real SMTP server that takes a little time per message, so a test can kill a sender mid-run."""

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802, ANN201
        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp() -> Iterator[tuple[str, int, SlowSmtp]]:
    yield from running_smtp(SlowSmtp())  # type: ignore[misc]


def _url(engine) -> str:  # noqa: ANN001
    return engine.url.render_as_string(hide_password=False)


def _env(engine) -> dict[str, str]:  # noqa: ANN001
    return {**os.environ, "DATABASE_URL": _url(engine), "PYTHONPATH": str(ROOT), "LEADLOOP_SCHEDULER": "off"}


def _mail_workflow(session: Session, n: int, now: datetime, host: str, port: int) -> list[int]:
    set_setting(session, "smtp", {"host": host, "port": port, "security": "none", "sender": "mkt@example.cn"})
    leads = [Lead(name=f"客户{i}", email=f"c{i}@example.cn") for i in range(n)]
    session.add_all(leads)
    session.commit()
    wf = create_workflow(session=session, actor=SYSTEM, now=now, name="群发", definition={"start": "mail", "steps": {
        "mail": {"type": "send_email", "subject": "你好 {name}", "body": "内容", "next": "end"},
        "end": {"type": "end"}}})
    activate_workflow(session=session, actor=SYSTEM, now=now, workflow_id=wf.id)
    enroll_leads(session=session, actor=SYSTEM, now=now, workflow_id=wf.id, lead_ids=[int(x.id) for x in leads])
    session.commit()
    return [int(x.id) for x in leads]


def test_jobs_are_wired_with_coalesce_and_a_single_instance(sqlite_engine):
    sched = scheduler.build_scheduler(sqlite_engine, "test")
    jobs = {job.id: job for job in sched.get_jobs()}
    assert {"workflow_tick", "sla_check", "dedup_scan", "accounts_refresh", "lease"} <= set(jobs)
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time >= 60


def test_only_one_holder_leads_until_its_lease_expires(session):
    now = T0
    assert scheduler.acquire_lease(session=session, holder="a", now=now)
    assert not scheduler.acquire_lease(session=session, holder="b", now=now + timedelta(seconds=10))
    assert scheduler.acquire_lease(session=session, holder="a", now=now + timedelta(seconds=30))  # renewal
    assert scheduler.acquire_lease(session=session, holder="b", now=now + timedelta(seconds=30) + scheduler.LEASE
                                   + timedelta(seconds=1))
    scheduler.release_lease(session=session, holder="b", now=now + timedelta(minutes=5))
    assert scheduler.acquire_lease(session=session, holder="a", now=now + timedelta(minutes=5, seconds=1))


def test_a_job_run_is_recorded_and_the_status_panel_reads_it(engine, session, smtp_server):
    host, port, received = smtp_server
    _mail_workflow(session, 3, T0, host, port)
    assert scheduler.run_job("workflow_tick", engine=engine, holder="h1", now=T0) is not None
    assert scheduler.run_job("workflow_tick", engine=engine, holder="h2", now=T0) is None  # not the leader
    assert len(received.messages) == 3
    panel = scheduler.status(session=session, now=T0)
    assert panel["leader"] == "h1" and panel["last_tick"] == T0 and panel["due_steps"] == 0
    tick = next(j for j in panel["jobs"] if j["job"] == "workflow_tick")
    assert tick["ok"] and tick["summary"]["completed"] == 3 and tick["summary"]["delivered"] == 3


def test_start_in_process_starts_one_scheduler(sqlite_engine, monkeypatch):
    monkeypatch.setenv("LEADLOOP_SCHEDULER", "on")
    first = scheduler.start_in_process(sqlite_engine)
    try:
        assert first is not None and scheduler.start_in_process(sqlite_engine) is first
    finally:
        scheduler.stop_in_process()
    monkeypatch.setenv("LEADLOOP_SCHEDULER", "off")
    assert scheduler.start_in_process(sqlite_engine) is None


def test_a_worker_killed_mid_tick_loses_nothing_and_sends_nothing_twice(engine, session, slow_smtp):
    host, port, received = slow_smtp
    n = 60
    _mail_workflow(session, n, T0, host, port)
    worker = subprocess.Popen([sys.executable, "-m", "core", "tick", "--now", T0.isoformat()], cwd=ROOT,
                              env=_env(engine), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(received.messages) < 15 and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    assert worker.returncode == -signal.SIGKILL
    assert 15 <= len(received.messages) < n
    # Restarted after the claim leases ran out: the rest goes out.
    later = T0 + timedelta(minutes=6)
    rerun = subprocess.run([sys.executable, "-m", "core", "tick", "--now", later.isoformat()], cwd=ROOT,
                           env=_env(engine), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Message)) == n
    assert session.scalar(select(func.count()).select_from(Message).where(Message.status == "sent")) == n
    assert session.scalar(select(func.count()).select_from(StepRun).where(StepRun.step_id == "mail")) == n
    ids = [m["message_id"] for m in received.messages]
    # Every message arrived, each Message-ID once — except at most the one on the wire when the worker died,
    # which SMTP cannot tell apart from a lost one; it is resent with the same Message-ID.
    assert len(set(ids)) == n
    assert len(ids) - len(set(ids)) <= 1


def test_two_worker_processes_one_leader_no_duplicates(engine, session, smtp_server):
    if engine.dialect.name != "postgresql":
        pytest.skip("two worker processes are checked against PostgreSQL")
    host, port, received = smtp_server
    n = 80
    _mail_workflow(session, n, utcnow() - timedelta(seconds=1), host, port)
    workers = [subprocess.Popen([sys.executable, "-m", "core.scheduler", "--scale", "0.02", "--run-for", "7"],
                                cwd=ROOT, env=_env(engine), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(2)]
    for worker in workers:
        worker.wait(60)
        assert worker.returncode == 0, worker.stderr.read().decode()[-2000:]
    session.expire_all()
    holders = set(session.scalars(select(JobRun.holder).where(JobRun.job == "workflow_tick")))
    assert len(holders) == 1
    assert session.scalar(select(func.count()).select_from(JobRun).where(JobRun.job == "workflow_tick")) >= 1
    ids = [m["message_id"] for m in received.messages]
    assert len(ids) == n and len(set(ids)) == n
    assert session.scalar(select(func.count()).select_from(Enrollment).where(Enrollment.status == "completed")) == n


def test_a_worker_killed_between_claim_and_commit_is_taken_over(engine, session, smtp_server):
    host, port, received = smtp_server
    n = 1200
    _mail_workflow(session, n, T0, host, port)
    worker = subprocess.Popen([sys.executable, "-m", "core", "tick", "--now", T0.isoformat()], cwd=ROOT,
                              env=_env(engine), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    running = 0
    deadline = time.monotonic() + 60
    with Session(engine) as watcher:
        # Kill the worker the moment its claim is committed, while it executes the claimed steps.
        while not running and time.monotonic() < deadline and worker.poll() is None:
            running = watcher.scalar(select(func.count()).select_from(Enrollment)
                                     .where(Enrollment.status == "running"))
            watcher.rollback()
            time.sleep(0.005)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    assert running > 0 and worker.returncode == -signal.SIGKILL
    rerun = subprocess.run([sys.executable, "-m", "core", "tick", "--now", (T0 + timedelta(minutes=6)).isoformat()],
                           cwd=ROOT, env=_env(engine), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Enrollment).where(Enrollment.status == "completed")) == n
    assert session.scalar(select(func.count()).select_from(StepRun).where(StepRun.step_id == "mail")) == n
    ids = [m["message_id"] for m in received.messages]
    assert len(set(ids)) == n and len(ids) - n <= 1


def test_every_heartbeat_job_runs_on_an_empty_database(engine):
    for job in scheduler.JOBS:
        record = scheduler.run_job(job.name, engine=engine, holder="h", now=T0)
        assert record is not None and record.ok, (job.name, record.error if record else None)
