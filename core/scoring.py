"""Fit and engagement scores, decay, grades, tag rules and the MQL line — all kept in the score ledger.

The ledger (``ScoreEvent``) is the source of truth; ``Lead.fit_score``/``engagement_score``/``grade`` are its
cache, rewritten from the ledger's sums on every rescore. Rescoring is a diff: for every lead in scope the
points each rule *should* have given (fit: while the condition holds; engagement: per matching touchpoint, within
its cap per period) are compared with what the ledger holds per (lead, rule, touchpoint), and only the
difference is written — so a rescore is idempotent, a changed rule adjusts every lead by one event, and the
history of why a score is what it is stays complete. Everything is set-based: one SQL statement per rule (or
one for all fit rules), pandas for the diff, a bulk insert for the new events.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from core.rules import RuleSyntaxError, lead_condition, lead_facts, parse, predicate, rule_ast, to_sql
from core.settings import get_setting
from db.engine import FOREIGN_KEYS_OFF
from db.models import (
    Campaign,
    Channel,
    Lead,
    LeadStatus,
    LeadTag,
    Rule,
    RuleKind,
    ScoreEvent,
    Stage,
    Tag,
    Touchpoint,
)

DEFAULT_GRADE_BANDS = {"A": 60.0, "B": 40.0, "C": 20.0}
CHUNK = 20_000  # leads per incremental pass (keeps IN lists within every database's parameter limit)
_US_PER_DAY = 86_400 * 1_000_000
_EVENT_COLUMNS = ["lead_id", "component", "rule_id", "rule_version", "touchpoint_id", "points", "kind", "reason",
                  "occurred_at", "created_at"]


@dataclass
class ScoreReport:
    """What a rescore did. ``crossed_mql``: leads that satisfy the MQL rule and are not MQL yet — the caller hands
    them to ``core.lifecycle.promote_to_mql``."""

    full: bool = True
    leads: int = 0
    fit_events: int = 0
    engagement_events: int = 0
    decay_events: int = 0
    tags_added: int = 0
    tags_removed: int = 0
    crossed_mql: list[int] = field(default_factory=list)
    skipped_rules: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return self.fit_events + self.engagement_events + self.decay_events

    def merge(self, other: ScoreReport) -> None:
        for name in ("leads", "fit_events", "engagement_events", "decay_events", "tags_added", "tags_removed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.crossed_mql.extend(other.crossed_mql)
        self.skipped_rules = sorted(set(self.skipped_rules) | set(other.skipped_rules))

    def summary(self) -> dict[str, Any]:
        return {"full": self.full, "leads": self.leads, "events": self.events, "fit_events": self.fit_events,
                "engagement_events": self.engagement_events, "decay_events": self.decay_events,
                "tags_added": self.tags_added, "tags_removed": self.tags_removed,
                "crossed_mql": len(self.crossed_mql), "skipped_rules": self.skipped_rules,
                "seconds": round(self.seconds, 3)}


# ---------------------------------------------------------------------------------------------------------------
# Time as int64 microseconds since the epoch (vectorised; no datetime objects per row)
# ---------------------------------------------------------------------------------------------------------------
def _us(value: datetime) -> int:
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return int(round(value.timestamp() * 1_000_000))


def _times_us(values: Any) -> np.ndarray:
    """Stored times (SQLite text ``YYYY-MM-DD HH:MM:SS.ffffff`` or driver datetimes) → int64 µs since epoch."""
    series = pd.Series(values)
    if series.empty:
        return np.zeros(0, dtype=np.int64)
    if series.dtype == object and isinstance(series.iloc[0], str):
        parsed = pd.to_datetime(series, format="%Y-%m-%d %H:%M:%S.%f", utc=True, errors="coerce")
        if parsed.isna().any():
            parsed = pd.to_datetime(series, format="ISO8601", utc=True)
    else:
        parsed = pd.to_datetime(series, utc=True)
    return parsed.to_numpy(dtype="datetime64[us]").astype(np.int64)


def _raw_time(column: Any) -> Any:
    # Read the stored value as is: parsing a million datetimes one by one in Python costs seconds.
    return type_coerce(column, String)


def _scope(column: Any, ids: list[int] | None) -> ColumnElement[bool]:
    return true() if ids is None else column.in_(ids)


# ---------------------------------------------------------------------------------------------------------------
# Rules in force
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class _Active:
    rule: Rule
    ast: dict[str, Any] | None


def _active_rules(session: Session, report: ScoreReport) -> dict[str, list[_Active]]:
    out: dict[str, list[_Active]] = {k.value: [] for k in RuleKind}
    for rule in session.scalars(select(Rule).where(Rule.active).order_by(Rule.id)):
        try:
            out.setdefault(rule.kind, []).append(_Active(rule, rule_ast(rule)))
        except RuleSyntaxError:
            # A rule saved before a field was renamed no longer parses: it scores nothing until fixed.
            report.skipped_rules.append(int(rule.id or 0))
    return out


def grade_bands(session: Session) -> dict[str, float]:
    bands = get_setting(session, "scoring").get("grade_bands") or {}
    return {g: float(bands.get(g, DEFAULT_GRADE_BANDS[g])) for g in ("A", "B", "C")}


def mql_rule(session: Session) -> tuple[int | None, str, dict[str, Any]]:
    """(rule id, text, AST) of the MQL line: the active MQL rule, else the team setting."""
    rule = session.scalars(select(Rule).where(Rule.active, Rule.kind == RuleKind.MQL).order_by(Rule.id)).first()
    if rule is not None:
        ast = rule_ast(rule)
        if ast is not None:
            return int(rule.id or 0), rule.text, ast
    text = str(get_setting(session, "mql").get("threshold_rule") or "")
    return None, text, parse(text)


# ---------------------------------------------------------------------------------------------------------------
# Rescore
# ---------------------------------------------------------------------------------------------------------------
def rescore(*, session: Session, now: datetime, lead_ids: Iterable[int] | None = None) -> ScoreReport:
    """Bring the ledger and the cached scores of ``lead_ids`` (all leads when None) up to date with the active
    rules: tags, fit, engagement, decay, grade; report the leads that crossed the MQL line. The caller commits."""
    started = time.perf_counter()
    if lead_ids is None:
        report = ScoreReport(full=True)
        _rescore(session, now, None, report)
    else:
        ids = sorted({int(i) for i in lead_ids})
        report = ScoreReport(full=False)
        if len(ids) <= FEW:
            _rescore_few(session, now, ids, report)
        else:
            for start in range(0, len(ids), CHUNK):
                _rescore(session, now, ids[start:start + CHUNK], report)
    report.crossed_mql = sorted(set(report.crossed_mql))
    report.seconds = time.perf_counter() - started
    return report


def _rescore(session: Session, now: datetime, ids: list[int] | None, report: ScoreReport) -> None:
    if ids is None and session.get_bind().dialect.name == "sqlite":
        # A full pass reads and writes the whole ledger: with SQLite's default 2 MB page cache the index pages
        # are read again and again from disk. This connection keeps a bigger cache (256 MB at most), and so does
        # its temporary schema, which holds the wanted and held points of every rule during the pass.
        session.connection().exec_driver_sql("PRAGMA cache_size=-262144")
        session.connection().exec_driver_sql("PRAGMA temp.cache_size=-262144")
        _foreign_keys_off(session)
    rules = _active_rules(session, report)
    _apply_tags(session, now, ids, rules[RuleKind.TAG], report)
    report.leads += int(session.scalar(select(func.count()).select_from(Lead).where(
        Lead.status != LeadStatus.MERGED, _scope(Lead.id, ids))) or 0)
    fit_events, engagement_events = _apply_rules(session, now, ids, rules[RuleKind.FIT], rules[RuleKind.ENGAGEMENT])
    report.fit_events += fit_events
    report.engagement_events += engagement_events
    report.decay_events += _decay(session, now, ids, rules[RuleKind.DECAY])
    _refresh_cache(session, now, ids)
    report.crossed_mql.extend(_crossed_mql(session, now, ids))


def _foreign_keys_off(session: Session) -> None:
    """SQLite checks every foreign key of every ledger row it inserts (a lookup in the lead, rule and touchpoint
    tables each): for a full pass that is a third of the time spent writing the ledger. Every row a full pass
    writes comes from leads, rules and touchpoints read in the same transaction, so the checks are turned off
    for this transaction — only when it has not written anything yet (SQLite ignores the pragma inside a
    transaction) — and the pool turns them back on when the connection is returned (``db.engine``)."""
    session.flush()
    proxied = session.connection().connection
    driver = proxied.driver_connection
    if driver is None or getattr(driver, "in_transaction", True):
        return
    proxied.info[FOREIGN_KEYS_OFF] = True
    driver.execute("PRAGMA foreign_keys=OFF")


def _apply_tags(session: Session, now: datetime, ids: list[int] | None, rules: list[_Active],
                report: ScoreReport) -> None:
    for item in rules:
        if item.ast is None:
            continue
        rule = item.rule
        tag_id = _tag_id(session, str(rule.params.get("tag")))
        condition = lead_condition(item.ast, now=now, per_lead=ids is not None)
        missing = (select(Lead.id, literal(tag_id), literal("rule"), literal(rule.id),
                          literal(now, type_=LeadTag.__table__.c.created_at.type))
                   .where(condition, Lead.status != LeadStatus.MERGED, _scope(Lead.id, ids),
                          ~exists(select(LeadTag.lead_id).where(LeadTag.lead_id == Lead.id,
                                                                LeadTag.tag_id == tag_id)))
                   .order_by(Lead.id))
        report.tags_added += _rows(session, insert(LeadTag).from_select(
            ["lead_id", "tag_id", "source", "rule_id", "created_at"], missing))
        if rule.params.get("remove_when_false"):
            report.tags_removed += _rows(session, delete(LeadTag).where(
                LeadTag.tag_id == tag_id, LeadTag.rule_id == rule.id, LeadTag.source == "rule",
                _scope(LeadTag.lead_id, ids), LeadTag.lead_id.not_in(select(Lead.id).where(condition))))


def _rows(session: Session, statement: Any) -> int:
    """Run a Core statement on the session's connection (in its transaction) and return the rows it touched."""
    session.flush()
    # preserve_rowcount: SQLAlchemy only keeps the driver's count for UPDATE/DELETE unless asked.
    result = session.connection().execute(statement.execution_options(preserve_rowcount=True))
    return max(int(result.rowcount or 0), 0)


