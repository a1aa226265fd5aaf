"""Deterministic, realistic demo data for a Chinese B2B software company.

``seed_demo(engine, leads=3000, seed=42, now=…)`` fills an empty database (or, with ``reset=True``, empties it
first) with a year of marketing: channels and campaigns with costs, accounts, leads with their journeys and
lifecycle, sales hand-offs with SLA clocks, opportunities, tags and groups, rules, workflows with enrollments,
past imports and a dedup review queue. Everything is labelled as demo where the schema has a flag for it.

Determinism: all randomness comes from ``numpy.random.default_rng(seed)`` and all times from ``now`` (default:
the current minute), and ids are assigned here — so the same seed and ``now`` give the same rows, ids included.
Only the password hashes differ (argon2 salts).

Generation is pure (``generate``); the database part inserts whole columns (``seed.bulk``) in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, SQLModel

import db.models as models
from core.auth import SYSTEM, create_user
from core.errors import LeadLoopError
from db.engine import is_default_database
from db.migrate import upgrade_to_head
from seed import automation, bulk, catalog, extras, journeys, lifecycle, marketing, people
from seed.timeline import DAY, Timeline, parse_now
from seed.world import World

__all__ = ["SeedRefused", "autoseed", "database_is_empty", "generate", "reset_database", "seed_demo"]


class SeedRefused(LeadLoopError):
    """The database already holds data and no reset was asked for."""

    key = "error.seed_refused"


# ---------------------------------------------------------------------------------------------------------------
# Generation (no database)
# ---------------------------------------------------------------------------------------------------------------
def generate(*, leads: int = 3000, seed: int = 42, now: datetime | str | None = None) -> World:
    """The whole demo world as columns per table, in insertion order (users excepted: see ``seed_demo``)."""
    if leads < 1:
        raise ValueError("leads must be at least 1")
    world = World(rng=np.random.default_rng(seed), timeline=Timeline(parse_now(now)), n_leads=leads, seed=seed)
    marketing.build_channels_and_campaigns(world)
    people.build_accounts(world)
    people.build_leads(world)
    lifecycle.simulate(world)
    automation.build_workflows(world)
    journeys.build_touchpoints(world)
    extras.build_rules(world)
    extras.build_tags_and_groups(world)
    extras.build_display_names(world)
    extras.build_imports(world)
    extras.build_candidates(world)
    _assemble(world)
    extras.build_operations(world, {name: len(next(iter(cols.values()))) for name, cols in world.tables.items()})
    return world


def _none(values: Any) -> list[Any]:
    """Python values with None for every kind of missing (NaN, NA, NaT)."""
    series = pd.Series(values).astype(object)
    return series.where(series.notna(), None).tolist()


def _ids(values: Any) -> list[int | None]:
    """Foreign keys and counts: positive ints, None for 0, -1 or missing."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return [v if v > 0 else None for v in values.tolist()]
    array = pd.to_numeric(pd.Series(values).astype(object), errors="coerce").to_numpy(dtype=np.float64)
    ok = array > 0
    out = np.full(len(array), None, dtype=object)
    out[ok] = array[ok].astype(np.int64).tolist()
    return out.tolist()


def _times(values: Any) -> np.ndarray:
    """Epoch seconds with NaN where the sentinel -1 (or missing) means no time."""
    array = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    return np.where(array < 0, np.nan, array)


