from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, text
from sqlalchemy import select as sa_select
from sqlmodel import Session, SQLModel, select

from core.auth import authenticate
from core.normalize import lead_keys
from db.models import (
    Account,
    Assignment,
    Channel,
    DuplicateCandidate,
    Enrollment,
    GroupMember,
    ImportBatch,
    Lead,
    Message,
    Opportunity,
    StageChange,
    StepRun,
    Touchpoint,
    User,
    Workflow,
)
from seed import SeedRefused, database_is_empty, seed_demo
from seed.demo import generate

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Shanghai
LEADS = 300

# Columns that legitimately differ between two runs: salted password hashes.
VOLATILE = {("user", "password_hash")}


def _mark_migrated(engine) -> None:
    """The test fixtures build the schema with create_all; tell Alembic it is at head so the seed's
    upgrade_to_head leaves it alone (a real database gets there through the migrations)."""
    from alembic import command

    from db.migrate import alembic_config, current_revision, head_revision

    if current_revision(engine) != head_revision():
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.stamp(config, "head")


@pytest.fixture
def engine(engine):
    _mark_migrated(engine)
    return engine


@pytest.fixture
def sqlite_engine(sqlite_engine):
    _mark_migrated(sqlite_engine)
    return sqlite_engine


def dump(engine) -> dict[str, list[tuple]]:
    """Every row of every table, ordered by primary key, as plain tuples."""
    tables: dict[str, list[tuple]] = {}
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            columns = [c for c in table.columns if (table.name, c.name) not in VOLATILE]
            order = list(table.primary_key.columns)
            rows = connection.execute(sa_select(*columns).order_by(*order)).all()
            tables[table.name] = [tuple(row) for row in rows]
    return tables


def test_seeded_database(engine):
    """One seed per backend, then every invariant (seeding is the slow part: argon2 for the demo users)."""
    counts = seed_demo(engine, leads=LEADS, seed=7, now=NOW)
    seeded = (engine, counts)
    for check in (check_counts_and_labels, check_stage_history, check_touchpoints, check_assignments_and_sla,
                  check_today_is_alive, check_keys_come_from_normalize, check_workflow_records,
                  check_demo_users_can_log_in):
        check(seeded)


def test_seeding_is_deterministic(engine, tmp_path):
    from db.engine import make_engine

    seed_demo(engine, leads=LEADS, seed=7, now=NOW)
    first = dump(engine)
    seed_demo(engine, leads=LEADS, seed=7, now=NOW, reset=True)
    assert dump(engine) == first, "same seed and now must give identical rows, ids included"

    # A different seed gives different data.
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    seed_demo(other, leads=LEADS, seed=8, now=NOW)
    different = dump(other)
    other.dispose()
    assert different["lead"] != first["lead"]
    assert different["touchpoint"] != first["touchpoint"]
    assert different["stagechange"] != first["stagechange"]


def test_generation_alone_is_deterministic():
    a = generate(leads=120, seed=3, now=NOW)
    b = generate(leads=120, seed=3, now=NOW)
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:
        assert repr(a.tables[name]) == repr(b.tables[name]), name


def check_counts_and_labels(seeded):
    engine, counts = seeded
    assert counts["lead"] == LEADS
    assert counts["user"] == 7
    assert counts["channel"] == 9
    assert counts["touchpoint"] >= 7 * LEADS
    with Session(engine) as session:
        for model in (Lead, Touchpoint, StageChange, Account, Assignment, Opportunity, ImportBatch, Workflow,
                      Enrollment, StepRun, Message, GroupMember, DuplicateCandidate):
            stored = session.exec(select(func.count()).select_from(model)).one()
            assert stored == counts[model.__tablename__], model.__tablename__
        assert session.exec(select(func.count()).where(Lead.is_demo.is_(False))).one() == 0
        assert session.exec(select(func.count()).where(ImportBatch.is_demo.is_(False))).one() == 0
        kinds = set(session.exec(select(Channel.kind)).all())
        assert kinds == {"website", "wechat", "livestream", "tradeshow", "email", "sem", "referral", "social", "event"}


