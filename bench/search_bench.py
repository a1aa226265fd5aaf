"""Lead search and the 360° profile on 100,000 leads.

Builds its own database (a temporary SQLite file migrated to head, or ``--url`` for an empty PostgreSQL database
you name), fills it with 100,000 leads whose names, companies, phones and emails look like a Chinese B2B list,
then times ``core.journeys.search_leads`` for Chinese names, pinyin, initials, phone fragments (with spaces and
dashes), emails and companies, as a marketer and as a sales rep, and the profile of one lead with a 500-event
timeline (profile + score explanation + first timeline page + total count).

Targets: search p95 under 300 ms; the profile with its 500-event timeline under 1 s.

    python -m bench.search_bench [--leads 100000] [--url postgresql://…]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.accounts import rebuild_accounts
from core.auth import SYSTEM, Actor, actor_for, create_user
from core.journeys import lead_profile, score_explanation, search_leads, timeline, timeline_count
from core.normalize import lead_keys
from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.models import (
    Assignment,
    Campaign,
    Channel,
    Enrollment,
    Lead,
    Message,
    ScoreEvent,
    StageChange,
    StepRun,
    Touchpoint,
    User,
    Workflow,
)

SEARCH_TARGET_MS = 300.0
PROFILE_TARGET_MS = 1000.0
REPEATS = 5

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国志文斌宇浩凯晨晓雪琳欣怡佳俊")
CITIES = ["上海", "北京", "深圳", "广州", "杭州", "南京", "苏州", "成都", "武汉", "西安"]
WORDS = ["云杉", "星河", "蓝海", "华彩", "恒通", "博远", "睿智", "青木", "天成", "瑞丰", "嘉禾", "启明", "远航", "金石",
         "明德", "新程", "卓越", "众合", "和信", "安达"]
TRADES = ["科技", "信息技术", "软件", "物流", "制造", "医疗器械", "新材料", "电子", "数据", "网络"]
SUFFIXES = ["有限公司", "股份有限公司", "有限责任公司", "集团有限公司"]
FREE_MAIL = ["qq.com", "163.com", "126.com", "gmail.com"]
TITLES = ["市场经理", "IT总监", "采购经理", "CTO", "销售总监", "工程师", "总经理", "Marketing Manager", "运营专员"]


def build_leads(n: int, rng: random.Random) -> pd.DataFrame:
    rows = []
    for i in range(n):
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        word, trade = rng.choice(WORDS), rng.choice(TRADES)
        company = f"{rng.choice(CITIES)}{word}{trade}{rng.choice(SUFFIXES)}" if rng.random() < 0.9 else None
        phone = f"1{rng.choice('358')}{rng.randrange(10**9):09d}"
        # Half use free mail; the others their company's domain (one per company name).
        domain = (rng.choice(FREE_MAIL) if rng.random() < 0.5 or company is None
                  else f"c{WORDS.index(word)}t{TRADES.index(trade)}.com.cn")
        rows.append({"name": name, "company": company, "phone": phone, "email": f"u{i}@{domain}",
                     "title": rng.choice(TITLES)})
    frame = pd.DataFrame(rows)
    keys = lead_keys(frame)
    frame["phone"] = "+86" + frame["phone"]
    return pd.concat([frame, keys], axis=1)


def fill(engine: Engine, leads: int, rng: random.Random) -> tuple[Actor, Actor, int, pd.DataFrame]:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with Session(engine) as session:
        marketer = actor_for(session, create_user(session, actor=SYSTEM, username="bench_marketer",
                                                  password="Passw0rd!x", role="marketer"))
        rep = actor_for(session, create_user(session, actor=SYSTEM, username="bench_rep", password="Passw0rd!x",
                                             role="sales"))
        channel = Channel(name="官网", kind="website")
        session.add(channel)
        session.flush()
        campaign = Campaign(name="2026 秋季直播", channel_id=channel.id)
        workflow = Workflow(name="培育邮件")
        session.add_all([campaign, workflow])
        session.commit()
        channel_id, campaign_id, workflow_id = channel.id, campaign.id, workflow.id

    frame = build_leads(leads, rng)
    started = time.perf_counter()
    records = []
    for i, row in enumerate(frame.itertuples(index=False)):
        created = now - timedelta(minutes=i)
        records.append({
            "name": row.name, "company": row.company, "phone": row.phone, "email": row.email, "title": row.title,
            "name_key": row.name_key, "company_key": row.company_key, "search_text": row.search_text,
            "owner_id": rep.id if i % 20 == 0 else None, "source_channel_id": channel_id,
            "stage": "new", "status": "valid", "created_at": created, "updated_at": created,
            "last_activity_at": created, "attributes": {}, "fit_score": 0, "engagement_score": 0,
            "is_customer": False, "unsubscribed": False, "version": 1, "is_demo": False,
        })
    with engine.begin() as connection:
        for start in range(0, len(records), 5000):
            connection.execute(insert(Lead), records[start:start + 5000])
    print(f"inserted {leads:,} leads in {time.perf_counter() - started:.1f} s")

    # One lead with 500 events of every kind.
    with engine.begin() as connection:
        lead_id = connection.execute(select(Lead.id).order_by(Lead.id).limit(1)).scalar_one()
        connection.execute(insert(Touchpoint), [
            {"lead_id": lead_id, "kind": "webinar_attended", "channel_id": channel_id, "campaign_id": campaign_id,
             "occurred_at": now - timedelta(hours=i), "properties": {"minutes": 30 + i % 40},
             "natural_key": f"bench-{i}", "created_at": now} for i in range(200)])
        connection.execute(insert(ScoreEvent), [
            {"lead_id": lead_id, "component": "engagement", "points": 5, "kind": "rule", "reason": "直播出席",
             "occurred_at": now - timedelta(hours=i, minutes=5), "created_at": now} for i in range(150)])
        connection.execute(insert(StageChange), [
            {"lead_id": lead_id, "from_stage": "new", "to_stage": "mql", "reason": "", "at": now - timedelta(days=i)}
            for i in range(20)])
        enrollment_id = connection.execute(insert(Enrollment).values(
            workflow_id=workflow_id, lead_id=lead_id, status="active", entered_at=now - timedelta(days=60),
            workflow_version=1, attempts=0)).inserted_primary_key[0]
        connection.execute(insert(StepRun), [
            {"enrollment_id": enrollment_id, "step_id": f"s{i}", "step_type": "send_email", "status": "done",
             "idempotency_key": f"bench-step-{i}", "result": {}, "at": now - timedelta(hours=i, minutes=10)}
            for i in range(60)])
        connection.execute(insert(Message), [
            {"channel": "email", "lead_id": lead_id, "enrollment_id": enrollment_id, "to_address": "a@b.cn",
             "subject": f"第 {i} 期通讯", "body": "", "payload": {}, "status": "sent", "attempts": 1,
             "idempotency_key": f"bench-msg-{i}", "created_at": now - timedelta(hours=i, minutes=20)}
            for i in range(60)])
        connection.execute(insert(Assignment), [
            {"lead_id": lead_id, "rep_id": rep.id, "routed_by": "round_robin", "status": "rejected",
             "reason": "no_budget", "note": "明年再联系", "assigned_at": now - timedelta(days=i),
             "decided_at": now - timedelta(days=i, hours=-2), "breached": False} for i in range(5)])
        connection.execute(text("UPDATE lead SET owner_id = :rep WHERE id = :id"), {"rep": rep.id, "id": lead_id})
    return marketer, rep, lead_id, frame


def timed(fn: Callable[[], object], repeats: int = REPEATS) -> list[float]:
    fn()  # warm the statement cache and the page cache once
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--url", help="an empty database to fill (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    rng = random.Random(20261101)
    folder = tempfile.TemporaryDirectory(prefix="leadloop-search-bench-")
    url = args.url or f"sqlite:///{Path(folder.name) / 'bench.db'}"
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
        with engine.connect() as connection:
            if connection.execute(select(User.id).limit(1)).first() is not None:
                print(f"FAIL the database at {url} is not empty; give an empty one (target: search p95 < "
                      f"{SEARCH_TARGET_MS:.0f} ms)")
                return 1
        marketer, rep, lead_id, frame = fill(engine, args.leads, rng)
        with Session(engine) as session:
            started = time.perf_counter()
            built = rebuild_accounts(session=session, now=datetime(2026, 11, 1, tzinfo=UTC))
            session.commit()
            print(f"accounts rebuilt from {args.leads:,} leads in {time.perf_counter() - started:.1f} s "
                  f"({built.created:,} accounts, {built.leads_assigned:,} leads placed; no target, for information)")
        sample = frame[frame["company"].notna()].iloc[len(frame) // 3]
        phone = sample["phone"][3:]
        queries = {
            "chinese name": sample["name"],
            "chinese surname": sample["name"][0],
            "pinyin": sample["name_key"],
            "pinyin with space": " ".join([sample["name_key"][:3], sample["name_key"][3:]]),
            "initials": sample["search_text"].split()[2] if len(sample["search_text"].split()) > 2 else "zw",
            "phone fragment": phone[3:9],
            "phone with dashes": f"{phone[:3]}-{phone[3:7]}-{phone[7:]}",
            "phone with spaces": f"{phone[:3]} {phone[3:7]}",
            "email": sample["email"],
            "email fragment": sample["email"].split("@")[0] + "@",
            "company": sample["company"][2:6],
            "no match": "不存在的名字xyz",
        }
        all_times: list[float] = []
        print(f"{'query':<20} {'text':<26} {'rows':>5} {'median ms':>10} {'max ms':>8}")
        with Session(engine) as session:
            for who, actor in (("marketer", marketer), ("sales rep", rep)):
                for name, query in queries.items():
                    rows = len(search_leads(session=session, actor=actor, query=query))
                    times = timed(lambda a=actor, q=query: search_leads(session=session, actor=a, query=q))
                    all_times.extend(times)
                    print(f"{who + ': ' + name:<20} {query:<26} {rows:>5} {statistics.median(times):>10.1f} "
                          f"{max(times):>8.1f}")

            def profile() -> None:
                lead_profile(session=session, actor=marketer, lead_id=lead_id)
                score_explanation(session=session, actor=marketer, lead_id=lead_id)
                timeline(session=session, actor=marketer, lead_id=lead_id, limit=100)
                timeline_count(session=session, actor=marketer, lead_id=lead_id)

            events = timeline_count(session=session, actor=marketer, lead_id=lead_id)
            full = timed(lambda: timeline(session=session, actor=marketer, lead_id=lead_id, limit=1000))
            profile_times = timed(profile)
        search_p95 = p95(all_times)
        profile_max = max(profile_times)
        print(f"search: {len(all_times)} timings, median {statistics.median(all_times):.1f} ms, "
              f"p95 {search_p95:.1f} ms (target < {SEARCH_TARGET_MS:.0f} ms)")
        print(f"profile: {events} timeline events, whole timeline {statistics.median(full):.1f} ms, profile + "
              f"first page + count max {profile_max:.1f} ms (target < {PROFILE_TARGET_MS:.0f} ms)")
        ok = search_p95 < SEARCH_TARGET_MS and profile_max < PROFILE_TARGET_MS and events >= 500
        verdict = "PASS" if ok else "FAIL"
        print(f"{verdict} search p95 {search_p95:.1f} ms (target < {SEARCH_TARGET_MS:.0f} ms) on {args.leads:,} "
              f"leads; profile with {events}-event timeline {profile_max:.1f} ms (target < "
              f"{PROFILE_TARGET_MS:.0f} ms)")
        return 0 if ok else 1
    finally:
        engine.dispose()
        folder.cleanup()


if __name__ == "__main__":
    sys.exit(main())