def _assemble(world: World) -> None:
    leads, accounts, tps = world.leads, world.accounts, world.touchpoints
    changes, assignments, opportunities = world.stage_changes, world.assignments, world.opportunities
    assert leads is not None and accounts is not None and tps is not None
    assert changes is not None and assignments is not None and opportunities is not None
    rng = world.rng
    tl = world.timeline
    n = len(leads)

    # Accounts: created with their first lead; customers include those won this year.
    first_lead = leads.groupby("account_id")["created"].min()
    account_created = accounts["id"].map(first_lead).to_numpy(dtype=np.float64)
    fallback = tl.start - rng.integers(30 * DAY, 400 * DAY, size=len(accounts))
    won_accounts = set(leads.loc[leads["stage"] == "won", "account_id"].dropna().astype(int).tolist())
    world.add("account", {
        "id": accounts["id"].to_numpy(),
        "name": accounts["name"].tolist(),
        "name_key": accounts["name_key"].tolist(),
        "domain": accounts["domain"].tolist(),
        "industry": accounts["industry"].tolist(),
        "company_size": accounts["company_size"].tolist(),
        "province": accounts["province"].tolist(),
        "city": accounts["city"].tolist(),
        "owner_id": _ids(accounts["owner_id"]),
        "is_target": accounts["is_target"].tolist(),
        "target_lists": accounts["target_lists"].tolist(),
        "is_customer": (accounts["is_customer"] | accounts["id"].isin(won_accounts)).tolist(),
        "created_at": np.where(np.isnan(account_created), fallback, account_created - 10),
    })

    created = leads["created"].to_numpy(dtype=np.int64)
    stage_at = leads["stage_changed_at"].to_numpy(dtype=np.int64)
    world.add("lead", {
        "id": leads["id"].to_numpy(),
        "company_size": _ids(leads["company_size"]),
        **{c: _none(leads[c]) for c in ("name", "email", "phone", "wechat_id", "company", "title", "industry",
                                         "province", "city", "product_interest", "name_key",
                                         "company_key", "tracking_code", "utm_source", "utm_medium", "utm_campaign",
                                         "invalid_reason")},
        "account_id": _ids(leads["account_id"]),
        "source_channel_id": leads["channel_id"].to_numpy(),
        "source_campaign_id": leads["campaign_id"].to_numpy(),
        "referrer_id": _ids(leads["referrer_id"]),
        "import_batch_id": _ids(leads["import_batch_id"]),
        "owner_id": _ids(leads["owner_id"]),
        "stage": leads["stage"].tolist(),
        "stage_changed_at": stage_at,
        "recycle_at": _times(leads["recycle_at"]),
        "is_customer": leads["is_customer"].tolist(),
        "status": leads["status"].tolist(),
        "unsubscribed": leads["unsubscribed"].tolist(),
        "attributes": leads["attributes"].tolist(),
        "search_text": leads["search_text"].tolist(),
        "last_activity_at": _times(leads["last_activity_at"]),
        "created_at": created,
        "updated_at": np.maximum(created, stage_at),
        "is_demo": True,
    })

    lead_id = tps["lead"].to_numpy() + 1
    occurred = tps["t"].to_numpy()
    world.add("touchpoint", {
        "id": tps["id"].to_numpy(),
        "lead_id": lead_id,
        "kind": np.array(journeys.KINDS, dtype=object)[tps["kind"].to_numpy()].tolist(),
        "channel_id": _ids(tps["channel_id"].to_numpy()),
        "campaign_id": _ids(tps["campaign_id"].to_numpy()),
        "occurred_at": occurred,
        "properties": [p if p is not None else {} for p in tps["props"].tolist()],
        "natural_key": [f"seed:{lead}:{seq}" for lead, seq in zip(lead_id.tolist(), tps["seq"].tolist(), strict=True)],
        "import_batch_id": _ids(tps["batch"].to_numpy()),
        "created_at": occurred,
    })

    world.add("stagechange", {
        "id": np.arange(1, len(changes) + 1),
        "lead_id": changes["lead"].to_numpy() + 1,
        "from_stage": _none(changes["from_stage"]),
        "to_stage": changes["to_stage"].tolist(),
        "by_user_id": _ids(changes["by_user_id"]),
        "by_rule": _none(changes["by_rule"]),
        "reason": changes["reason"].astype(str).tolist(),
        "at": changes["at"].to_numpy(),
    })

    decided = assignments["decided_at"].to_numpy()
    world.add("assignment", {
        "id": np.arange(1, len(assignments) + 1),
        "lead_id": assignments["lead"].to_numpy() + 1,
        "rep_id": assignments["rep_id"].to_numpy(),
        "routed_by": assignments["routed_by"].tolist(),
        "status": assignments["status"].tolist(),
        "reason": _none(assignments["reason"]),
        "note": assignments["note"].tolist(),
        "assigned_at": assignments["assigned_at"].to_numpy(),
        "sla_due_at": assignments["sla_due_at"].to_numpy(),
        "reminded_at": _times(assignments["reminded_at"]),
        "escalated_at": _times(assignments["escalated_at"]),
        "breached": assignments["breached"].tolist(),
        "decided_at": _times(decided),
        "decided_by_id": _ids(np.where(decided > 0, assignments["rep_id"].to_numpy(), -1)),
        "come_back_at": _times(assignments["come_back_at"]),
        "crm_pushed_at": _times(assignments["crm_pushed_at"]),
        "crm_status": ["sent" if t > 0 else None for t in assignments["crm_pushed_at"].tolist()],  # core.routing.crm codes
    })

    opp_lead = np.asarray(opportunities["lead"], dtype=np.int64)
    opp_year = [tl.to_datetime(t).year for t in np.asarray(opportunities["created"]).tolist()]
    company = leads["company"].to_numpy(dtype=object)
    product = leads["product_interest"].to_numpy(dtype=object)
    account_names = dict(zip(accounts["id"], accounts["core"], strict=True))
    account_of = leads["account_id"].to_numpy(dtype=object)
    names = []
    for lead, year in zip(opp_lead.tolist(), opp_year, strict=True):
        account = account_of[lead]
        who = account_names.get(int(account)) if account is not None and not pd.isna(account) else None
        names.append(f"{who or company[lead] or leads.at[lead, 'name']}-{product[lead] or '营销云'}-{year}")
    world.add("opportunity", {
        "id": np.arange(1, len(opp_lead) + 1),
        "lead_id": opp_lead + 1,
        "account_id": _ids(leads["account_id"].to_numpy(dtype=object)[opp_lead]),
        "name": names,
        "amount": np.asarray(opportunities["amount"], dtype=np.float64),
        "stage": list(opportunities["stage"]),
        "owner_id": _ids(leads["owner_id"].to_numpy(dtype=object)[opp_lead]),
        "created_at": np.asarray(opportunities["created"]),
        "closed_at": _times(opportunities["closed"]),
    })
    world.add("auditlog", {
        # after the one "user.create" entry per demo user that core.auth writes
        "id": [len(catalog.USERS) + 1], "at": [world.now], "user_id": [None], "action": ["seed.demo"], "entity": ["database"],
        "entity_id": [None], "detail": [{"leads": n, "seed": world.seed, "now": tl.now_dt.isoformat()}],
    })


