"""Scoring speed: full rescore of 100,000 leads with 1,000,000 touchpoints and 50 rules, one lead after a new
touchpoint, and the rule preview while typing.

    python -m bench.rules_bench [--leads N] [--touchpoints N] [--db PATH]

Builds its own data in a temporary SQLite file (leads with titles, industries, sizes, regions; touchpoints of
every kind over the last year) and 50 rules: 20 fit, 20 engagement (with caps), 6 tag, a decay and the MQL line,
saved through ``core.rules.save_rule``. Timed (wall clock; the machine is shared, so figures are noisy — the full rescores also print their CPU time, this
process's user + system time, which another process's load changes much less):

- full rescore with an empty ledger (every point written) — target < 10 s;
- full rescore again (nothing changed: the steady state of a nightly run) — target < 10 s;
- one lead after a new touchpoint: insert it, ``rescore(lead_ids=[id])`` — target < 50 ms (median of 20);
- preview of a rule being typed, with the delta against its saved text — target < 1 s (median of 5).

Last line ``PASS …`` or ``FAIL …``; exit code 0 only on PASS.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlmodel import Session

from core import scoring
from core.auth import SYSTEM
from core.rules import preview, save_rule
from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.models import Lead, ScoreEvent, Touchpoint
from seed import bulk

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
TITLES = ["市场总监", "技术总监", "CTO", "VP Sales", "采购经理", "IT 经理", "工程师", "专员", "CEO", "CIO", "主管", None]
INDUSTRIES = ["制造业", "金融", "医疗", "教育", "零售", "互联网", "物流", "能源", None]
PROVINCES = ["上海", "北京", "广东", "江苏", "浙江", "四川", "湖北", "山东", None]
KINDS = ["webinar_attended", "livestream_view", "tradeshow_scan", "event_attended", "whitepaper_download",
         "email_open", "email_click", "pricing_view", "demo_request", "form_submit", "page_view", "email_sent"]
KIND_WEIGHTS = np.array([4, 6, 2, 2, 4, 25, 8, 4, 1, 4, 30, 10], dtype=float)


def build(engine, leads: int, touchpoints: int) -> None:  # noqa: ANN001
    rng = np.random.default_rng(7)
    now = int(NOW.timestamp())
    ids = np.arange(1, leads + 1)
    created = now - rng.integers(0, 400 * 86_400, size=leads)
    lead_of = rng.integers(1, leads + 1, size=touchpoints)
    at = created[lead_of - 1] + rng.integers(0, 400 * 86_400, size=touchpoints)
    at = np.minimum(at, now - 60)
    kind = rng.choice(KINDS, size=touchpoints, p=KIND_WEIGHTS / KIND_WEIGHTS.sum())
    last = np.full(leads, np.nan)
    np.fmax.at(last, lead_of - 1, at.astype(float))
    with engine.begin() as connection:
        bulk.insert(connection, Lead.__table__, {
            "id": ids, "name": [f"线索{i}" for i in ids.tolist()],
            "title": rng.choice(np.array(TITLES, dtype=object), size=leads),
            "industry": rng.choice(np.array(INDUSTRIES, dtype=object), size=leads),
            "province": rng.choice(np.array(PROVINCES, dtype=object), size=leads),
            "company_size": rng.choice([10, 50, 120, 300, 800, 5000], size=leads),
            "stage": "new", "status": "valid", "created_at": created, "updated_at": created,
            "last_activity_at": last, "search_text": "", "attributes": [{}] * leads,
        })
        bulk.insert(connection, Touchpoint.__table__, {
            "id": np.arange(1, touchpoints + 1), "lead_id": lead_of, "kind": kind, "occurred_at": at,
            "properties": [{}] * touchpoints, "natural_key": [f"tp{i}" for i in range(touchpoints)],
            "created_at": at,
        })


def rules(session: Session) -> None:
    fit = [('title contains "总监"', 20), ('title in ("CTO", "CIO", "CEO")', 25), ('title contains "VP"', 20),
           ('title contains "经理"', 10), ('title contains "主管"', 5), ("title is empty", -5),
           ('industry in ("制造业", "金融", "医疗")', 15), ('industry = "教育"', -5), ('industry = "互联网"', 5),
           ('industry = "零售"', 5), ("company_size >= 1000", 25), ("company_size >= 200 and company_size < 1000", 15),
           ("company_size >= 50 and company_size < 200", 5), ("company_size < 20", -10),
           ('province in ("上海", "北京", "广东")', 10), ('province in ("江苏", "浙江")', 5), ("province is empty", -2),
           ('title contains "总监" and industry = "制造业"', 5), ('title starts_with "IT"', 5),
           ('not has_tag("竞品客户") and company_size >= 300', 3)]
    for n, (text, points) in enumerate(fit):
        save_rule(session=session, actor=SYSTEM, rule_id=None, name=f"fit {n}", kind="fit", text=text,
                  points=points, params={}, now=NOW)
    engagement = [("webinar_attended", 15, 45, 90), ("livestream_view", 8, 24, 30), ("tradeshow_scan", 10, 20, 90),
                  ("event_attended", 15, 30, 90), ("whitepaper_download", 10, 30, 90), ("email_open", 1, 10, 30),
                  ("email_click", 3, 15, 30), ("pricing_view", 20, 40, 30), ("demo_request", 30, 60, 30),
                  ("form_submit", 10, 20, 90), ("page_view", 1, 10, 30)]
    for kind, points, cap, period in engagement:
        save_rule(session=session, actor=SYSTEM, rule_id=None, name=kind, kind="engagement", text=f'kind = "{kind}"',
                  points=points, params={"touchpoint_kind": kind, "cap": cap, "period_days": period}, now=NOW)
    for n, kind in enumerate(["webinar_attended", "pricing_view", "demo_request", "email_click", "whitepaper_download",
                              "event_attended", "tradeshow_scan", "livestream_view", "form_submit"]):
        save_rule(session=session, actor=SYSTEM, rule_id=None, name=f"engaged {n}", kind="engagement",
                  text=f'kind = "{kind}" and title contains "总监"', points=5, params={"cap": 10, "period_days": 90},
                  now=NOW)
    tags = [('title contains "总监" or title contains "VP"', "决策人", True),
            ("count(webinar_attended, 90d) >= 2", "高意向", False), ("count(demo_request, 30d) >= 1", "想看演示", False),
            ("count(pricing_view, 30d) >= 2", "价格关注", True), ('industry = "教育"', "教育行业", True),
            ("days_since_last_activity > 180", "沉睡", True)]
    for n, (text, tag, remove) in enumerate(tags):
        save_rule(session=session, actor=SYSTEM, rule_id=None, name=f"tag {n}", kind="tag", text=text, points=0,
                  params={"tag": tag, "remove_when_false": remove}, now=NOW)
    save_rule(session=session, actor=SYSTEM, rule_id=None, name="decay", kind="decay", text="", points=0,
              params={"half_life_days": 30}, now=NOW)
    save_rule(session=session, actor=SYSTEM, rule_id=None, name="MQL", kind="mql",
              text='grade in ("A", "B") and engagement >= 60', points=0, params={}, now=NOW)
    session.commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file (default: a temporary one)")
    args = parser.parse_args(argv)
    folder = tempfile.TemporaryDirectory()
    path = args.db or Path(folder.name) / "rules-bench.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    started = time.perf_counter()
    with Session(engine) as session:
        have = session.scalar(select(func.count()).select_from(Lead))
    if have == args.leads:  # a kept --db: same data, ledger and rules start again from nothing
        with engine.begin() as connection:
            for table in ("scoreevent", "leadtag", "ruleversion", "rule", "auditlog"):
                connection.exec_driver_sql(f"DELETE FROM {table}")
            connection.exec_driver_sql("DELETE FROM touchpoint WHERE natural_key LIKE 'new%'")
    else:
        build(engine, args.leads, args.touchpoints)
    with Session(engine) as session:
        rules(session)
    print(f"data: {args.leads:,} leads, {args.touchpoints:,} touchpoints, 50 rules in "
          f"{time.perf_counter() - started:.1f} s")

    with Session(engine) as session:
        started, cpu = time.perf_counter(), time.process_time()
        report = scoring.rescore(session=session, now=NOW)
        session.commit()
        full, full_cpu = time.perf_counter() - started, time.process_time() - cpu
        events = session.scalar(select(func.count()).select_from(ScoreEvent))
    print(f"full rescore, empty ledger: {full:.2f} s, CPU {full_cpu:.2f} s ({report.events:,} ledger events, "
          f"{report.tags_added:,} tags, {len(report.crossed_mql):,} crossed the MQL line; ledger holds {events:,})")
    with Session(engine) as session:
        started, cpu = time.perf_counter(), time.process_time()
        again = scoring.rescore(session=session, now=NOW)
        session.commit()
        steady, steady_cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"full rescore, nothing changed: {steady:.2f} s, CPU {steady_cpu:.2f} s ({again.events} events)")

    rng = np.random.default_rng(11)
    singles = []
    for n, lead_id in enumerate(rng.integers(1, args.leads + 1, size=20).tolist()):
        with Session(engine) as session:
            started = time.perf_counter()
            session.add(Touchpoint(lead_id=lead_id, kind="pricing_view", occurred_at=NOW, natural_key=f"new{n}"))
            session.flush()
            scoring.rescore(session=session, now=NOW, lead_ids=[lead_id])
            session.commit()
            singles.append(time.perf_counter() - started)
    single = statistics.median(singles)
    print(f"one lead after a new touchpoint: median {single * 1000:.1f} ms, max {max(singles) * 1000:.1f} ms")

    previews = []
    with Session(engine) as session:
        for _ in range(5):
            started = time.perf_counter()
            result = preview('title contains "总监" and company_size >= 200 and count(webinar_attended, 90d) >= 1',
                             session=session, now=NOW, saved_text='title contains "总监" and company_size >= 200')
            previews.append(time.perf_counter() - started)
    shown = statistics.median(previews)
    print(f"preview: median {shown * 1000:.0f} ms (matches {result.count:,}, {result.delta:+,} vs saved)")

    failures = []
    if full >= 10:
        failures.append(f"full rescore {full:.2f} s (target < 10 s)")
    if steady >= 10:
        failures.append(f"full rescore, nothing changed {steady:.2f} s (target < 10 s)")
    if single >= 0.05:
        failures.append(f"one lead {single * 1000:.1f} ms (target < 50 ms)")
    if shown >= 1:
        failures.append(f"preview {shown:.2f} s (target < 1 s)")
    figures = (f"full rescore {full:.2f} s / unchanged {steady:.2f} s (< 10 s), "
               f"one lead {single * 1000:.1f} ms (< 50 ms), preview {shown * 1000:.0f} ms (< 1000 ms)")
    engine.dispose()
    if args.db is None:
        folder.cleanup()
    if failures:
        print("FAIL " + "; ".join(failures) + " — " + figures)
        return 1
    print("PASS " + figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
