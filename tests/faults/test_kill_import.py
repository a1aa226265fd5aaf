"""A process killed in the middle of an import: nothing of the batch is left, and the same file imports again.

``python -m core import`` runs as a child process on a 20,000-row file and is killed with SIGKILL three quarters
of the way through (timed by a dry run of the same file), while it writes — as when the machine loses power. On the restart the database holds no trace of the batch
(no batch, leads, touchpoints or raw rows), and importing the same file again works: it is not mistaken for
a file already imported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlmodel import Session

from bench.import_bench import messy_file, people
from db.models import Channel, ImportBatch, ImportRow, Lead, Touchpoint

ROOT = Path(__file__).resolve().parents[2]
ROWS = 20_000


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(session.scalar(select(func.count()).select_from(table)) or 0
                 for table in (Lead, Touchpoint, ImportBatch, ImportRow))


def test_an_import_killed_midway_leaves_nothing_and_the_file_imports_again(engine, tmp_path):
    with Session(engine) as session:
        session.add(Channel(name="展会", kind="tradeshow"))
        session.commit()
        before = _counts(session)
    rng = np.random.default_rng(11)
    data, _ = messy_file(ROWS, people(ROWS // 4, rng), rng)
    path = tmp_path / "展会名单.csv"
    path.write_bytes(data)
    url = engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "core", "import", str(path), "--channel", "展会", "--json"]

    # A dry run does the whole batch and rolls it back: its duration tells when the real run is writing.
    started = time.perf_counter()
    dry = subprocess.run([*command, "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert dry.returncode == 0, dry.stderr
    full = time.perf_counter() - started

    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.75 * full)  # past reading and planning: the batch is being written
    assert child.poll() is None, "the import finished before the kill: make the file larger for this machine"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)

    with Session(engine) as session:
        assert _counts(session) == before, "a killed import leaves no batch, lead, touchpoint or raw row"

    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert not summary["already_imported"] and summary["rows"] == ROWS
    with Session(engine) as session:
        assert _counts(session)[3] == before[3] + ROWS, "every raw row of the file kept once"