# ---------------------------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------------------------
def _tables() -> list[Any]:
    return list(SQLModel.metadata.sorted_tables)


def _row_counts(connection: Connection) -> dict[str, int]:
    existing = set(inspect(connection).get_table_names())
    return {
        table.name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
        for table in _tables()
        if table.name in existing
    }


def database_is_empty(engine: Engine) -> bool:
    """No users and no leads (or no schema yet): what the app checks before seeding the embedded database."""
    with engine.connect() as connection:
        existing = set(inspect(connection).get_table_names())
        for table in (models.User.__table__, models.Lead.__table__):
            if table.name in existing and connection.execute(select(func.count()).select_from(table)).scalar_one():
                return False
    return True


def reset_database(connection: Connection) -> None:
    """Delete every row, children before parents (``sorted_tables`` reversed); restart the id sequences."""
    for table in reversed(_tables()):
        connection.execute(table.delete())
    _restart_sequences(connection)


def _serial_tables() -> list[Any]:
    return [t for t in _tables() if "id" in t.c and t.c["id"].primary_key]


def _restart_sequences(connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        return  # SQLite reuses max(rowid) + 1: ids start at 1 again in empty tables
    for table in _serial_tables():
        connection.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), 1, false)"))


def _sync_sequences(connection: Connection) -> None:
    """After inserting explicit ids, the next id PostgreSQL hands out is max(id) + 1."""
    if connection.dialect.name != "postgresql":
        return
    for table in _serial_tables():
        connection.execute(text(
            f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) "
            f'FROM "{table.name}"'
        ))


@contextmanager
def _loading(engine: Engine) -> Iterator[Connection]:
    """A connection set up for a bulk load. On SQLite: foreign-key checks off during the load (the generator
    links rows by construction and the tests run ``PRAGMA foreign_key_check``) and a bigger page cache."""
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.exec_driver_sql("PRAGMA cache_size=-262144")
            connection.commit()
        try:
            yield connection
        finally:
            if sqlite:
                connection.rollback()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.exec_driver_sql("PRAGMA cache_size=-2000")
                connection.commit()


def _drop_indexes(connection: Connection, tables: list[str]) -> list[str]:
    """SQLite builds an index faster in one go than row by row: drop the secondary indexes of the tables about
    to be filled and return their definitions (recreated in the same transaction)."""
    if connection.dialect.name != "sqlite":
        return []
    found = connection.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN "
        f"({', '.join('?' * len(tables))}) ORDER BY name",
        tuple(tables),
    ).all()
    for name, _ in found:
        connection.exec_driver_sql(f'DROP INDEX "{name}"')
    return [sql for _, sql in found]