def _tag_id(session: Session, name: str) -> int:
    tag_id = session.scalar(select(Tag.id).where(Tag.name == name))
    if tag_id is None:
        tag = Tag(name=name)
        session.add(tag)
        session.flush()
        tag_id = tag.id
    return int(tag_id)


# Ledger rows are written with INSERT … SELECT: what each rule should give is computed in the database and only
# the difference with what the ledger already holds is inserted; no row travels through Python. Each SELECT is
# ordered so event ids come out the same on every run (the seed is deterministic, ids included).
def _event_insert(select_statement: Any) -> Any:
    return insert(ScoreEvent).from_select(_EVENT_COLUMNS, select_statement)


def _now(now: datetime) -> Any:
    return literal(now, type_=ScoreEvent.__table__.c.occurred_at.type)


# Subqueries that hold a correlated lookup end in OFFSET 0: it keeps SQLite and PostgreSQL from inlining them
# into the outer query, which would run the lookup once per reference instead of once per row.
def _apply_rules(session: Session, now: datetime, ids: list[int] | None, fit: list[_Active],
                 engagement: list[_Active]) -> tuple[int, int]:
    """Fit and engagement in one diff against the ledger; returns (fit events, engagement events) written.

    What every active rule should give goes to a temporary table (per fit rule one INSERT … SELECT over the
    leads, per engagement rule one over its touchpoints); what the ledger holds per (component, lead, rule,
    touchpoint) goes to another, summed in one grouped pass. Two joins then write the differences: wanted
    points the ledger does not hold yet, and held points nothing wants any more (no longer matching, or the rule
    is not in force). This replaces a ledger lookup per lead and per touchpoint. When the ledger holds nothing
    for the leads in scope, the rules' SELECTs write their events directly."""
    fit = [item for item in fit if item.ast is not None]
    engagement = [item for item in engagement if item.ast is not None]
    connection = session.connection()
    want, held = _want_table(), _held_table()
    for table in (want, held):
        table.drop(connection, checkfirst=True)
        table.create(connection)
    try:
        active = {"fit": {int(i.rule.id or 0): int(i.rule.version) for i in fit},
                  "engagement": {int(i.rule.id or 0): int(i.rule.version) for i in engagement}}
        holding = _hold(session, ids, active, held)
        wants = [_want_fit(session, now, ids, item) for item in fit] + \
                [_want_engagement(session, now, ids, item) for item in engagement]
        if not holding:
            # Nothing held for these leads (a first scoring, an empty ledger): every wanted point is new and
            # goes to the ledger directly, rule by rule, without the detour through the temporary table.
            return _write_new(session, now, [rows for rows in wants if rows is not None])
        for rows in wants:
            if rows is not None:
                _rows(session, insert(want).from_select(_WANT_COLUMNS, rows))
        return _write_difference(session, now, active, want, held)
    finally:
        for table in (want, held):
            table.drop(connection)


