"""The heartbeat: APScheduler 3.x runs a few jobs; the work and its state live in the database.

- ``JOBS`` lists the heartbeat jobs (workflow tick, SLA check, score decay + rescore, nightly dedup, account
  refresh); one
  more job is one more line there.
- A lease row (``SchedulerLease`` "scheduler": holder, expires_at) makes one process the leader: every job run
  first renews or takes the lease with one conditional UPDATE, and only the holder runs jobs. A leader that dies
  stops renewing; another process takes over once the lease has expired (``LEASE``).
- Every executed run is a ``JobRun`` row (start, end, ok, summary or error) that the status panel reads.
- ``start_in_process()`` starts one BackgroundScheduler per process (module lock; app.py calls it through
  ``st.cache_resource``); ``python -m core.scheduler`` runs the same jobs as a worker of its own, for
  deployments that turn the in-app scheduler off (``LEADLOOP_SCHEDULER=off``).

APScheduler keeps no job store here: jobs are rebuilt at start from ``JOBS``, so restarts lose nothing (waits are
rows with ``next_run_at``, not scheduler jobs).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from core.clock import utcnow
from db.busy import is_busy, write_later
from db.models import (
    Enrollment,
    EnrollmentStatus,
    JobRun,
    Message,
    MessageStatus,
    SchedulerLease,
    Workflow,
    WorkflowStatus,
)

log = logging.getLogger("leadloop.scheduler")

LEASE_NAME = "scheduler"
LEASE = timedelta(seconds=90)
HEARTBEAT_SECONDS = 20
DELIVERY_ROUNDS = 100


# ---------------------------------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------------------------------
def _workflow_tick(session: Session, now: datetime) -> dict[str, Any]:
    from core.messaging import deliver_due
    from core.workflows import run_due

    report = run_due(session=session, now=now)
    sent = retrying = failed = 0
    # The outbox hands out 1,000 messages per claim; keep going until the due ones are out (bounded, so one
    # tick never runs forever while new messages keep arriving).
    for _ in range(DELIVERY_ROUNDS):
        delivery = deliver_due(session=session, now=now)
        sent, retrying, failed = sent + delivery.sent, retrying + delivery.retrying, failed + delivery.failed
        if not delivery.claimed:
            break
    return {**report.summary(), "delivered": sent, "delivery_retrying": retrying, "delivery_failed": failed}


def _sla_check(session: Session, now: datetime) -> dict[str, Any]:
    from core.routing.sla import check_sla

    # check_sla brings back "not now" leads as well (core.lifecycle.return_due).
    return check_sla(session=session, now=now).summary()


def _score_decay(session: Session, now: datetime) -> dict[str, Any]:
    from core.pipeline import score_and_promote
    from core.scoring import apply_decay

    # Decay, then the full rescore: time-window rules ("3 visits in 30 days") change with time alone, and leads
    # that crossed the MQL line go to sales (the same path as ``python -m core score --decay``).
    decayed = apply_decay(session=session, now=now)
    report, promotion = score_and_promote(session=session, now=now, lead_ids=None)
    return {**report.summary(), "decay_applied": decayed, "promoted": len(promotion.promoted)}


def _dedup_scan(session: Session, now: datetime) -> dict[str, Any]:
    from core.dedup.queue import scan_all

    return dict(scan_all(session=session, now=now))


def _accounts(session: Session, now: datetime) -> dict[str, Any]:
    from core.accounts import refresh_accounts

    return {"accounts": refresh_accounts(session=session, now=now)}


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[Session, datetime], dict[str, Any]]
    seconds: int
    enabled: Callable[[], bool] = lambda: True


JOBS: list[Job] = [
    Job("workflow_tick", _workflow_tick, 60),
    Job("sla_check", _sla_check, 300),
    Job("score_decay", _score_decay, 3600),
    Job("accounts_refresh", _accounts, 3600),
    Job("dedup_scan", _dedup_scan, 86400),
]


# ---------------------------------------------------------------------------------------------------------------
# Leader lease
# ---------------------------------------------------------------------------------------------------------------
def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def acquire_lease(*, session: Session, holder: str, now: datetime, ttl: timedelta = LEASE) -> bool:
    """Take or renew the leader lease; True when ``holder`` is the leader until ``now + ttl``. Commits.

    One conditional UPDATE (holder is me, or the lease has expired) decides; the database serialises two
    processes trying at once, so at most one wins.
    """
    table = SchedulerLease.__table__
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(table).values(name=LEASE_NAME, holder=holder, expires_at=now + ttl, heartbeat_at=now,
                                         info={"since": now.isoformat()})
                    .on_conflict_do_nothing(index_elements=["name"]))
    won = session.execute(
        update(table)
        .where(table.c.name == LEASE_NAME, or_(table.c.holder == holder, table.c.expires_at < now))
        .values(holder=holder, expires_at=now + ttl, heartbeat_at=now)
    ).rowcount
    session.commit()
    return won == 1


def release_lease(*, session: Session, holder: str, now: datetime) -> None:
    """Give the lease up at shutdown so another process can lead at once."""
    table = SchedulerLease.__table__
    session.execute(update(table).where(table.c.name == LEASE_NAME, table.c.holder == holder)
                    .values(expires_at=now))
    session.commit()


def run_job(name: str, *, engine: Engine, holder: str, now: datetime | None = None,
            need_lease: bool = True, patience: float = 0.0) -> JobRun | None:
    """Run one job if this process leads (or ``need_lease`` is False) and record it; None when not the leader.

    On SQLite a large import holds the one write lock for as long as its transaction runs. A job that finds the
    database busy is rolled back (it claims its work atomically, so nothing was half done) and tried again
    every few seconds for up to ``patience`` seconds; the scheduler passes none, since its next beat is the
    retry, and ``python -m core tick`` waits. A job still busy after that is reported, and recorded once the
    lock is free."""
    job = next(j for j in JOBS if j.name == name)
    now = now or utcnow()
    deadline = time.monotonic() + patience
    with Session(engine, expire_on_commit=False) as session:
        try:
            leading = not need_lease or acquire_lease(session=session, holder=holder, now=now)
        except OperationalError as error:  # busy: as if another process led this beat
            session.rollback()
            if not is_busy(error):
                raise
            leading = False
        if not leading:
            return None
        started = utcnow()
        record = JobRun(job=name, holder=holder[:128], started_at=now)
        try:
            summary = _while_busy(session, deadline, lambda: _run_and_commit(job, session, now))
            record.ok, record.summary = True, _jsonable(summary)
        except Exception as error:  # noqa: BLE001 - a failing job is recorded and the heartbeat goes on
            session.rollback()
            record.ok = False
            record.error = f"{type(error).__name__}: {error}"[:2000]
            if is_busy(error):
                log.warning("job %s found the database busy (a large write is running); it runs again at the next "
                            "beat", name)
            else:
                log.error("job %s failed: %s", name, traceback.format_exc())
        record.finished_at = now + (utcnow() - started)
        kept = JobRun(**record.model_dump(exclude={"id"}))
        try:
            _while_busy(session, deadline, lambda: _add_and_commit(session, record))
        except OperationalError as error:
            if not is_busy(error):
                raise
            write_later(engine, lambda later: later.add(kept), what=f"the record of job {name}")
        return record


def _run_and_commit(job: Job, session: Session, now: datetime) -> Any:
    summary = job.run(session, now)
    session.commit()
    return summary


def _add_and_commit(session: Session, record: JobRun) -> None:
    session.add(record)
    session.commit()


def _while_busy(session: Session, deadline: float, attempt: Callable[[], Any]) -> Any:
    """``attempt()``; while SQLite says busy and ``deadline`` (monotonic) is ahead, roll back, pause and try again.
    The last error is raised."""
    while True:
        try:
            return attempt()
        except OperationalError as error:
            session.rollback()
            if not is_busy(error) or time.monotonic() >= deadline:
                raise
            time.sleep(_BUSY_PAUSE)


_BUSY_PAUSE = 2.0  # seconds between tries of a job that found SQLite busy


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# The APScheduler wiring
# ---------------------------------------------------------------------------------------------------------------
_JOB_OPTIONS: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 600}


def build_scheduler(engine: Engine, holder: str, *, scale: float = 1.0) -> Any:
    """A BackgroundScheduler with the heartbeat jobs (intervals multiplied by ``scale``, for tests and demos)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(
        timezone=UTC,
        # coalesce: after a pause many missed runs become one; max_instances=1: a slow tick is never overlapped;
        # a generous grace time so a busy machine still runs a late heartbeat instead of skipping it.
        job_defaults=_JOB_OPTIONS,
    )
    for job in JOBS:
        if not job.enabled():
            continue
        scheduler.add_job(run_job, "interval", seconds=max(job.seconds * scale, 0.5), id=job.name, name=job.name,
                          kwargs={"name": job.name, "engine": engine, "holder": holder},
                          next_run_time=datetime.now(UTC) + timedelta(seconds=min(5, job.seconds * scale)),
                          **_JOB_OPTIONS)
    # The lease is renewed between long job intervals too, so the leader keeps it while idle.
    scheduler.add_job(_heartbeat, "interval", seconds=max(HEARTBEAT_SECONDS * scale, 0.5), id="lease",
                      kwargs={"engine": engine, "holder": holder}, next_run_time=datetime.now(UTC), **_JOB_OPTIONS)
    return scheduler