def _create_users(connection: Connection, world: World) -> int:
    """The demo team, through ``core.auth.create_user`` (argon2); timestamps pinned to the seed's clock."""
    joined = world.timeline.to_datetime(world.timeline.start - 30 * DAY)
    session = Session(bind=connection)
    for spec in catalog.USERS:
        user = create_user(
            session, actor=SYSTEM, username=spec["username"], password=catalog.DEMO_PASSWORD, role=spec["role"],
            display_name=spec["display_name"], email=f"{spec['username']}@demo.leadloop.cn",
            manager_id=catalog.MANAGER_ID if spec["role"] == "sales" else None,
            territories=spec.get("territories"), industries=spec.get("industries"),
            product_lines=spec.get("product_lines"), language=spec.get("language", "zh"),
        )
        user.employee_code = spec.get("employee_code")
        user.capacity = 60 if spec["role"] == "sales" else 50
        user.created_at = joined
        user.password_changed_at = joined
        session.add(user)
        session.flush()
        if user.id != catalog.USERS.index(spec) + 1:
            raise RuntimeError(f"expected user id {catalog.USERS.index(spec) + 1}, got {user.id}")
    session.execute(update(models.AuditLog).values(at=joined))
    session.flush()
    session.close()
    return len(catalog.USERS)


def seed_demo(
    engine: Engine,
    *,
    leads: int = 3000,
    seed: int = 42,
    now: datetime | str | None = None,
    reset: bool = False,
) -> dict[str, int]:
    """Migrate, then fill the database with demo data; returns the number of rows per table.

    Refuses (``SeedRefused``) when the database already holds data, unless ``reset`` — which deletes every row
    first. Generation happens before the database is touched, and the load is one transaction: a failure leaves
    the database as it was."""
    upgrade_to_head(engine)
    with engine.connect() as connection:
        before = _row_counts(connection)
    if not reset and any(before.values()):
        raise SeedRefused(
            f"The database already holds data ({before.get('lead', 0):,} leads, {before.get('user', 0):,} users, "
            f"{sum(before.values()):,} rows in all). Run with --reset to delete everything and seed again.",
            leads=before.get("lead", 0),
        )
    world = generate(leads=leads, seed=seed, now=now)
    counts: dict[str, int] = {}
    tables = {table.name: table for table in _tables()}
    with _loading(engine) as connection:
        with connection.begin():
            if reset:
                reset_database(connection)
            else:
                _restart_sequences(connection)
            counts["user"] = _create_users(connection, world)
            names = [t.name for t in _tables() if t.name in world.tables]
            indexes = _drop_indexes(connection, names)
            for name in names:
                counts[name] = bulk.insert(connection, tables[name], world.tables[name])
            for sql in indexes:
                connection.exec_driver_sql(sql)
            _sync_sequences(connection)
            _account_figures(connection, world)
            counts["scoreevent"] = _scores(connection, world)
    return counts


# The ideal-customer profile of the demo company: what its fit rules favour (catalog.RULES).
DEMO_ICP: dict[str, Any] = {
    "industries": ["制造业", "金融", "医疗"],
    "size_min": 200,
    "size_max": 20_000,
    "regions": ["上海", "北京", "广东", "江苏", "浙江"],
    "departments": ["it", "procurement"],
    "weights": {"industry": 40, "size": 30, "region": 20, "committee": 10},
}


def _account_figures(connection: Connection, world: World) -> None:
    """The demo ICP, then every account's engagement, fit and MQA signal computed as the product does it."""
    from core.accounts import refresh_accounts

    now = world.timeline.to_datetime(world.now)
    session = Session(bind=connection)
    session.add(models.Setting(key="icp", value=DEMO_ICP, updated_at=now, updated_by_id=catalog.MARKETER_ID))
    session.flush()
    refresh_accounts(session=session, now=now)
    session.flush()
    session.close()


def _scores(connection: Connection, world: World) -> int:
    """A full rescore with the demo rules, so demo leads have their ledger, scores and grades (who crosses the
    MQL line is left alone: the simulated lifecycle already decided the stages)."""
    from core.scoring import rescore

    session = Session(bind=connection)
    report = rescore(session=session, now=world.timeline.to_datetime(world.now))
    session.flush()
    session.close()
    return report.events


def autoseed(engine: Engine) -> dict[str, int] | None:
    """What the app calls on start: seed the embedded default database (``data/leadloop.db``) when it holds no
    users and no leads; any other database is left alone. Returns the counts, or None when nothing was done."""
    if not is_default_database(engine.url.render_as_string(hide_password=False)) or not database_is_empty(engine):
        return None
    return seed_demo(engine)