_KEY = ("component", "lead_id", "rule_id", "tp")


def _want_table() -> Table:
    """Per-connection temporary table: the points the active rules should give (``tp`` 0 for fit)."""
    return Table("score_want", MetaData(), Column("id", Integer, primary_key=True),
                 Column("component", String(16), nullable=False), Column("lead_id", Integer, nullable=False),
                 Column("rule_id", Integer, nullable=False), Column("tp", Integer, nullable=False),
                 Column("version", Integer, nullable=False), Column("points", Float, nullable=False),
                 Column("at", ScoreEvent.__table__.c.occurred_at.type), prefixes=["TEMPORARY"])


def _held_table() -> Table:
    """Per-connection temporary table: what the ledger holds per (component, lead, rule, touchpoint)."""
    return Table("score_held", MetaData(), Column("component", String(16), nullable=False),
                 Column("lead_id", Integer, nullable=False), Column("rule_id", Integer, nullable=False),
                 Column("tp", Integer, nullable=False), Column("points", Float, nullable=False),
                 Column("version", Integer), Column("at", ScoreEvent.__table__.c.occurred_at.type),
                 prefixes=["TEMPORARY"])


_WANT_COLUMNS = ["component", "lead_id", "rule_id", "tp", "version", "points", "at"]


def _want_fit(session: Session, now: datetime, ids: list[int] | None, item: _Active) -> Any:
    rule = item.rule
    if float(rule.points) == 0:
        return None
    rows = (select(literal("fit"), Lead.id, literal(int(rule.id or 0)), literal(0), literal(int(rule.version)),
                   literal(float(rule.points)), _now(now))
            .where(to_sql(item.ast, now=now, per_lead=ids is not None),  # type: ignore[arg-type]
                   Lead.status != LeadStatus.MERGED, _scope(Lead.id, ids))
            .order_by(Lead.id))
    return rows


def _want_engagement(session: Session, now: datetime, ids: list[int] | None, item: _Active) -> Any:
    """``points`` per matching touchpoint, in time order, until the lead reached ``cap`` within the
    ``period_days`` window (a window function); capped touchpoints are wanted with 0 points."""
    rule = item.rule
    params = rule.params or {}
    points = float(rule.points)
    filters = [to_sql(item.ast, now=now, per_lead=ids is not None), Touchpoint.occurred_at <= now,  # type: ignore[arg-type]
               Lead.status != LeadStatus.MERGED, _scope(Touchpoint.lead_id, ids)]
    if params.get("touchpoint_kind"):
        filters.append(Touchpoint.kind == str(params["touchpoint_kind"]))
    if params.get("campaign"):
        filters.append(Touchpoint.campaign_id.in_(select(Campaign.id).where(
            Campaign.name == str(params["campaign"]))))
    cap = params.get("cap")
    matched = (select(Touchpoint.id.label("tp"), Touchpoint.lead_id.label("lead"),
                      Touchpoint.occurred_at.label("at"))
               .join(Lead, Lead.id == Touchpoint.lead_id).where(*filters))
    if ids is not None:  # a few leads: their touchpoints by lead, not every touchpoint of the kind
        matched = matched.with_hint(Touchpoint, "INDEXED BY ix_touchpoint_lead_occurred", "sqlite")
    if cap and points > 0:
        period = max(float(params.get("period_days") or 36_500), 1.0)
        window = func.floor(_epoch_days(session, Touchpoint.occurred_at) / period)
        ranked = matched.add_columns(func.row_number().over(
            partition_by=(Touchpoint.lead_id, window),
            order_by=(Touchpoint.occurred_at, Touchpoint.id)).label("n")).subquery()
        room = float(cap) - points * (ranked.c.n - 1)
        award: Any = case((room >= points, points), (room > 0, room), else_=0.0)
    else:
        ranked = matched.subquery()
        award = literal(points)
    return select(literal("engagement"), ranked.c.lead, literal(int(rule.id or 0)), ranked.c.tp,
                  literal(int(rule.version)), award, ranked.c.at)


def _write_new(session: Session, now: datetime, wants: list[Any]) -> tuple[int, int]:
    counts = {"fit": 0, "engagement": 0}
    for rows in wants:
        w = rows.subquery().c
        component, lead, rule_id, tp, version, points, at = (w[i] for i in range(7))
        kind = "fit" if rows.selected_columns[0].value == "fit" else "engagement"
        events = (select(lead, literal(kind), rule_id, version, func.nullif(tp, 0), points, literal("rule"),
                         literal("matched" if kind == "fit" else "touchpoint"), at, _now(now))
                  .where(func.abs(points) > 1e-9))
        counts[kind] += _rows(session, _event_insert(events))
    return counts["fit"], counts["engagement"]


