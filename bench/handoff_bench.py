"""Handoff at volume: promote 20,000 leads to MQL and route them, run the SLA check over all of them, and open
one rep's inbox — on a temporary SQLite database built here.

Run: ``python -m bench.handoff_bench``. Prints each figure, then one PASS/FAIL line for the routing target.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session

from core.auth import actor_for, hash_password
from core.lifecycle import promote_to_mql
from core.routing import inbox, lead_history
from core.routing.sla import check_sla
from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.models import Lead, Role, RoutingRule, User

LEADS = 20_000
REPS = 40
ROUTE_TARGET_S = 15.0  # promote + route 20,000 MQLs, set-based
SLA_TARGET_S = 10.0
INBOX_TARGET_S = 1.0
NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
PROVINCES = ["上海", "江苏", "浙江", "北京", "天津", "广东", "四川", "湖北", "山东", "福建"]
INDUSTRIES = ["制造业", "金融", "医疗", "零售", "教育"]
PRODUCTS = ["营销云", "数据平台", "客服系统"]


def build(engine) -> None:  # noqa: ANN001
    password = hash_password("bench-pass-1")
    with Session(engine) as session:
        manager = User(username="manager", role=Role.MANAGER, password_hash=password)
        session.add(manager)
        session.flush()
        reps = []
        for i in range(REPS):
            rep = User(username=f"rep{i}", display_name=f"销售{i}", role=Role.SALES, password_hash=password,
                       manager_id=manager.id, capacity=1000, territories=[PROVINCES[i % len(PROVINCES)]])
            session.add(rep)
            reps.append(rep)
        session.flush()
        ids = [r.id for r in reps]
        rules = [("华东", "territory", {"provinces": ["上海", "江苏", "浙江"]}, ids[:8]),
                 ("制造业", "industry", {"industries": ["制造业"]}, ids[8:14]),
                 ("华北", "territory", {"provinces": ["北京", "天津"]}, ids[14:20]),
                 ("数据平台", "product_line", {"product_lines": ["数据平台"]}, ids[20:26]),
                 ("按区域", "territory", {}, []),
                 ("轮询", "round_robin", {}, ids)]
        for position, (name, kind, params, rep_ids) in enumerate(rules, start=1):
            session.add(RoutingRule(position=position, name=name, kind=kind, params=params, rep_ids=rep_ids))
        session.execute(insert(Lead), [
            {"name": f"线索{i}", "company": f"公司{i % 3000}", "province": PROVINCES[i % len(PROVINCES)],
             "industry": INDUSTRIES[i % len(INDUSTRIES)], "product_interest": PRODUCTS[i % len(PRODUCTS)],
             "stage": "new", "status": "valid", "grade": "A", "engagement_score": 70, "attributes": {},
             "search_text": "", "version": 1, "created_at": NOW, "updated_at": NOW, "is_demo": True,
             "unsubscribed": False, "is_customer": False, "fit_score": 50}
            for i in range(LEADS)])
        session.commit()


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        upgrade_to_head(engine)
        build(engine)
        with Session(engine) as session:
            started = time.perf_counter()
            report = promote_to_mql(session=session, lead_ids=range(1, LEADS + 1), now=NOW, by_rule="MQL 线")
            session.commit()
            route_s = time.perf_counter() - started
        print(f"promote + route: {len(report.promoted)} MQLs, {len(report.routed)} routed, "
              f"{len(report.unrouted)} unrouted in {route_s:.2f} s ({LEADS / route_s:,.0f} leads/s)")
        with Session(engine) as session:
            started = time.perf_counter()
            sla = check_sla(session=session, now=NOW + timedelta(hours=7))
            session.commit()
            sla_s = time.perf_counter() - started
        print(f"SLA check: {len(sla.reminded)} reminders over {LEADS} pending in {sla_s:.2f} s")
        with Session(engine) as session:
            rep = actor_for(session, session.get(User, 2))
            started = time.perf_counter()
            page = inbox(session=session, actor=rep, now=NOW, limit=20)
            lead_history(session=session, actor=rep, lead_ids=page["lead_id"].astype(int).tolist())
            inbox_s = time.perf_counter() - started
        print(f"one rep's inbox page (20 cards with history): {inbox_s * 1000:.0f} ms")
        engine.dispose()
    ok = route_s <= ROUTE_TARGET_S and sla_s <= SLA_TARGET_S and inbox_s <= INBOX_TARGET_S
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict} routing {LEADS} MQLs in {route_s:.2f} s (target ≤ {ROUTE_TARGET_S:.0f} s); SLA check "
          f"{sla_s:.2f} s (≤ {SLA_TARGET_S:.0f} s); inbox {inbox_s * 1000:.0f} ms (≤ {INBOX_TARGET_S * 1000:.0f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
