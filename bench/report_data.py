"""A reports-sized database: leads with journeys, stage histories, deals and monthly costs, built in seconds.

``build_report_database(url, leads=100_000)`` migrates a new database and bulk-inserts about ten touches per
lead from ``bench.synthetic`` (so ~1,000,000 touchpoints for 100,000 leads), stage changes that agree with the
conversions (converted journeys are won deals), lost and recycled leads, opportunities and a year of costs per
channel and campaign. Used by the attribution benchmark; ``python -m bench.report_data URL`` builds one by hand.
"""

from __future__ import annotations

import sys
import time
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from bench.synthetic import synthetic_journeys
from core.auth import SYSTEM, create_user
from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.models import (
    Campaign,
    Channel,
    ChannelCost,
    Lead,
    Opportunity,
    StageChange,
    Touchpoint,
    User,
)

PROVINCES = ("上海", "北京", "广东", "浙江", "江苏", "四川", "湖北", "山东", "福建", "天津")
KINDS = ("page_view", "form_submit", "webinar_attended", "wechat_follow", "email_click", "livestream_view",
         "tradeshow_scan", "whitepaper_download", "pricing_view", "demo_request")
PASSWORD = "Bench-pass-2026"
_CHUNK = 20_000


def _stamp(values: np.ndarray | pd.Series, sqlite: bool) -> list:
    stamps = pd.to_datetime(pd.Series(values), utc=True)
    if sqlite:  # how SQLAlchemy stores an aware UTC datetime in SQLite
        return stamps.dt.strftime("%Y-%m-%d %H:%M:%S.%f").tolist()
    return [s.to_pydatetime() for s in stamps]


def _insert(engine: Engine, table: object, columns: dict[str, list | np.ndarray]) -> None:
    """executemany straight through the driver: values are already in the form the database stores."""
    names = list(columns)
    n = len(columns[names[0]])
    values = [columns[name] if isinstance(columns[name], list) else columns[name].tolist() for name in names]
    rows = list(zip(*values, strict=True))
    marker = "?" if engine.dialect.name == "sqlite" else "%s"
    quoted = ", ".join(f'"{name}"' for name in names)
    sql = f'INSERT INTO "{table.__tablename__}" ({quoted}) VALUES ({", ".join([marker] * len(names))})'  # type: ignore[attr-defined]
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":  # a throwaway database: no need to wait for the disk
            connection.exec_driver_sql("PRAGMA synchronous=OFF")
        for start in range(0, n, _CHUNK):
            connection.exec_driver_sql(sql, rows[start:start + _CHUNK])