def _heartbeat(*, engine: Engine, holder: str) -> None:
    with Session(engine) as session:
        acquire_lease(session=session, holder=holder, now=utcnow())


_lock = threading.Lock()
_running: dict[str, Any] = {}


def start_in_process(engine: Engine | None = None) -> Any:
    """Start this process's scheduler once (a second call returns the running one); None when turned off."""
    if os.environ.get("LEADLOOP_SCHEDULER", "on").lower() in ("off", "0", "false", "no"):
        return None
    with _lock:
        if "scheduler" in _running:
            return _running["scheduler"]
        from db.engine import get_engine

        engine = engine or get_engine()
        holder = default_holder()
        scheduler = build_scheduler(engine, holder)
        scheduler.start()
        _running.update(scheduler=scheduler, holder=holder, engine=engine)
        return scheduler


def stop_in_process() -> None:
    with _lock:
        scheduler = _running.pop("scheduler", None)
        if scheduler is not None:
            scheduler.shutdown(wait=True)
            with Session(_running["engine"]) as session:
                release_lease(session=session, holder=_running["holder"], now=utcnow())
        _running.clear()


# ---------------------------------------------------------------------------------------------------------------
# Status panel
# ---------------------------------------------------------------------------------------------------------------
def status(*, session: Session, now: datetime) -> dict[str, Any]:
    """Leader, last run of each job, due and waiting steps, failures — one small query each."""
    lease = session.get(SchedulerLease, LEASE_NAME)
    latest = (select(JobRun.job, func.max(JobRun.id).label("id")).group_by(JobRun.job).subquery())
    runs = session.execute(
        select(JobRun.job, JobRun.holder, JobRun.started_at, JobRun.finished_at, JobRun.ok, JobRun.summary,
               JobRun.error).join(latest, latest.c.id == JobRun.id).order_by(JobRun.job)
    ).all()
    active = select(Workflow.id).where(Workflow.status == WorkflowStatus.ACTIVE)

    def count(*where: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(Enrollment).where(*where)) or 0)

    return {
        "leader": lease.holder if lease is not None and lease.expires_at > now else None,
        "lease_expires_at": lease.expires_at if lease is not None else None,
        "heartbeat_at": lease.heartbeat_at if lease is not None else None,
        "jobs": [r._asdict() for r in runs],
        "last_tick": next((r.started_at for r in runs if r.job == "workflow_tick"), None),
        "due_steps": count(Enrollment.status == EnrollmentStatus.ACTIVE, Enrollment.next_run_at <= now,
                           Enrollment.workflow_id.in_(active)),
        "waiting": count(Enrollment.status == EnrollmentStatus.ACTIVE, Enrollment.next_run_at > now),
        "running": count(Enrollment.status == EnrollmentStatus.RUNNING),
        "failed_enrollments": count(Enrollment.status == EnrollmentStatus.FAILED),
        "queued_messages": int(session.scalar(select(func.count()).select_from(Message).where(
            Message.status.in_([MessageStatus.QUEUED, MessageStatus.SENDING]))) or 0),
        "failed_messages": int(session.scalar(select(func.count()).select_from(Message).where(
            Message.status == MessageStatus.FAILED)) or 0),
        "failed_jobs": [r._asdict() for r in runs if not r.ok],
    }


# ---------------------------------------------------------------------------------------------------------------
# ``python -m core.scheduler``: the worker
# ---------------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.scheduler", description="LeadLoop scheduler worker")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every job interval (e.g. 0.02 in tests)")
    parser.add_argument("--run-for", type=float, default=0, help="stop after this many seconds (0: run until killed)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from core.commands import ready_engine

    engine = ready_engine()
    holder = default_holder()
    scheduler = build_scheduler(engine, holder, scale=args.scale)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    scheduler.start()
    log.info("scheduler worker %s started", holder)
    deadline = time.monotonic() + args.run_for if args.run_for else None
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        stop.wait(0.2)
    scheduler.shutdown(wait=True)
    with Session(engine) as session:
        release_lease(session=session, holder=holder, now=utcnow())
    log.info("scheduler worker %s stopped", holder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