def check_stage_history(seeded):
    engine, _ = seeded
    with Session(engine) as session:
        leads = {lead.id: lead for lead in session.exec(select(Lead)).all()}
        changes: dict[int, list[StageChange]] = {}
        for change in session.exec(select(StageChange).order_by(StageChange.lead_id, StageChange.id)).all():
            changes.setdefault(change.lead_id, []).append(change)
    assert set(changes) == set(leads), "every lead has a history"
    for lead_id, history in changes.items():
        lead = leads[lead_id]
        assert history[0].from_stage is None and history[0].to_stage == "new"
        assert history[-1].to_stage == lead.stage
        assert history[-1].at == lead.stage_changed_at
        times = [c.at for c in history]
        assert times == sorted(times) and len(set(times)) == len(times), f"lead {lead_id}: times not increasing"
        for before, after in zip(history, history[1:], strict=False):
            assert after.from_stage == before.to_stage, f"lead {lead_id}: broken chain"
        for change in history[1:]:
            assert (change.by_rule is None) != (change.by_user_id is None), "each change by a rule or a person"
        if lead.stage in ("mql", "sal", "sql", "opportunity", "won", "lost"):
            assert lead.owner_id in (4, 5, 6, 7)
        else:
            assert lead.owner_id is None


def check_touchpoints(seeded):
    engine, _ = seeded
    with Session(engine) as session:
        keys = session.exec(select(Touchpoint.natural_key)).all()
        assert len(keys) == len(set(keys))
        leads = {lead.id: lead for lead in session.exec(select(Lead)).all()}
        touches = session.exec(select(Touchpoint).order_by(Touchpoint.lead_id, Touchpoint.occurred_at)).all()
    by_lead: dict[int, list[Touchpoint]] = {}
    for touch in touches:
        by_lead.setdefault(touch.lead_id, []).append(touch)
    assert set(by_lead) == set(leads)
    average = len(touches) / len(leads)
    assert 7 <= average <= 14, average
    for lead_id, journey in by_lead.items():
        lead = leads[lead_id]
        first = journey[0]
        assert first.occurred_at == lead.created_at
        assert first.channel_id == lead.source_channel_id
        assert journey[-1].occurred_at == lead.last_activity_at
        assert all(t.occurred_at <= NOW for t in journey)
        assert all(t.natural_key.startswith(f"seed:{lead_id}:") for t in journey)
    attended = [t for t in touches if t.kind == "webinar_attended"]
    assert attended and all(isinstance(t.properties.get("minutes"), int) for t in attended)


def test_funnel_rates_in_published_ranges():
    world = generate(leads=2000, seed=11, now=NOW)
    changes, leads = world.stage_changes, world.leads
    reached = {stage: changes.loc[changes["to_stage"] == stage, "lead"].nunique()
               for stage in ("mql", "sal", "sql", "opportunity", "won")}
    valid = int((leads["status"] == "valid").sum())
    invalid = int((leads["status"] == "invalid").sum())
    assert 0.18 <= reached["mql"] / valid <= 0.35
    assert 0.40 <= reached["sal"] / reached["mql"] <= 0.70
    assert 0.45 <= reached["sql"] / reached["sal"] <= 0.75
    assert reached["opportunity"] / reached["sql"] >= 0.7
    assert 0.12 <= reached["won"] / reached["sql"] <= 0.40
    assert 0.03 <= invalid / len(leads) <= 0.07
    assert 0.03 <= leads["is_dup"].mean() <= 0.05


def check_assignments_and_sla(seeded):
    engine, _ = seeded
    with Session(engine) as session:
        assignments = session.exec(select(Assignment)).all()
        leads = {lead.id: lead for lead in session.exec(select(Lead)).all()}
    pending = [a for a in assignments if a.status == "pending"]
    assert pending, "some MQLs wait for sales"
    assert all(a.sla_due_at is not None and a.decided_at is None for a in pending)
    assert any(a.sla_due_at > NOW for a in pending), "some are still within their SLA"
    assert any(a.breached for a in assignments), "some hand-offs breached the SLA"
    for a in pending:
        assert leads[a.lead_id].stage == "mql" and leads[a.lead_id].owner_id == a.rep_id
    rejected = [a for a in assignments if a.status == "rejected"]
    assert rejected and all(a.reason in {"cannot_reach", "no_budget", "wrong_person", "competitor", "duplicate",
                                         "not_now"} and a.note for a in rejected)
    assert all(a.decided_at is not None and a.decided_at > a.assigned_at for a in assignments if a.status != "pending")