def _hold(session: Session, ids: list[int] | None, active: dict[str, dict[int, int]], held: Table) -> int:
    """What the ledger holds per (component, lead, rule, touchpoint), summed into ``held``; returns its rows."""
    # A fit rule in force never looks at merged leads (they are out of scope), so their fit points stay put;
    # engagement points of a merged lead's touchpoints go back, as no touchpoint of it matches any more.
    merged_fit = and_(ScoreEvent.component == "fit", ScoreEvent.rule_id.in_(list(active["fit"]) or [-1]),
                      ScoreEvent.lead_id.in_(select(Lead.id).where(Lead.status == LeadStatus.MERGED)))
    tp = func.coalesce(ScoreEvent.touchpoint_id, 0)
    sums = (select(ScoreEvent.component, ScoreEvent.lead_id, ScoreEvent.rule_id, tp, func.sum(ScoreEvent.points),
                   func.max(ScoreEvent.rule_version), func.max(ScoreEvent.occurred_at))
            .where(ScoreEvent.kind == "rule", ScoreEvent.rule_id.is_not(None),
                   ScoreEvent.component.in_(("fit", "engagement")), _scope(ScoreEvent.lead_id, ids), ~merged_fit)
            .group_by(ScoreEvent.lead_id, ScoreEvent.component, ScoreEvent.rule_id, tp))
    return _rows(session, insert(held).from_select([*_KEY, "points", "version", "at"], sums))


def _write_difference(session: Session, now: datetime, active: dict[str, dict[int, int]], want: Table,
                      held: Table) -> tuple[int, int]:
    before = session.scalar(select(func.max(ScoreEvent.id))) or 0
    w, h = want.c, held.c
    same = and_(*(h[c] == w[c] for c in _KEY))
    connection = session.connection()
    Index("ix_score_held_key", h.lead_id, h.component, h.rule_id, h.tp).create(connection)
    Index("ix_score_want_key", w.lead_id, w.component, w.rule_id, w.tp).create(connection)
    # Wanted: every row of ``want`` belongs to a rule in force.
    have = func.coalesce(h.points, 0.0)
    delta = w.points - have
    reason = case((have == 0, case((w.component == "fit", "matched"), else_="touchpoint")),
                  (w.points == 0, "no_longer_matches"), else_="points_changed")
    occurred = case((w.component == "fit", _now(now)), else_=w.at)
    wanted = (select(w.lead_id, w.component, w.rule_id, w.version, func.nullif(w.tp, 0), delta, literal("rule"),
                     reason, occurred, _now(now))
              .select_from(want.outerjoin(held, same)).where(func.abs(delta) > 1e-9)
              .order_by(w.lead_id, w.component, w.rule_id, w.tp))
    written = _rows(session, _event_insert(wanted))
    # Held and no longer wanted: the points go back, by the rule's current version if it is still in force.
    in_force = or_(and_(h.component == "fit", h.rule_id.in_(list(active["fit"]) or [-1])),
                   and_(h.component == "engagement", h.rule_id.in_(list(active["engagement"]) or [-1])))
    versions = [(and_(h.component == component, h.rule_id == rule_id), version)
                for component, rules in active.items() for rule_id, version in rules.items()]
    version = case(*versions, else_=h.version) if versions else h.version
    occurred = case((and_(in_force, h.component == "fit"), _now(now)), else_=h.at)
    reason = case((in_force, "no_longer_matches"), else_="rule_inactive")
    gone = (select(h.lead_id, h.component, h.rule_id, version, func.nullif(h.tp, 0), -h.points,
                   literal("rule"), reason, occurred, _now(now))
            .where(func.abs(h.points) > 1e-9, ~exists(select(w.id).where(same)))
            .order_by(h.lead_id, h.component, h.rule_id, h.tp))
    written += _rows(session, _event_insert(gone))
    if not written:
        return 0, 0
    counts = dict(session.execute(select(ScoreEvent.component, func.count()).where(ScoreEvent.id > before)
                                  .group_by(ScoreEvent.component)).all())
    return int(counts.get("fit", 0)), int(counts.get("engagement", 0))