def build_report_database(url: str, *, leads: int = 100_000, n_channels: int = 10, mean_touches: float = 10.0,
                          seed: int = 5, quiet: bool = False) -> dict[str, float]:
    """Build the database at ``url``; returns row counts and the build time."""
    started = time.perf_counter()
    engine = make_engine(url)
    upgrade_to_head(engine)
    sqlite = engine.dialect.name == "sqlite"
    rng = np.random.default_rng(seed)
    data = synthetic_journeys(leads, n_channels=n_channels, mean_touches=mean_touches, conversion_rate=0.12,
                              seed=seed)

    from sqlmodel import Session

    with Session(engine) as session:
        admin = create_user(session, actor=SYSTEM, username="bench_admin", password=PASSWORD, role="admin")
        create_user(session, actor=SYSTEM, username="bench_marketer", password=PASSWORD, role="marketer")
        reps = [User(username=f"rep{i:02d}", display_name=f"销售{i:02d}", role="sales") for i in range(20)]
        session.add_all(reps)
        channels = [Channel(name=name, kind="other") for name in data.channels]
        session.add_all(channels)
        session.flush()
        campaigns = [Campaign(name=f"{c.name}活动{k + 1}", channel_id=c.id) for c in channels for k in range(3)]
        session.add_all(campaigns)
        session.commit()
        rep_ids = np.array([r.id for r in reps])
        channel_ids = np.array([c.id for c in channels])
        campaign_ids = np.array([c.id for c in campaigns]).reshape(n_channels, 3)
        del admin

    touches = data.touchpoints
    code = touches["channel"].cat.codes.to_numpy()
    lead_idx = touches["lead_id"].to_numpy()
    occurred = touches["occurred_at"]
    n_touch = len(touches)
    touch_campaign = campaign_ids[code, rng.integers(0, 3, n_touch)].astype(object)
    touch_campaign[rng.random(n_touch) < 0.3] = None
    first = touches.groupby("lead_id", sort=True).head(1)
    first_idx = first.index.to_numpy()
    created = pd.Series(pd.NaT, index=range(leads), dtype="datetime64[ns, UTC]")
    created.iloc[first["lead_id"].to_numpy()] = first["occurred_at"].to_numpy()

    # Stage histories. Converted journeys are won deals; others stop somewhere on the way.
    converted = np.zeros(leads, dtype=bool)
    converted[data.conversions["lead_id"].to_numpy()] = True
    won_at = pd.Series(pd.NaT, index=range(leads), dtype="datetime64[ns, UTC]")
    won_at.iloc[data.conversions["lead_id"].to_numpy()] = data.conversions["converted_at"].to_numpy()
    value = np.zeros(leads)
    value[data.conversions["lead_id"].to_numpy()] = data.conversions["value"].to_numpy()
    reach = np.where(converted, 5, rng.choice([0, 1, 1, 2, 3, 4], leads))  # 0 new … 4 opportunity, 5 won
    created_ns = created.to_numpy(dtype="datetime64[ns]").astype("int64")
    end_ns = np.where(converted, won_at.to_numpy(dtype="datetime64[ns]").astype("int64"),
                      created_ns + (rng.uniform(5, 120, leads) * 86_400e9).astype("int64"))
    stages = ["new", "mql", "sal", "sql", "opportunity", "won"]
    change_lead, change_from, change_to, change_at = [], [], [], []
    for step in range(1, 6):
        who = np.flatnonzero(reach >= step)
        # Some leads skip SAL (straight from MQL to SQL), as sales sometimes do.
        if step == 2:
            who = who[rng.random(len(who)) > 0.1]
        at = created_ns[who] + (end_ns[who] - created_ns[who]) * step / 6
        change_lead.append(who)
        change_from.append(np.full(len(who), ""))
        change_to.append(np.full(len(who), stages[step], dtype=object))
        change_at.append(at.astype("int64"))
    frame = pd.DataFrame({"lead": np.concatenate(change_lead), "to": np.concatenate(change_to),
                          "at": np.concatenate(change_at)}).sort_values(["lead", "at"], kind="stable")
    frame["from"] = frame.groupby("lead")["to"].shift(1).fillna("new")
    lost = np.flatnonzero(reach == 4)
    recycled = np.flatnonzero(reach == 1)[::3]
    extra = pd.DataFrame({
        "lead": np.r_[lost, recycled],
        "to": ["lost"] * len(lost) + ["recycled"] * len(recycled),
        "from": ["opportunity"] * len(lost) + ["mql"] * len(recycled),
        "at": np.r_[end_ns[lost], end_ns[recycled]].astype("int64"),
    })
    changes = pd.concat([frame, extra], ignore_index=True)
    current = np.array(stages, dtype=object)[reach]
    current[lost] = "lost"
    current[recycled] = "recycled"

    lead_ids = np.arange(1, leads + 1)
    owner = np.where(reach >= 1, rep_ids[rng.integers(0, len(rep_ids), leads)], None)
    lead_columns = {
        "id": lead_ids, "name": [f"客户{i}" for i in lead_ids], "company": [f"公司{i % 5000}" for i in lead_ids],
        "province": np.array(PROVINCES, dtype=object)[rng.integers(0, len(PROVINCES), leads)],
        "source_channel_id": channel_ids[code[first_idx]],
        "source_campaign_id": touch_campaign[first_idx],
        "owner_id": owner.tolist(), "stage": current.tolist(), "status": ["valid"] * leads,
        "created_at": _stamp(created, sqlite), "updated_at": _stamp(created, sqlite),
        "fit_score": [0.0] * leads, "engagement_score": [0.0] * leads, "is_customer": converted.tolist(),
        "attributes": ["{}"] * leads if sqlite else [{}] * leads, "search_text": [""] * leads,
        "version": [1] * leads, "unsubscribed": [False] * leads, "is_demo": [False] * leads,
    }
    _insert(engine, Lead, lead_columns)
    _insert(engine, Touchpoint, {
        "lead_id": (lead_idx + 1), "kind": np.array(KINDS, dtype=object)[rng.integers(0, len(KINDS), n_touch)],
        "channel_id": channel_ids[code], "campaign_id": touch_campaign.tolist(),
        "occurred_at": _stamp(occurred, sqlite), "natural_key": [f"b{i}" for i in range(n_touch)],
        "properties": ["{}"] * n_touch if sqlite else [{}] * n_touch,
        "created_at": _stamp(occurred, sqlite),
    })
    _insert(engine, StageChange, {
        "lead_id": changes["lead"].to_numpy() + 1, "from_stage": changes["from"].tolist(),
        "to_stage": changes["to"].tolist(), "reason": [""] * len(changes),
        "at": _stamp(pd.to_datetime(changes["at"], unit="ns", utc=True), sqlite),
    })
    deal = np.flatnonzero(reach >= 4)
    opportunity_at = created_ns[deal] + (end_ns[deal] - created_ns[deal]) * 4 / 6
    amount = np.where(converted[deal], value[deal], np.round(rng.lognormal(11, 0.8, len(deal)), -2))
    _insert(engine, Opportunity, {
        "lead_id": deal + 1, "amount": amount, "stage": np.where(converted[deal], "won", "lost").tolist(),
        "name": [f"商机{i}" for i in deal],
        "created_at": _stamp(pd.to_datetime(opportunity_at.astype("int64"), unit="ns", utc=True), sqlite),
        "closed_at": _stamp(pd.to_datetime(end_ns[deal], unit="ns", utc=True), sqlite),
    })
    months = [date(2026, m, 1) for m in range(1, 13)]
    cost_rows: dict[str, list] = {"channel_id": [], "campaign_id": [], "month": [], "amount": [], "note": []}
    for c in range(n_channels):
        for month in months:
            for campaign in [None, *campaign_ids[c]]:
                cost_rows["channel_id"].append(int(channel_ids[c]))
                cost_rows["campaign_id"].append(None if campaign is None else int(campaign))
                cost_rows["month"].append(month)
                cost_rows["amount"].append(float(np.round(rng.uniform(5_000, 80_000), -2)))
                cost_rows["note"].append("")
    _insert(engine, ChannelCost, cost_rows)
    if sqlite:
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    counts = {"leads": float(leads), "touchpoints": float(n_touch), "stage_changes": float(len(changes)),
              "opportunities": float(len(deal)), "won": float(converted.sum()),
              "seconds": time.perf_counter() - started}
    if not quiet:
        print(f"built {leads:,} leads, {n_touch:,} touchpoints, {len(changes):,} stage changes, "
              f"{len(deal):,} opportunities in {counts['seconds']:.1f} s")
    return counts


if __name__ == "__main__":
    build_report_database(sys.argv[1], leads=int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)