def check_today_is_alive(seeded):
    engine, _ = seeded
    with Session(engine) as session:
        fresh = session.exec(select(func.count()).where(Lead.created_at > NOW - timedelta(hours=12))).one()
        batches = session.exec(select(ImportBatch).order_by(ImportBatch.id)).all()
        future_runs = session.exec(select(func.count()).where(Enrollment.status == "active",
                                                             Enrollment.next_run_at > NOW)).one()
    assert fresh >= 3
    assert [b.status for b in batches] == ["committed", "committed", "undone"]
    assert batches[-1].undone_at is not None
    assert any(b.created_at > NOW - timedelta(days=14) for b in batches)
    assert all(set(b.counts) == {"inserted", "updated", "duplicates_in_file", "invalid", "touchpoints"} for b in batches)
    assert future_runs > 0


def check_keys_come_from_normalize(seeded):
    engine, _ = seeded
    import pandas as pd

    with Session(engine) as session:
        leads = session.exec(select(Lead)).all()
    frame = pd.DataFrame([{"name": x.name, "phone": x.phone, "email": x.email, "company": x.company,
                           "wechat_id": x.wechat_id} for x in leads])
    keys = lead_keys(frame)
    assert keys["name_key"].tolist() == [x.name_key for x in leads]
    assert keys["company_key"].tolist() == [x.company_key for x in leads]
    assert keys["search_text"].tolist() == [x.search_text for x in leads]
    assert all(x.phone is None or x.phone.startswith("+") for x in leads)


def check_workflow_records(seeded):
    engine, _ = seeded
    with Session(engine) as session:
        enrollments = session.exec(select(Enrollment)).all()
        runs = session.exec(select(StepRun)).all()
        messages = session.exec(select(Message)).all()
        workflows = {w.id: w for w in session.exec(select(Workflow)).all()}
    assert enrollments and runs and messages
    assert {w.status for w in workflows.values()} == {"active", "draft"}
    for workflow in workflows.values():
        steps = workflow.definition["steps"]
        assert workflow.definition["start"] in steps
        for step in steps.values():
            for target in (step.get("next"), step.get("yes"), step.get("no")):
                assert target is None or target in steps
    assert len({r.idempotency_key for r in runs}) == len(runs)
    assert len({m.idempotency_key for m in messages}) == len(messages)
    by_enrollment = {e.id: e for e in enrollments}
    for run in runs:
        enrollment = by_enrollment[run.enrollment_id]
        assert run.step_id in workflows[enrollment.workflow_id].definition["steps"]
        assert enrollment.entered_at <= run.at <= NOW
    for enrollment in enrollments:
        if enrollment.status == "active":
            assert enrollment.next_run_at is not None and enrollment.finished_at is None
        else:
            assert enrollment.status == "completed" and enrollment.finished_at is not None


def check_demo_users_can_log_in(seeded):
    engine, _ = seeded
    with Session(engine) as session:
        for username in ("admin", "marketer", "manager", "sales1", "sales4"):
            actor = authenticate(session, username=username, password="demo1234", now=NOW)
            assert actor.username == username
        reps = session.exec(select(User).where(User.role == "sales").order_by(User.id)).all()
        manager = session.exec(select(User).where(User.username == "manager")).one()
    assert [r.manager_id for r in reps] == [manager.id] * 4
    assert reps[0].territories == ["上海", "江苏", "浙江"] and reps[0].industries == ["制造业"]
    assert reps[2].product_lines == ["数据平台"]
    assert all(r.employee_code for r in reps)


def test_refuses_a_database_with_leads_and_reset_works(engine):
    assert database_is_empty(engine)
    seed_demo(engine, leads=80, seed=1, now=NOW)
    assert not database_is_empty(engine)
    with pytest.raises(SeedRefused, match="--reset"):
        seed_demo(engine, leads=80, seed=1, now=NOW)
    counts = seed_demo(engine, leads=5, seed=2, now=NOW, reset=True)  # a tiny seed works too
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Lead)).one() == 5
        assert session.exec(select(func.min(Lead.id))).one() == 1
        assert session.exec(select(func.count()).select_from(User)).one() == 7
        # Explicit ids must not leave PostgreSQL sequences behind: the next insert gets max(id) + 1.
        lead = Lead(name="新线索", created_at=NOW, updated_at=NOW)
        session.add(lead)
        session.commit()
        assert lead.id == counts["lead"] + 1


