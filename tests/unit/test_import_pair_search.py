"""A large import compares its leads with the base in a helper process while it writes (``core.dedup.search``).
The pairs, merges, review rows and follow-up flags must be exactly those of comparing in process after the write;
a helper that fails leaves the import to compare in process — on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import aliased

import core.dedup.search as search
from bench.import_bench import base_rows, messy_file, people
from core.auth import SYSTEM
from core.importer import run_import
from db.models import Channel, DuplicateCandidate, Lead, LeadStatus

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def world(session):
    """A committed base of 3,000 leads, a channel, and a messy 6,000-row file about them and new people."""
    rng = np.random.default_rng(5)
    base = people(3_000, rng)
    data, _ = messy_file(6_000, base, rng)
    # Near duplicates of base leads that only the comparison finds: the same person with a mistyped mobile and
    # no email, or with a mistyped email and no mobile.
    near = []
    for k, person in enumerate(base.iloc[:120].itertuples()):
        if k % 2:
            phone = person.phone[:5] + str((int(person.phone[5]) + 1) % 10) + person.phone[6:]
            near.append([person.name, phone, "", person.company, person.title, person.city, "", ""])
        else:
            email = person.email.replace("@", "x@", 1)
            near.append([person.name, "", email, person.company, person.title, person.city, "", ""])
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(near)
    data += text.getvalue().encode()
    connection = session.connection()
    connection.execute(insert(Lead), base_rows(base))
    channel = Channel(name="展会", kind="tradeshow")
    session.add(channel)
    session.commit()
    return data, channel.id


def _outcome(session, data: bytes, channel_id: int) -> tuple[dict, set, set]:
    """Import (uncommitted), read what dedup did in people's terms (ids differ between runs on PostgreSQL), undo."""
    summary = run_import(session=session, actor=SYSTEM, data=data, filename="展会.csv", channel_id=channel_id,
                         now=NOW)
    left, right = aliased(Lead), aliased(Lead)
    queued = {(a, b, round(score, 4)) for a, b, score in session.execute(
        select(left.search_text, right.search_text, DuplicateCandidate.score)
        .join(left, left.id == DuplicateCandidate.left_id).join(right, right.id == DuplicateCandidate.right_id))}
    survivor = aliased(Lead)
    merged = set(session.execute(select(Lead.search_text, survivor.search_text)
                                 .join(survivor, survivor.id == Lead.merged_into_id)
                                 .where(Lead.status == LeadStatus.MERGED)).all())
    keys = sorted(session.execute(select(Lead.name, Lead.phone, Lead.email, Lead.name_key, Lead.company_key,
                                         Lead.search_text)).all(), key=str)
    session.rollback()
    return {"inserted": summary.inserted, "updated": summary.updated, "keys": keys}, queued, merged


def test_the_helper_finds_exactly_what_comparing_in_process_finds(session, world, monkeypatch):
    data, channel_id = world
    started = []
    original = search.PairSearch.start.__func__

    def counted(cls, *args, **kwargs):  # noqa: ANN001, ANN202
        helper = original(cls, *args, **kwargs)
        started.append(helper)
        return helper

    asked = []
    original_request = search.PairSearch.request_keys

    def counted_request(self, identity):  # noqa: ANN001, ANN202
        asked.append(len(identity))
        return original_request(self, identity)

    monkeypatch.setattr(search.PairSearch, "start", classmethod(counted))
    monkeypatch.setattr(search.PairSearch, "request_keys", counted_request)
    # The import waits for the helper to be ready, so that it derives the new leads' keys too.
    monkeypatch.setattr(search, "READY_WAIT", 60.0)
    with_helper = _outcome(session, data, channel_id)
    assert started and started[0] is not None  # the helper really ran
    assert asked and asked[0] > 1000  # … and derived the keys of the new leads
    monkeypatch.setattr(search, "MIN_ROWS", 10**9)
    in_process = _outcome(session, data, channel_id)
    assert with_helper == in_process
    _, queued, _ = with_helper
    assert len(queued) >= 100  # the near duplicates wait for review


def test_a_helper_that_fails_leaves_the_import_to_compare_in_process(session, world, monkeypatch):
    data, channel_id = world
    expected = _outcome(session, data, channel_id)
    def broken_start(cls, engine, *, min_score, rows):  # noqa: ANN001, ANN202 - a helper that dies on its input
        import subprocess
        import sys

        process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.buffer.read(1); sys.exit(3)"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return cls(process)

    monkeypatch.setattr(search.PairSearch, "start", classmethod(broken_start))
    assert _outcome(session, data, channel_id) == expected


def test_the_batch_frame_is_the_base_as_the_batch_leaves_it():
    columns = ["name", "phone"]
    base = pd.DataFrame({"name": ["甲", "乙", "丙"], "phone": ["1", "2", "3"]}, index=pd.Index([1, 2, 5], name="id"),
                        dtype=object)
    new = pd.DataFrame({"name": ["丁"], "phone": ["4"]}, index=pd.Index([7], name="id"), dtype=object)
    # Lead 2 gets a phone; lead 9 is matched but not valid, so it is not compared.
    changed = pd.DataFrame({"name": ["乙", "戊"], "phone": ["22", "9"]}, index=pd.Index([2, 9], name="id"),
                           dtype=object)
    frame = search.batch_frame(base, new, changed)
    assert list(frame.index) == [1, 2, 5, 7]
    assert frame.loc[2, "phone"] == "22" and frame.loc[7, "name"] == "丁"
    assert list(frame.columns) == columns


def test_the_helper_opens_the_same_file_and_never_creates_one(tmp_path, monkeypatch):
    import io
    import pickle

    from sqlalchemy.engine import make_url

    monkeypatch.chdir(tmp_path)
    # A relative SQLite path is made absolute for the helper, which runs in the project's directory.
    assert search._absolute(make_url("sqlite:///data/leads.db")).database == str(tmp_path / "data" / "leads.db")
    # A database file that does not exist is not created empty (and compared against): the helper stops.
    request = io.BytesIO(pickle.dumps({"url": f"sqlite:///{tmp_path / 'missing.db'}", "min_score": 0.6}))
    with pytest.raises(SystemExit):
        search._serve(request, io.BytesIO())
    assert not (tmp_path / "missing.db").exists()


def test_a_helper_that_fails_while_deriving_keys_leaves_them_to_the_import(session, world, monkeypatch):
    data, channel_id = world
    expected = _outcome(session, data, channel_id)

    def dies_when_asked(cls, engine, *, min_score, rows):  # noqa: ANN001, ANN202 - ready, then gone
        import subprocess
        import sys

        script = ("import sys; sys.stdout.buffer.write(b'R'); sys.stdout.flush(); sys.stdin.buffer.read(1); "
                  "sys.exit(3)")
        process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        return cls(process)

    monkeypatch.setattr(search.PairSearch, "start", classmethod(dies_when_asked))
    monkeypatch.setattr(search, "READY_WAIT", 60.0)
    assert _outcome(session, data, channel_id) == expected