def _epoch_days(session: Session, column: Any) -> Any:
    """A stored time as fractional days since 1970 (for windows and half-lives computed in the database)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", column) / 86_400.0
    return func.julianday(column) - 2_440_587.5


# ---------------------------------------------------------------------------------------------------------------
# Decay
# ---------------------------------------------------------------------------------------------------------------
def apply_decay(*, session: Session, now: datetime) -> int:
    """The daily job: bring every lead's decay up to ``now`` (one ``decay`` ledger event per lead whose decay
    changed) and refresh the cached scores; returns the number of events written."""
    rules = _active_rules(session, ScoreReport())
    if not rules[RuleKind.DECAY]:
        return 0
    written = _decay(session, now, None, rules[RuleKind.DECAY])
    _refresh_cache(session, now, None)
    return written


def _decay(session: Session, now: datetime, ids: list[int] | None, rules: list[_Active]) -> int:
    """Half-life: decay = Σ points·(½^(age/half-life) − 1) over the lead's engagement rule events, kept as a
    running correction (only the change is written, so applying it twice a day writes nothing; a new touchpoint
    is not decayed until it ages). Idle: −N points per X days without a touchpoint, never below zero."""
    written = 0
    half_life = next((r for r in rules if r.rule.params.get("half_life_days")), None)
    if half_life is not None:
        written += _half_life(session, now, ids, half_life)
    for item in rules:
        if item.rule.params.get("idle_days") and not item.rule.params.get("half_life_days"):
            written += _idle_decay(session, now, ids, _decay_scope(session, now, ids, item), item)
    return written


def _half_life(session: Session, now: datetime, ids: list[int] | None, item: _Active) -> int:
    rule = item.rule
    days = float(rule.params["half_life_days"])
    now_days = (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp() / 86_400
    age = func.max(now_days - _epoch_days(session, ScoreEvent.occurred_at), 0.0) \
        if session.get_bind().dialect.name == "sqlite" else \
        func.greatest(now_days - _epoch_days(session, ScoreEvent.occurred_at), 0.0)
    target = (select(ScoreEvent.lead_id.label("key"),
                     func.sum(ScoreEvent.points * (func.power(0.5, age / days) - 1.0)).label("target"))
              .where(ScoreEvent.component == "engagement", ScoreEvent.kind == "rule", _scope(ScoreEvent.lead_id, ids))
              .group_by(ScoreEvent.lead_id).subquery())
    held = (select(ScoreEvent.lead_id.label("key"), func.sum(ScoreEvent.points).label("held"))
            .where(ScoreEvent.kind == "decay", ScoreEvent.rule_id == rule.id, _scope(ScoreEvent.lead_id, ids))
            .group_by(ScoreEvent.lead_id).subquery())
    delta = func.coalesce(target.c.target, 0.0) - func.coalesce(held.c.held, 0.0)
    scope = [Lead.status != LeadStatus.MERGED, _scope(Lead.id, ids), func.abs(delta) >= 0.01]
    if item.ast is not None:
        scope.append(lead_condition(item.ast, now=now, per_lead=ids is not None))
    rows = (select(Lead.id, literal("engagement"), literal(rule.id), literal(rule.version), null(), delta,
                   literal("decay"), literal("half_life"), _now(now), _now(now))
            .select_from(Lead).outerjoin(target, target.c.key == Lead.id).outerjoin(held, held.c.key == Lead.id)
            .where(*scope).order_by(Lead.id))
    return _rows(session, _event_insert(rows))


def _decay_scope(session: Session, now: datetime, ids: list[int] | None, item: _Active) -> np.ndarray:
    condition = lead_condition(item.ast, now=now, per_lead=ids is not None) if item.ast is not None else true()
    matched = session.scalars(select(Lead.id).where(condition, Lead.status != LeadStatus.MERGED,
                                                    _scope(Lead.id, ids))).all()
    return np.array(matched, dtype=np.int64)


def _idle_decay(session: Session, now: datetime, ids: list[int] | None, scoped: np.ndarray, item: _Active) -> int:
    rule = item.rule
    idle_days = float(rule.params["idle_days"])
    step = float(rule.params.get("idle_points") or abs(rule.points) or 0)
    if step <= 0 or len(scoped) == 0:
        return 0
    last = (select(Touchpoint.lead_id, _raw_time(func.max(Touchpoint.occurred_at)))
            .where(Touchpoint.occurred_at <= now, _scope(Touchpoint.lead_id, ids)).group_by(Touchpoint.lead_id))
    leads = session.execute(select(Lead.id, _raw_time(Lead.created_at), Lead.engagement_score)
                            .where(_scope(Lead.id, ids), Lead.status != LeadStatus.MERGED)
                            .order_by(Lead.id)).all()
    frame = pd.DataFrame(leads, columns=["lead_id", "created", "engagement"]).set_index("lead_id")
    frame = frame[frame.index.isin(scoped)]
    frame["last"] = _times_us(frame["created"].tolist()) if len(frame) else []
    touched = pd.DataFrame(session.execute(last).all(), columns=["lead_id", "raw"])
    if len(touched):
        touched["at"] = _times_us(touched["raw"].tolist())
        frame["last"] = touched.set_index("lead_id")["at"].reindex(frame.index).fillna(frame["last"]).astype(np.int64)
    applied = pd.DataFrame(session.execute(
        select(ScoreEvent.lead_id, _raw_time(ScoreEvent.occurred_at))
        .where(ScoreEvent.kind == "decay", ScoreEvent.rule_id == rule.id, _scope(ScoreEvent.lead_id, ids))).all(),
        columns=["lead_id", "raw"])
    applied["at"] = _times_us(applied["raw"].tolist()) if len(applied) else []
    net = _net_engagement(session, ids)
    frame["net"] = net.reindex(frame.index).fillna(0.0)
    frame["due"] = np.floor((_us(now) - frame["last"]) / (idle_days * _US_PER_DAY)).clip(lower=0)
    applied["last"] = applied["lead_id"].map(frame["last"])
    done = applied[applied["at"] > applied["last"]].groupby("lead_id").size()
    frame["done"] = done.reindex(frame.index).fillna(0)
    frame["points"] = -np.minimum((frame["due"] - frame["done"]).clip(lower=0) * step, frame["net"].clip(lower=0))
    frame = frame[frame["points"] < 0]
    return _insert_events(session, pd.DataFrame({
        "lead_id": frame.index.to_numpy(dtype=np.int64), "component": "engagement", "rule_id": int(rule.id or 0),
        "rule_version": int(rule.version), "touchpoint_id": 0, "points": frame["points"].round(2).to_numpy(),
        "kind": "decay", "reason": "idle", "occurred_at": _us(now)}), now)


def _net_engagement(session: Session, ids: list[int] | None) -> pd.Series:
    rows = session.execute(select(ScoreEvent.lead_id, func.sum(ScoreEvent.points))
                           .where(ScoreEvent.component == "engagement", _scope(ScoreEvent.lead_id, ids))
                           .group_by(ScoreEvent.lead_id)).all()
    return pd.Series({int(k): float(v) for k, v in rows}, dtype="float64")


# ---------------------------------------------------------------------------------------------------------------
# A few leads (after an import row, a form, a touchpoint): the Python predicate on their facts
# ---------------------------------------------------------------------------------------------------------------
FEW = 200  # up to this many leads, the Python evaluator on loaded facts beats ~90 SQL statements


def _rescore_few(session: Session, now: datetime, ids: list[int], report: ScoreReport) -> None:
    """The same rules and the same ledger as the SQL passes, evaluated in Python on the leads' facts (a dozen
    statements in all); tests check both paths write the same ledger."""
    session.flush()
    rules = _active_rules(session, report)
    facts = {i: f for i, f in lead_facts(session=session, lead_ids=ids, now=now).items()
             if f["status"] != LeadStatus.MERGED}
    leads = sorted(facts)
    report.leads += len(leads)
    if not leads:
        return
    _few_tags(session, now, facts, rules[RuleKind.TAG], report)
    desired: dict[tuple[str, int, int, int], tuple[float, int]] = {}  # (component, lead, rule, tp) -> (pts, at)
    now_us = _us(now)
    for item in rules[RuleKind.FIT]:
        if item.ast is None:
            continue
        test = predicate(item.ast, now=now)
        for lead_id in leads:
            if test(facts[lead_id]) and float(item.rule.points) != 0:
                desired[("fit", lead_id, int(item.rule.id or 0), 0)] = (float(item.rule.points), now_us)
    touchpoints = _few_touchpoints(session, leads, now)
    for item in rules[RuleKind.ENGAGEMENT]:
        if item.ast is None:
            continue
        rule, params = item.rule, item.rule.params or {}
        test = predicate(item.ast, now=now)
        points = float(rule.points)
        period = max(float(params.get("period_days") or 36_500), 1.0)
        cap = params.get("cap") if points > 0 else None
        used: dict[tuple[int, int], int] = {}
        for tp in touchpoints:
            if params.get("touchpoint_kind") and tp["kind"] != str(params["touchpoint_kind"]):
                continue
            if params.get("campaign") and tp["campaign"] != str(params["campaign"]):
                continue
            if not test({**facts[tp["lead_id"]], **tp}):
                continue
            award = points
            if cap:
                window = (tp["lead_id"], int(np.floor(tp["at"] / _US_PER_DAY / period)))
                n = used.get(window, 0)
                used[window] = n + 1
                room = float(cap) - points * n
                award = points if room >= points else room if room > 0 else 0.0
            desired[("engagement", tp["lead_id"], int(rule.id or 0), int(tp["id"]))] = (award, tp["at"])
    versions = {int(i.rule.id or 0): int(i.rule.version) for k in (RuleKind.FIT, RuleKind.ENGAGEMENT)
                for i in rules[k] if i.ast is not None}
    events = _few_diff(session, leads, desired, versions, now_us)
    report.fit_events += int((events["component"] == "fit").sum()) if len(events) else 0
    report.engagement_events += int((events["component"] == "engagement").sum()) if len(events) else 0
    _insert_events(session, events, now)
    report.decay_events += _few_half_life(session, now, leads, facts, rules[RuleKind.DECAY])
    for item in rules[RuleKind.DECAY]:
        if item.rule.params.get("idle_days") and not item.rule.params.get("half_life_days"):
            report.decay_events += _idle_decay(session, now, leads, _decay_scope(session, now, leads, item), item)
    _refresh_cache(session, now, leads)
    report.crossed_mql.extend(_crossed_mql(session, now, leads))


def _few_tags(session: Session, now: datetime, facts: dict[int, dict[str, Any]], rules: list[_Active],
              report: ScoreReport) -> None:
    leads = sorted(facts)
    existing = session.execute(select(LeadTag.lead_id, LeadTag.tag_id, LeadTag.source, LeadTag.rule_id)
                               .where(LeadTag.lead_id.in_(leads))).all()
    have = {(r.lead_id, r.tag_id): r for r in existing}
    for item in rules:
        if item.ast is None:
            continue
        rule = item.rule
        name = str(rule.params.get("tag"))
        tag_id = _tag_id(session, name)
        test = predicate(item.ast, now=now)
        for lead_id in leads:
            holds = test(facts[lead_id])
            row = have.get((lead_id, tag_id))
            if holds and row is None:
                session.add(LeadTag(lead_id=lead_id, tag_id=tag_id, source="rule", rule_id=rule.id, created_at=now))
                have[(lead_id, tag_id)] = LeadTag(lead_id=lead_id, tag_id=tag_id, source="rule", rule_id=rule.id)
                facts[lead_id]["tags"].add(name)
                report.tags_added += 1
            elif (not holds and row is not None and rule.params.get("remove_when_false") and row.source == "rule"
                  and row.rule_id == rule.id):
                session.execute(delete(LeadTag).where(LeadTag.lead_id == lead_id, LeadTag.tag_id == tag_id))
                del have[(lead_id, tag_id)]
                facts[lead_id]["tags"].discard(name)
                report.tags_removed += 1
    session.flush()


def _few_touchpoints(session: Session, leads: list[int], now: datetime) -> list[dict[str, Any]]:
    query = (select(Touchpoint.id, Touchpoint.lead_id, Touchpoint.kind, Channel.name.label("channel"),
                    Campaign.name.label("campaign"), _raw_time(Touchpoint.occurred_at).label("raw"))
             .join(Channel, Channel.id == Touchpoint.channel_id, isouter=True)
             .join(Campaign, Campaign.id == Touchpoint.campaign_id, isouter=True)
             .where(Touchpoint.lead_id.in_(leads), Touchpoint.occurred_at <= now))
    rows = [dict(r) for r in session.execute(query).mappings()]
    stamps = _times_us([r["raw"] for r in rows])
    for row, at in zip(rows, stamps.tolist(), strict=True):
        row["at"] = int(at)
    rows.sort(key=lambda r: (r["at"], r["id"]))
    return rows


def _few_diff(session: Session, leads: list[int], desired: dict[tuple[str, int, int, int], tuple[float, int]],
              versions: dict[int, int], now_us: int) -> pd.DataFrame:
    total = func.sum(ScoreEvent.points)
    held_rows = session.execute(
        select(ScoreEvent.component, ScoreEvent.lead_id, ScoreEvent.rule_id,
               ScoreEvent.touchpoint_id, total, func.max(ScoreEvent.rule_version),
               _raw_time(func.max(ScoreEvent.occurred_at)))
        .where(ScoreEvent.kind == "rule", ScoreEvent.rule_id.is_not(None), ScoreEvent.lead_id.in_(leads),
               ScoreEvent.component.in_(("fit", "engagement")))
        .group_by(ScoreEvent.component, ScoreEvent.lead_id, ScoreEvent.rule_id, ScoreEvent.touchpoint_id)).all()
    held_at = _times_us([r[6] for r in held_rows]).tolist()
    held = {(r[0], int(r[1]), int(r[2]), int(r[3] or 0)): (float(r[4]), r[5], int(t))
            for r, t in zip(held_rows, held_at, strict=True)}
    rows = []
    for key in set(desired) | set(held):
        want, at = desired.get(key, (0.0, None))
        have, old_version, old_at = held.get(key, (0.0, None, None))
        delta = round(want - have, 6)
        if abs(delta) <= 1e-9:
            continue
        component, lead_id, rule_id, tp = key
        if rule_id not in versions:
            reason, version, when = "rule_inactive", old_version, old_at
        else:
            version = versions[rule_id]
            if have == 0:
                reason = "matched" if component == "fit" else "touchpoint"
            else:
                reason = "no_longer_matches" if want == 0 else "points_changed"
            when = at if at is not None else (old_at if component == "engagement" else now_us)
        if component == "fit" and rule_id in versions:
            when = now_us
        rows.append((lead_id, component, rule_id, version, tp, delta, "rule", reason, when))
    return pd.DataFrame(rows, columns=["lead_id", "component", "rule_id", "rule_version", "touchpoint_id",
                                       "points", "kind", "reason", "occurred_at"])


def _few_half_life(session: Session, now: datetime, leads: list[int], facts: dict[int, dict[str, Any]],
                   rules: list[_Active]) -> int:
    item = next((r for r in rules if r.rule.params.get("half_life_days")), None)
    if item is None:
        return 0
    rule = item.rule
    days = float(rule.params["half_life_days"])
    if item.ast is not None:
        test = predicate(item.ast, now=now)
        leads = [i for i in leads if test(facts[i])]
    if not leads:
        return 0
    rows = session.execute(select(ScoreEvent.lead_id, ScoreEvent.kind, ScoreEvent.rule_id, ScoreEvent.points,
                                  _raw_time(ScoreEvent.occurred_at))
                           .where(ScoreEvent.lead_id.in_(leads), ScoreEvent.component == "engagement",
                                  ScoreEvent.kind.in_(("rule", "decay")))).all()
    stamps = _times_us([r[4] for r in rows]).tolist()
    now_days = _us(now) / _US_PER_DAY
    target: dict[int, float] = {}
    held: dict[int, float] = {}
    for (lead_id, kind, rule_id, points, _), at in zip(rows, stamps, strict=True):
        if kind == "rule":
            age = max(now_days - at / _US_PER_DAY, 0.0)
            target[lead_id] = target.get(lead_id, 0.0) + float(points) * (0.5 ** (age / days) - 1.0)
        elif rule_id == rule.id:
            held[lead_id] = held.get(lead_id, 0.0) + float(points)
    changes = [(i, target.get(i, 0.0) - held.get(i, 0.0)) for i in leads]
    changes = [(i, d) for i, d in changes if abs(d) >= 0.01]
    if not changes:
        return 0
    return _insert_events(session, pd.DataFrame({
        "lead_id": [i for i, _ in changes], "component": "engagement", "rule_id": int(rule.id or 0),
        "rule_version": int(rule.version), "touchpoint_id": 0, "points": [d for _, d in changes], "kind": "decay",
        "reason": "half_life", "occurred_at": _us(now)}), now)


# ---------------------------------------------------------------------------------------------------------------
def _insert_events(session: Session, events: pd.DataFrame, now: datetime) -> int:
    """Append ledger rows in bulk (driver executemany on SQLite, COPY on PostgreSQL): SQLAlchemy's per-value
    processing of a million rows would take longer than the scoring itself."""
    n = len(events)
    if n == 0:
        return 0
    connection = session.connection()
    dialect = connection.dialect.name
    at = events["occurred_at"].to_numpy(dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    touchpoints = [None if t == 0 else int(t) for t in events["touchpoint_id"].to_numpy(dtype=np.int64).tolist()]
    versions = [None if pd.isna(v) else int(v) for v in events["rule_version"].tolist()]
    rule_ids = [None if pd.isna(v) or v == 0 else int(v) for v in events["rule_id"].tolist()]
    columns = ", ".join(f'"{c}"' for c in _EVENT_COLUMNS)
    lead_ids = events["lead_id"].to_numpy(dtype=np.int64).tolist()
    points = events["points"].to_numpy(dtype=np.float64).tolist()
    component, kind, reason = (pd.Series(events[c]).astype(str).tolist() if not np.isscalar(events[c])
                               else [events[c]] * n for c in ("component", "kind", "reason"))
    if dialect == "sqlite":
        stamps = at.astype("datetime64[us]")
        texts = [f"{t[:10]} {t[11:]}" for t in np.datetime_as_string(stamps, unit="us").tolist()]
        created = np.datetime_as_string(np.datetime64(_us(now), "us"), unit="us").replace("T", " ")
        rows = list(zip(lead_ids, component, rule_ids, versions, touchpoints, points, kind, reason, texts,
                        [created] * n, strict=True))
        sql = f"INSERT INTO scoreevent ({columns}) VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})"
        for start in range(0, n, 100_000):
            connection.exec_driver_sql(sql, rows[start:start + 100_000])
        return n
    times = [datetime.fromtimestamp(t / 1_000_000, tz=UTC) for t in at.tolist()]
    now_aware = now if now.tzinfo else now.replace(tzinfo=UTC)
    if dialect == "postgresql" and connection.dialect.driver == "psycopg":
        driver_connection = connection.connection.driver_connection
        with driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY scoreevent ({columns}) FROM STDIN") as copy:
                for row in zip(lead_ids, component, rule_ids, versions, touchpoints, points, kind, reason, times,
                               strict=True):
                    copy.write_row((*row, now_aware))
        return n
    session.execute(insert(ScoreEvent), [dict(zip(_EVENT_COLUMNS, (*row, now_aware), strict=True)) for row in zip(
        lead_ids, component, rule_ids, versions, touchpoints, points, kind, reason, times, strict=True)])
    return n


def _refresh_cache(session: Session, now: datetime, ids: list[int] | None) -> None:
    """The lead's score columns := sums of its ledger; the grade from the fit bands."""
    def total(component: str) -> Any:
        return (select(func.coalesce(func.sum(ScoreEvent.points), 0.0))
                .where(ScoreEvent.lead_id == Lead.id, ScoreEvent.component == component).scalar_subquery())

    scope = and_(Lead.status != LeadStatus.MERGED, _scope(Lead.id, ids))
    if ids is not None:
        session.execute(update(Lead).where(scope).values(fit_score=total("fit"),
                                                         engagement_score=total("engagement"),
                                                         scored_at=now).execution_options(synchronize_session=False))
    else:
        # A full pass: the ledger summed once (one grouped scan) and only the leads whose sums differ rewritten;
        # a correlated sum per lead costs seconds on 100,000 leads.
        sums = (select(ScoreEvent.lead_id.label("lead_id"),
                       func.sum(case((ScoreEvent.component == "fit", ScoreEvent.points), else_=0.0)).label("fit"),
                       func.sum(case((ScoreEvent.component == "engagement", ScoreEvent.points), else_=0.0))
                       .label("engagement"))
                .group_by(ScoreEvent.lead_id).subquery())
        session.execute(update(Lead).where(scope, Lead.id == sums.c.lead_id,
                                           or_(Lead.fit_score != sums.c.fit,
                                               Lead.engagement_score != sums.c.engagement))
                        .values(fit_score=sums.c.fit, engagement_score=sums.c.engagement)
                        .execution_options(synchronize_session=False))
        session.execute(update(Lead).where(scope, or_(Lead.fit_score != 0, Lead.engagement_score != 0),
                                           ~exists(select(ScoreEvent.id).where(ScoreEvent.lead_id == Lead.id)))
                        .values(fit_score=0.0, engagement_score=0.0).execution_options(synchronize_session=False))
        session.execute(update(Lead).where(scope).values(scored_at=now).execution_options(synchronize_session=False))
    bands = grade_bands(session)
    grade = case((Lead.fit_score >= bands["A"], "A"), (Lead.fit_score >= bands["B"], "B"),
                 (Lead.fit_score >= bands["C"], "C"), else_="D")
    session.execute(update(Lead).where(scope).values(grade=grade).execution_options(synchronize_session=False))
    # Leads already loaded in this session would otherwise show the scores from before.
    for item in list(session.identity_map.values()):
        if isinstance(item, Lead):
            session.expire(item, ["fit_score", "engagement_score", "grade", "scored_at"])