def test_foreign_keys_hold_on_sqlite(sqlite_engine):
    seed_demo(sqlite_engine, leads=200, seed=9, now=NOW)
    with sqlite_engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


def test_cli_refuses_then_resets(tmp_path, capsys):
    from seed.__main__ import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["--leads", "40", "--now", "2026-11-23T10:00:00", "--database-url", url]) == 0
    assert "Seeded" in capsys.readouterr().out
    assert main(["--leads", "40", "--database-url", url]) == 1
    assert "--reset" in capsys.readouterr().err
    assert main(["--leads", "40", "--reset", "--database-url", url]) == 0


def test_bulk_rows_read_back_like_orm_rows(engine):
    """seed.bulk writes values the way SQLAlchemy would: same stored datetime text on SQLite, comparable in
    queries, JSON, dates and booleans read back through the ORM unchanged."""
    from datetime import date

    from sqlalchemy import insert

    from db.models import Campaign, ChannelCost
    from seed import bulk

    at = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    precise = datetime(2026, 5, 4, 3, 2, 1, 250_000, tzinfo=UTC)
    with engine.begin() as connection:
        bulk.insert(connection, Channel.__table__, {"id": [1], "name": ["官网表单"], "kind": ["website"],
                                                    "description": [""], "import_mapping": [{"姓名": "name"}],
                                                    "created_at": [at.timestamp()]})
        bulk.insert(connection, Campaign.__table__, {"id": [1], "name": ["c"], "channel_id": [1],
                                                     "start_date": [date(2026, 1, 1)], "created_at": [at]})
        bulk.insert(connection, ChannelCost.__table__, {"id": [1], "channel_id": [1], "campaign_id": [1],
                                                        "month": [date(2026, 5, 1)], "amount": [1200.0]})
        bulk.insert(connection, Lead.__table__, {"id": [1, 2], "created_at": [at.timestamp(), precise],
                                                 "updated_at": [at.timestamp(), precise.timestamp()],
                                                 "last_activity_at": [None, float("nan")], "attributes": [{}, {"a": 1}],
                                                 "unsubscribed": [True, False], "is_demo": True})
        bulk.insert(connection, Touchpoint.__table__, {
            "id": [1], "lead_id": [1], "kind": ["page_view"], "occurred_at": [at.timestamp()],
            "properties": [{"url": "/价格"}], "natural_key": ["bulk"], "created_at": [at.timestamp()]})
        connection.execute(insert(Touchpoint.__table__).values(
            id=2, lead_id=1, kind="page_view", occurred_at=at, properties={"url": "/价格"}, natural_key="orm",
            created_at=at))
        if connection.dialect.name == "sqlite":
            stored = connection.exec_driver_sql("SELECT occurred_at FROM touchpoint ORDER BY id").scalars().all()
            assert stored[0] == stored[1]
    with Session(engine) as session:
        bulk_row, orm_row = session.exec(select(Touchpoint).order_by(Touchpoint.id)).all()
        assert bulk_row.occurred_at == orm_row.occurred_at == at
        assert bulk_row.properties == orm_row.properties == {"url": "/价格"}
        found = session.exec(select(Touchpoint.natural_key).where(Touchpoint.occurred_at >= at)
                             .order_by(Touchpoint.id)).all()
        assert found == ["bulk", "orm"]
        first, second = session.exec(select(Lead).order_by(Lead.id)).all()
        assert first.created_at == at and second.created_at == precise and second.updated_at == precise
        assert first.last_activity_at is None and second.last_activity_at is None
        assert first.attributes == {} and second.attributes == {"a": 1}
        assert first.unsubscribed is True and second.unsubscribed is False and first.stage == "new"
        assert session.get(Campaign, 1).start_date == date(2026, 1, 1)
        assert session.get(ChannelCost, 1).month == date(2026, 5, 1)
        assert session.get(Channel, 1).import_mapping == {"姓名": "name"}


def test_bulk_insert_demands_computed_defaults(sqlite_engine):
    from seed import bulk

    with sqlite_engine.begin() as connection, pytest.raises(ValueError, match="created_at"):
        bulk.insert(connection, Channel.__table__, {"id": [1], "name": ["x"], "import_mapping": [{}]})


def test_autoseed_only_touches_the_embedded_default_database(sqlite_engine):
    from seed import autoseed

    assert autoseed(sqlite_engine) is None  # a test database is not the embedded default one
    assert database_is_empty(sqlite_engine)
