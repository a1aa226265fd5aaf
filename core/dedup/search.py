"""An import's duplicate pairs, found in a helper process while the import writes its batch.

A large import spends seconds writing leads, touchpoints and raw rows, and seconds comparing its leads with the
base; one after the other, on one core, those add up. The comparison needs only the leads' compared columns, so:

1. when a large file has been read, ``PairSearch.start`` launches ``python -m core.dedup.search``, which reads
   the committed base (``lead_frame``) through a connection of its own while the import plans;
2. just before writing, the import sends what the batch will change: its new valid leads and the compared
   values of matched leads it fills (``PairSearch.send``);
3. the helper compares them with the base as the batch leaves it (``find_duplicates``) while the import writes
   leads, touchpoints and raw rows, then returns the pairs (``PairSearch.result``);
4. the import acts on them in its own transaction, exactly as after comparing in process
   (``check_new_leads(found=…)``, which also drops pairs whose lead another user merged meanwhile).

The helper has a second core to itself while the import plans, so it also derives the new leads' keys (pinyin
name key, company key, search text) when it has read the base before the plan is done (``ready``,
``request_keys``, ``keys``): the import meanwhile compares the file with the matched leads, and writes the keys
it gets back.

The helper only reads. An in-memory database, a small batch or any failure of the helper (it is killed, it
cannot connect, it answers nothing) means the import derives the keys and compares in process, as it always
could.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import pandas as pd
from sqlalchemy.engine import URL, Engine, make_url
from sqlmodel import Session

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
MIN_ROWS = 5_000  # below this many rows the helper's start-up costs more than comparing in process
_WAIT_SECONDS = 1800.0
_READY = b"R"  # the helper's first byte: it has read the base and takes requests
READY_WAIT = 0.0  # seconds a planned import waits for the helper to be ready (else it derives the keys itself)


def _shareable(engine: Engine) -> bool:
    """Whether another process can open the same database (a file or a server, not memory)."""
    url = engine.url
    if url.get_backend_name() != "sqlite":
        return True
    database = url.database or ""
    return bool(database) and database != ":memory:" and "mode=memory" not in str(url)


def _absolute(url: URL) -> URL:
    """The URL with a relative SQLite path made absolute: the helper runs in another working directory."""
    if url.get_backend_name() == "sqlite" and url.database and not os.path.isabs(url.database):
        return url.set(database=os.path.abspath(url.database))
    return url


class PairSearch:
    """One helper process finding the pairs of one import batch."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._sender: threading.Thread | None = None
        self._ready = False

    @classmethod
    def start(cls, engine: Engine, *, min_score: float, rows: int) -> PairSearch | None:
        """Launch the helper for a batch of ``rows`` rows; None when comparing in process is the better way."""
        if rows < MIN_ROWS or not _shareable(engine):
            return None
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                                   os.environ.get("PYTHONPATH")]))}
        try:
            process = subprocess.Popen([sys.executable, "-m", "core.dedup.search"], cwd=ROOT, env=environment,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert process.stdin is not None
            # The address goes through the pipe, not the command line, where other users could read a password.
            pickle.dump({"url": _absolute(engine.url).render_as_string(hide_password=False),
                         "min_score": float(min_score)}, process.stdin)
            process.stdin.flush()
        except (OSError, ValueError) as error:
            log.warning("comparing the import in process: the helper did not start (%s)", error)
            return None
        return cls(process)

    def ready(self, wait: float | None = None) -> bool:
        """Whether the helper has read the base and takes requests (waiting up to ``wait`` seconds to know,
        ``READY_WAIT`` by default)."""
        wait = READY_WAIT if wait is None else wait
        stdout = self._process.stdout
        if not self._ready and stdout is not None:
            try:
                readable, _, _ = select.select([stdout], [], [], wait)
                # The helper writes nothing after its first byte until it is asked: nothing is read ahead here.
                self._ready = bool(readable) and stdout.read(1) == _READY
            except (OSError, ValueError):  # no select on pipes (Windows), or the pipe is gone
                return False
        return self._ready

    def request_keys(self, identity: pd.DataFrame) -> bool:
        """Ask the ready helper for ``lead_keys(identity, normalized=True)``; False when it cannot take it."""
        stdin = self._process.stdin
        if not self._ready or stdin is None:
            return False
        try:
            pickle.dump({"keys": identity}, stdin, protocol=pickle.HIGHEST_PROTOCOL)
            stdin.flush()
        except (OSError, ValueError, pickle.PicklingError, TypeError) as error:
            log.warning("deriving the keys in process: %s", error)
            return False
        return True

    def keys(self) -> pd.DataFrame | None:
        """The keys asked for with ``request_keys``, or None when the helper failed (it is stopped then)."""
        try:
            keys = pickle.load(self._process.stdout)  # type: ignore[arg-type]
        except (OSError, ValueError, EOFError, pickle.UnpicklingError) as error:
            log.warning("deriving the keys in process: no answer from the helper (%s)", error)
            self.stop()
            return None
        return keys if isinstance(keys, pd.DataFrame) else None

    def send(self, *, new: pd.DataFrame, changed: pd.DataFrame, only: list[int]) -> bool:
        """What the batch is about to write: ``new`` valid leads and the ``changed`` compared values of matched
        leads (both indexed by lead id, with the compared columns), and ``only``, the ids to compare.

        Written by a thread: the helper takes it once it has read the base, and the import goes on writing."""
        try:
            payload = pickle.dumps({"new": new, "changed": changed, "only": only}, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError) as error:
            log.warning("comparing the import in process: %s", error)
            self.stop()
            return False
        self._sender = threading.Thread(target=self._write, args=(payload,), name="pair-search-send", daemon=True)
        self._sender.start()
        return True

    def _write(self, payload: bytes) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(payload)
            stdin.flush()  # the helper reads exactly one object; ``result`` closes the pipe
        except (OSError, ValueError) as error:  # the helper died: ``result`` says so and the import compares
            log.warning("the helper stopped before reading the batch (%s)", error)

    def result(self, timeout: float = _WAIT_SECONDS) -> pd.DataFrame | None:
        """The pairs (as ``find_duplicates`` returns them), or None when the helper failed."""
        if self._sender is not None:
            self._sender.join(timeout)
        try:
            out, err = self._process.communicate(timeout=timeout)
        except (subprocess.TimeoutExpired, OSError, ValueError) as error:
            log.warning("comparing the import in process: no answer from the helper (%s)", error)
            self.stop()
            return None
        if self._process.returncode != 0:
            log.warning("comparing the import in process: the helper exited %s: %s", self._process.returncode,
                        err.decode(errors="replace")[-500:])
            return None
        if not self._ready and out.startswith(_READY):
            out = out[len(_READY):]
        try:
            pairs = pickle.loads(out)
        except (pickle.UnpicklingError, EOFError, ValueError) as error:
            log.warning("comparing the import in process: unreadable answer from the helper (%s)", error)
            return None
        return pairs if isinstance(pairs, pd.DataFrame) else None

    def stop(self) -> None:
        """End the helper if it still runs (the import failed, or its answer is no longer wanted)."""
        if self._process.poll() is None:
            self._process.kill()
        if self._sender is not None:
            self._sender.join(5)  # a write in progress fails once the helper is gone
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        self._process.wait()


def batch_frame(base: pd.DataFrame, new: pd.DataFrame, changed: pd.DataFrame) -> pd.DataFrame:
    """The stored leads as the batch leaves them: ``base`` (valid leads by id) with the changed values of its
    leads and the new leads added, in id order as ``lead_frame`` reads them. Matched leads that are not valid
    are not compared, as before."""
    columns = list(base.columns)
    changed = changed.loc[changed.index.isin(base.index), columns]
    kept = base.loc[~base.index.isin(changed.index)]
    parts = [part for part in (kept, changed, new[columns]) if len(part)]
    frame = pd.concat(parts).astype(object) if parts else base.iloc[:0]
    frame.index = frame.index.astype("int64")
    frame.index.name = base.index.name
    return frame.sort_index()


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    from core.dedup.engine import find_duplicates
    from core.dedup.queue import lead_frame
    from core.normalize import lead_keys
    from db.engine import make_engine

    head: dict[str, Any] = pickle.load(stdin)
    url = make_url(head["url"])
    if url.get_backend_name() == "sqlite" and not os.path.exists(url.database or ""):
        # Never compare against a database that opening it would create empty: the import compares in process.
        raise SystemExit(f"no database file at {url.database}")
    engine = make_engine(head["url"])
    try:
        with Session(engine) as session:
            base = lead_frame(session)
    finally:
        engine.dispose()
    stdout.write(_READY)
    stdout.flush()
    batch: dict[str, Any] = pickle.load(stdin)
    if "keys" in batch:  # the new leads' keys first: the import waits for them to write its leads
        pickle.dump(lead_keys(batch["keys"], normalized=True), stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()
        batch = pickle.load(stdin)
    frame = batch_frame(base, batch["new"], batch["changed"])
    pairs = find_duplicates(frame, only=batch["only"], min_score=head["min_score"]) if len(frame) > 1 else \
        pd.DataFrame(columns=["left", "right", "score", "reasons"])
    pickle.dump(pairs, stdout, protocol=pickle.HIGHEST_PROTOCOL)
    stdout.flush()


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)