def _crossed_mql(session: Session, now: datetime, ids: list[int] | None) -> list[int]:
    try:
        _, _, ast = mql_rule(session)
    except RuleSyntaxError:
        return []
    ready = or_(Lead.stage == Stage.NEW,
                and_(Lead.stage == Stage.RECYCLED, or_(Lead.recycle_at.is_(None), Lead.recycle_at <= now)))
    query = select(Lead.id).where(lead_condition(ast, now=now, per_lead=ids is not None), ready, Lead.status == LeadStatus.VALID,
                                  _scope(Lead.id, ids))
    return [int(i) for i in session.scalars(query)]


# ---------------------------------------------------------------------------------------------------------------
# Reading the ledger
# ---------------------------------------------------------------------------------------------------------------
EXPLAIN_COLUMNS = ["occurred_at", "component", "rule", "rule_id", "rule_version", "touchpoint_id", "touchpoint",
                   "campaign", "points", "kind", "reason"]


def explain(*, session: Session, lead_id: int) -> pd.DataFrame:
    """Every ledger line of a lead, oldest first: which rule (and version), which touchpoint, how many points,
    and what decay took away. Its ``points`` add up to the lead's fit + engagement score."""
    query = (select(ScoreEvent.occurred_at, ScoreEvent.component, Rule.name.label("rule"), ScoreEvent.rule_id,
                    ScoreEvent.rule_version, ScoreEvent.touchpoint_id, Touchpoint.kind.label("touchpoint"),
                    Campaign.name.label("campaign"), ScoreEvent.points, ScoreEvent.kind, ScoreEvent.reason)
             .join(Rule, Rule.id == ScoreEvent.rule_id, isouter=True)
             .join(Touchpoint, Touchpoint.id == ScoreEvent.touchpoint_id, isouter=True)
             .join(Campaign, Campaign.id == Touchpoint.campaign_id, isouter=True)
             .where(ScoreEvent.lead_id == lead_id).order_by(ScoreEvent.occurred_at, ScoreEvent.id))
    return pd.DataFrame([r._asdict() for r in session.execute(query).all()], columns=EXPLAIN_COLUMNS)


def score_summary(*, session: Session, lead_id: int) -> dict[str, Any]:
    """A lead's cached scores next to its ledger sums (fit, engagement, of which decay) and its MQL status."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        from core.errors import NotFound

        raise NotFound(key="rules.error.lead_not_found", lead_id=lead_id)
    rows = session.execute(select(ScoreEvent.component, ScoreEvent.kind, func.sum(ScoreEvent.points), func.count())
                           .where(ScoreEvent.lead_id == lead_id)
                           .group_by(ScoreEvent.component, ScoreEvent.kind)).all()
    sums: dict[str, float] = {"fit": 0.0, "engagement": 0.0, "decay": 0.0}
    count = 0
    for component, kind, total, n in rows:
        sums[component] = sums.get(component, 0.0) + float(total or 0)
        if kind == "decay":
            sums["decay"] += float(total or 0)
        count += int(n)
    return {"lead_id": lead_id, "name": lead.name, "company": lead.company, "fit": float(lead.fit_score),
            "engagement": float(lead.engagement_score), "score": float(lead.fit_score + lead.engagement_score),
            "grade": lead.grade, "stage": lead.stage, "scored_at": lead.scored_at,
            "ledger_fit": round(sums["fit"], 4), "ledger_engagement": round(sums["engagement"], 4),
            "decay": round(sums["decay"], 4), "events": count}
