"""Fit and engagement scores, decay, grades, tag rules and the MQL line — all kept in the score ledger.

The ledger (``ScoreEvent``) is the source of truth; ``Lead.fit_score``/``engagement_score``/``grade`` are its
cache, rewritten from the ledger's sums on every rescore. Rescoring is a diff: for every lead in scope the
points each rule *should* have given (fit: while the condition holds; engagement: per matching touchpoint, within
its cap per period) are compared with what the ledger holds per (lead, rule, touchpoint), and only the
difference is written — so a rescore is idempotent, a changed rule adjusts every lead by one event, and the
history of why a score is what it is stays complete. Everything is set-based: one read of the ledger, one SQL
statement per rule, numpy for the diff, one bulk insert for the differences (a rule the ledger holds nothing for
writes its events with INSERT … SELECT), one grouped scan for decay and the cached scores.
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
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
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
    union_all,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from core.rules import RuleSyntaxError, lead_condition, lead_facts, parse, predicate, rule_ast, to_sql
from core.settings import get_setting
from db.bulk import among, keys_table
from db.engine import FOREIGN_KEYS_OFF, use_bulk_cache
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
IN_LIST = 2_000  # up to this many leads, statements list them; beyond, they read them from a temporary table
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


class _KeyedIds(list[int]):
    """Lead ids that also sit in a temporary key table: every statement of the pass reads "is one of these" from
    the table instead of compiling tens of thousands of parameters again."""

    def __init__(self, ids: list[int], table: Any) -> None:
        super().__init__(ids)
        self.table = table


def _scope(column: Any, ids: list[int] | None) -> ColumnElement[bool]:
    if ids is None:
        return true()
    if isinstance(ids, _KeyedIds):
        return column.in_(select(ids.table.c.key))
    return column.in_(ids)


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
        elif len(ids) <= IN_LIST:
            _rescore(session, now, ids, report)
        else:  # an import's tens of thousands of leads: one pass, the ids in a temporary table
            with keys_table(session, ids, name="rescored") as table:
                _rescore(session, now, _KeyedIds(ids, table), report)
    report.crossed_mql = sorted(set(report.crossed_mql))
    report.seconds = time.perf_counter() - started
    return report


def _rescore(session: Session, now: datetime, ids: list[int] | None, report: ScoreReport) -> None:
    if ids is None and session.get_bind().dialect.name == "sqlite":
        # A full pass reads and writes the whole ledger, and its temporary schema holds the wanted and held
        # points of every rule during the pass.
        use_bulk_cache(session)
        _foreign_keys_off(session)
    rules = _active_rules(session, report)
    _apply_tags(session, now, ids, rules[RuleKind.TAG], report)
    report.leads += int(session.scalar(select(func.count()).select_from(Lead).where(
        Lead.status != LeadStatus.MERGED, _scope(Lead.id, ids))) or 0)
    fit_events, engagement_events = _apply_rules(session, now, ids, rules[RuleKind.FIT], rules[RuleKind.ENGAGEMENT])
    report.fit_events += fit_events
    report.engagement_events += engagement_events
    report.decay_events += _decay_and_cache(session, now, ids, rules[RuleKind.DECAY])
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


_SHIFT = 1 << 31  # lead and touchpoint ids are 32-bit on PostgreSQL: one int64 key holds a (lead, touchpoint) pair
_NO_ROWS = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


def _apply_rules(session: Session, now: datetime, ids: list[int] | None, fit: list[_Active],
                 engagement: list[_Active]) -> tuple[int, int]:
    """Fit and engagement in one diff against the ledger; returns (fit events, engagement events) written.

    The ledger is read once — per (rule, lead, touchpoint) key the points it holds, three numbers a row — and
    summed in numpy. Each rule in force then reads the points it should give (fit: the matching leads;
    engagement: per matching touchpoint, capped in the database by a window function) and only the keys whose
    points differ become ledger events, written in one bulk insert: a rescore where nothing changed writes
    nothing, a changed rule writes one event per lead or touchpoint it changes. A rule the ledger holds nothing
    for (a new rule, a first scoring) writes its events directly with INSERT … SELECT, no row through Python."""
    fit = [item for item in fit if item.ast is not None]
    engagement = [item for item in engagement if item.ast is not None]
    active = {"fit": {int(i.rule.id or 0): int(i.rule.version) for i in fit},
              "engagement": {int(i.rule.id or 0): int(i.rule.version) for i in engagement}}
    held = _held(session, ids, active)
    counts = {"fit": 0, "engagement": 0}
    events: list[pd.DataFrame] = []
    fits = _fetch_fits(session, now, ids, [item for item in fit if ("fit", int(item.rule.id or 0)) in held])
    for component, items in (("fit", fit), ("engagement", engagement)):
        for item in items:
            rule_id = int(item.rule.id or 0)
            holding = held.pop((component, rule_id), None)
            if holding is None:
                rows = _want_fit(session, now, ids, item) if component == "fit" else \
                    _want_engagement(session, now, ids, item)
                if rows is not None:
                    counts[component] += _write_new(session, now, component, rows)
                continue
            wanted = fits[rule_id] if component == "fit" else _fetch_engagement(session, now, ids, item)
            events.append(_rule_difference(session, now, ids, component, item.rule, wanted, holding))
    # Held by rules no longer in force (deactivated, or now of the other component): every point goes back.
    for (component, rule_id), holding in held.items():
        events.append(_gone(session, now, ids, component, rule_id, None, holding))
    frame = pd.concat([e for e in events if len(e)], ignore_index=True) if any(len(e) for e in events) else None
    if frame is not None:
        frame = frame.sort_values(["lead_id", "component", "rule_id", "touchpoint_id"], kind="stable")
        _write_rows(session, frame, now)
        by = frame["component"].value_counts()
        counts["fit"] += int(by.get("fit", 0))
        counts["engagement"] += int(by.get("engagement", 0))
    return counts["fit"], counts["engagement"]


def _held(session: Session, ids: list[int] | None,
          active: dict[str, dict[int, int]]) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """What the ledger holds per (component, rule) → (sorted unique keys lead·2³¹+touchpoint, summed points),
    from one scan of the ledger's rule events (no grouping in the database: its sort costs more than the scan)."""
    # A fit rule in force never looks at merged leads (they are out of scope), so their fit points stay put;
    # engagement points of a merged lead's touchpoints go back, as no touchpoint of it matches any more.
    merged_fit = and_(ScoreEvent.component == "fit", ScoreEvent.rule_id.in_(list(active["fit"]) or [-1]),
                      ScoreEvent.lead_id.in_(select(Lead.id).where(Lead.status == LeadStatus.MERGED)))
    key = cast(ScoreEvent.lead_id, BigInteger) * _SHIFT + func.coalesce(ScoreEvent.touchpoint_id, 0)
    rule = cast(ScoreEvent.rule_id, BigInteger) * 2 + case((ScoreEvent.component == "fit", 1), else_=0)
    query = (select(rule, key, ScoreEvent.points)
             .where(ScoreEvent.kind == "rule", ScoreEvent.rule_id.is_not(None),
                    ScoreEvent.component.in_(("fit", "engagement")), _scope(ScoreEvent.lead_id, ids), ~merged_fit))
    rows = _fetch(session, query, [("rule", "i8"), ("key", "i8"), ("points", "f8")])
    if not len(rows):
        return {}
    rules_a, keys_a, points_a = rows["rule"], rows["key"], rows["points"]
    order = np.lexsort((keys_a, rules_a))
    rules_a, keys_a, points_a = rules_a[order], keys_a[order], points_a[order]
    first = np.flatnonzero(np.r_[True, (rules_a[1:] != rules_a[:-1]) | (keys_a[1:] != keys_a[:-1])])
    rules_a, keys_a, points_a = rules_a[first], keys_a[first], np.add.reduceat(points_a, first)
    out = {}
    bounds = np.flatnonzero(np.r_[True, rules_a[1:] != rules_a[:-1], True])
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        code = int(rules_a[start])
        out[("fit" if code % 2 else "engagement", code // 2)] = (keys_a[start:end], points_a[start:end])
    return out


def _fetch_fits(session: Session, now: datetime, ids: list[int] | None,
                items: list[_Active]) -> dict[int, tuple[np.ndarray, ...]]:
    """Per fit rule (by id): (keys, points, leads, touchpoints) it should give — its points to each matching lead.

    One scan of the leads evaluates every rule: each condition sets one bit of a number per lead (up to 60 rules
    a scan), instead of one scan and one result set per rule."""
    out: dict[int, tuple[np.ndarray, ...]] = {}
    giving = [item for item in items if float(item.rule.points) != 0]
    for item in items:
        if float(item.rule.points) == 0:
            empty = np.zeros(0, dtype=np.int64)
            out[int(item.rule.id or 0)] = (empty, np.zeros(0), empty, empty)
    for start in range(0, len(giving), 60):
        chunk = giving[start:start + 60]
        bits = sum((case((to_sql(item.ast, now=now, per_lead=ids is not None), literal(1 << n, BigInteger)),  # type: ignore[arg-type]
                         else_=literal(0, BigInteger)) for n, item in enumerate(chunk)), literal(0, BigInteger))
        found = _fetch(session, select(Lead.id, bits).where(Lead.status != LeadStatus.MERGED, _scope(Lead.id, ids))
                       .order_by(Lead.id), [("lead", "i8"), ("bits", "i8")])
        for n, item in enumerate(chunk):
            leads = found["lead"][(found["bits"] >> n) & 1 == 1]
            empty = np.zeros(len(leads), dtype=np.int64)
            out[int(item.rule.id or 0)] = (leads * _SHIFT, np.full(len(leads), float(item.rule.points)), leads, empty)
    return out


def _fetch(session: Session, query: Any, dtype: list[tuple[str, str]]) -> np.ndarray:
    """A query's rows as a numpy record array, read from the driver's cursor: SQLAlchemy's row objects cost
    more than the query for the million rows a full pass reads."""
    result = session.connection().execute(query)
    try:
        return np.array(result.cursor.fetchall(), dtype=dtype)
    finally:
        result.close()


def _rule_difference(session: Session, now: datetime, ids: list[int] | None, component: str, rule: Rule,
                     wanted: tuple[np.ndarray, ...], holding: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    keys, points, leads, tps = wanted
    held_keys, held_points = holding
    # held_keys is sorted and unique: each wanted key's held points by binary search (0 when not held).
    at = np.minimum(np.searchsorted(held_keys, keys), len(held_keys) - 1)
    hit = held_keys[at] == keys
    have = np.where(hit, held_points[at], 0.0)
    delta = points - have
    change = np.abs(delta) > 1e-9
    reason = np.where(have == 0, "matched" if component == "fit" else "touchpoint",
                      np.where(points == 0, "no_longer_matches", "points_changed"))[change]
    rule_id, version = int(rule.id or 0), int(rule.version)
    changed = pd.DataFrame({
        "lead_id": leads[change], "component": component, "rule_id": rule_id, "rule_version": version,
        "touchpoint_id": tps[change], "points": delta[change], "kind": "rule", "reason": reason,
        "occurred_at": _times(int(change.sum()), _stored(session, now)) if component == "fit"
        else _touchpoint_times(session, tps[change])})
    # Held and no longer wanted at all (the lead or touchpoint stopped matching): the points go back.
    wanted_held = np.zeros(len(held_keys), dtype=bool)
    wanted_held[at[hit]] = True
    gone = ~wanted_held & (np.abs(held_points) > 1e-9)
    if not gone.any():
        return changed
    return pd.concat([changed, _gone(session, now, ids, component, rule_id, version,
                                     (held_keys[gone], held_points[gone]))], ignore_index=True)


def _gone(session: Session, now: datetime, ids: list[int] | None, component: str, rule_id: int,
          version: int | None, holding: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """Reversals of held points nobody wants: by the rule's current ``version`` if it is in force (a fit rule's
    at ``now``), else by the version and time the ledger last recorded for that key."""
    keys, points = holding
    if version is None:
        keep = np.abs(points) > 1e-9
        keys, points = keys[keep], points[keep]
    if not len(keys):
        return pd.DataFrame()
    # The versions and times the ledger recorded: one grouped read of this rule's events (its index).
    key = cast(ScoreEvent.lead_id, BigInteger) * _SHIFT + func.coalesce(ScoreEvent.touchpoint_id, 0)
    recorded = session.connection().execute(
        select(key, func.max(ScoreEvent.rule_version), _raw_time(func.max(ScoreEvent.occurred_at)))
        .where(ScoreEvent.rule_id == rule_id, ScoreEvent.component == component, ScoreEvent.kind == "rule",
               _scope(ScoreEvent.lead_id, ids))
        .group_by(key)).fetchall()
    last = pd.DataFrame(recorded, columns=["key", "version", "at"]).set_index("key").reindex(keys)
    in_force = version is not None
    return pd.DataFrame({
        "lead_id": keys // _SHIFT, "component": component, "rule_id": rule_id,
        "rule_version": version if in_force else last["version"].to_numpy(),
        "touchpoint_id": keys % _SHIFT, "points": -points, "kind": "rule",
        "reason": "no_longer_matches" if in_force else "rule_inactive",
        "occurred_at": _times(len(keys), _stored(session, now)) if in_force and component == "fit"
        else last["at"].to_numpy(dtype=object)})


def _stored(session: Session, value: datetime) -> Any:
    """A time as the database stores it (SQLite: SQLAlchemy's text form), for rows written by the driver."""
    dialect = session.get_bind().dialect
    process = ScoreEvent.__table__.c.occurred_at.type.dialect_impl(dialect).bind_processor(dialect)
    return process(value) if process is not None else value


def _times(n: int, value: Any) -> np.ndarray:
    # An object column: pandas would turn a datetime into its own Timestamp, which drivers do not take.
    out = np.empty(n, dtype=object)
    out[:] = [value] * n
    return out


def _write_rows(session: Session, events: pd.DataFrame, now: datetime) -> int:
    """Append ledger rows whose ``occurred_at`` is already in stored form (driver executemany on SQLite, COPY on
    PostgreSQL); ``touchpoint_id`` 0 and missing versions are written as NULL."""
    n = len(events)
    if n == 0:
        return 0
    session.flush()
    connection = session.connection()
    touchpoints = [None if t == 0 else t for t in events["touchpoint_id"].to_numpy(dtype=np.int64).tolist()]
    versions = [None if pd.isna(v) else int(v) for v in events["rule_version"].tolist()]
    created = _stored(session, now)
    columns = [events["lead_id"].to_numpy(dtype=np.int64).tolist(), events["component"].tolist(),
               events["rule_id"].to_numpy(dtype=np.int64).tolist(), versions, touchpoints,
               events["points"].to_numpy(dtype=np.float64).tolist(), events["kind"].tolist(),
               events["reason"].tolist(), events["occurred_at"].tolist(), [created] * n]
    names = ", ".join(f'"{c}"' for c in _EVENT_COLUMNS)
    dialect = connection.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY scoreevent ({names}) FROM STDIN") as copy:
                for row in zip(*columns, strict=True):
                    copy.write_row(row)
        return n
    marks = ", ".join([dialect.paramstyle == "qmark" and "?" or "%s"] * len(_EVENT_COLUMNS))
    connection.exec_driver_sql(f"INSERT INTO scoreevent ({names}) VALUES ({marks})", list(zip(*columns, strict=True)))
    return n


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


def _engagement_matches(session: Session, now: datetime, ids: list[int] | None,
                        item: _Active) -> tuple[Any, float, float | None, float]:
    """The touchpoints an engagement rule gives points for (``tp``, ``lead``, ``at``), its points, its cap when
    one applies, and its cap period in days."""
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
    matched = (select(Touchpoint.id.label("tp"), Touchpoint.lead_id.label("lead"),
                      Touchpoint.occurred_at.label("at"))
               .join(Lead, Lead.id == Touchpoint.lead_id).where(*filters))
    if ids is not None:  # a few leads: their touchpoints by lead, not every touchpoint of the kind
        matched = matched.with_hint(Touchpoint, "INDEXED BY ix_touchpoint_lead_occurred", "sqlite")
    cap = params.get("cap")
    period = max(float(params.get("period_days") or 36_500), 1.0)
    return matched, points, float(cap) if cap and points > 0 else None, period


def _want_engagement(session: Session, now: datetime, ids: list[int] | None, item: _Active) -> Any:
    """``points`` per matching touchpoint, in time order, until the lead reached ``cap`` within the
    ``period_days`` window (a window function); capped touchpoints are wanted with 0 points."""
    matched, points, cap, period = _engagement_matches(session, now, ids, item)
    rule = item.rule
    if cap is None:
        ranked = matched.subquery()
        return select(literal("engagement"), ranked.c.lead, literal(int(rule.id or 0)), ranked.c.tp,
                      literal(int(rule.version)), literal(points), ranked.c.at)
    # Only a lead with more matching touchpoints than cap/points can reach the cap: the others get the full
    # points without the window function (its per-partition buffering is most of the statement's cost).
    heavy = matched.with_only_columns(Touchpoint.lead_id).group_by(Touchpoint.lead_id) \
        .having(func.count() > cap / points)
    light = matched.where(Touchpoint.lead_id.not_in(heavy)).add_columns(literal(points).label("award"))
    window = func.floor(_epoch_days(session, Touchpoint.occurred_at) / period)
    ranked = matched.where(Touchpoint.lead_id.in_(heavy)).add_columns(func.row_number().over(
        partition_by=(Touchpoint.lead_id, window),
        order_by=(Touchpoint.occurred_at, Touchpoint.id)).label("n")).subquery()
    room = cap - points * (ranked.c.n - 1)
    capped = select(ranked.c.tp, ranked.c.lead, ranked.c.at,
                    case((room >= points, points), (room > 0, room), else_=0.0).label("award"))
    awarded = union_all(light, capped).subquery()
    return select(literal("engagement"), awarded.c.lead, literal(int(rule.id or 0)), awarded.c.tp,
                  literal(int(rule.version)), awarded.c.award, awarded.c.at)


def _fetch_engagement(session: Session, now: datetime, ids: list[int] | None,
                      item: _Active) -> tuple[np.ndarray, ...]:
    """What :func:`_want_engagement` computes, with the cap counted in numpy — the same arithmetic as the window
    function, without its sort and per-row evaluation. Rows come in (lead, time, id) order, which the touchpoint
    index gives without a sort; times are read later, for the touchpoints whose points change."""
    matched, points, cap, period = _engagement_matches(session, now, ids, item)
    window = func.floor(_epoch_days(session, Touchpoint.occurred_at) / period)
    key = cast(Touchpoint.lead_id, BigInteger) * _SHIFT + Touchpoint.id  # one number a row: fewer to read
    found = _fetch(session, matched.with_only_columns(key, window if cap is not None else literal(0.0))
                   .order_by(Touchpoint.lead_id, Touchpoint.occurred_at, Touchpoint.id),
                   [("key", "i8"), ("window", "f8")])
    keys, windows = found["key"], found["window"]
    leads = keys // _SHIFT
    if cap is None:
        awards = np.full(len(found), points)
    else:
        same_lead = leads[1:] == leads[:-1]
        if (same_lead & (windows[1:] < windows[:-1])).any():
            # Stored times whose text does not sort like time (mixed formats): order by window, keeping the
            # stored order inside it, as the window function partitions.
            order = np.lexsort((np.arange(len(found)), windows, leads))
            keys, leads, windows = keys[order], leads[order], windows[order]
            same_lead = leads[1:] == leads[:-1]
        first = np.r_[True, ~same_lead | (windows[1:] != windows[:-1])]
        position = np.arange(len(found))
        rank = position - np.maximum.accumulate(np.where(first, position, 0))  # row_number() − 1
        room = cap - points * rank
        awards = np.where(room >= points, points, np.where(room > 0, room, 0.0))
    return keys, awards, leads, keys % _SHIFT


def _touchpoint_times(session: Session, tps: np.ndarray) -> np.ndarray:
    """The stored ``occurred_at`` of these touchpoints (as stored: ledger rows copy it), in their order."""
    out = np.empty(len(tps), dtype=object)
    if not len(tps):
        return out
    with among(session, Touchpoint.id, np.unique(tps).tolist(), small=IN_LIST, name="touch_times") as wanted:
        times = _fetch(session, select(Touchpoint.id, _raw_time(Touchpoint.occurred_at)).where(wanted),
                       [("tp", "i8"), ("at", "O")])
    times = times[np.argsort(times["tp"], kind="stable")]
    out[:] = times["at"][np.searchsorted(times["tp"], tps)]
    return out


def _write_new(session: Session, now: datetime, component: str, rows: Any) -> int:
    """A rule's wanted points written straight to the ledger (INSERT … SELECT): the ledger holds nothing for it."""
    w = rows.subquery().c
    lead, rule_id, tp, version, points, at = w[1], w[2], w[3], w[4], w[5], w[6]
    events = (select(lead, literal(component), rule_id, version, func.nullif(tp, 0), points, literal("rule"),
                     literal("matched" if component == "fit" else "touchpoint"), at, _now(now))
              .where(func.abs(points) > 1e-9))
    if session.get_bind().dialect.name != "sqlite":
        # PostgreSQL may read in parallel workers, in any order: sorted, event ids are the same on every run (the
        # seed is deterministic, ids included). SQLite runs a plan in one thread, in the same order every time,
        # and the sort would cost a tenth of the pass.
        events = events.order_by(lead, tp)
    return _rows(session, _event_insert(events))


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
    return _decay_and_cache(session, now, None, rules[RuleKind.DECAY])


def _decay_and_cache(session: Session, now: datetime, ids: list[int] | None, rules: list[_Active]) -> int:
    """Decay up to ``now``, then the cached scores; returns the decay events written."""
    half_life = next((r for r in rules if r.rule.params.get("half_life_days")), None)
    idle = [r for r in rules if r.rule.params.get("idle_days") and not r.rule.params.get("half_life_days")]
    if ids is None and not idle:
        return _settle(session, now, half_life)
    written = _decay(session, now, ids, rules)
    _refresh_cache(session, now, ids)
    return written


def _age_days(session: Session, now: datetime) -> Any:
    """A ledger event's age in days at ``now`` (0 for events dated later)."""
    now_days = (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp() / 86_400
    age = now_days - _epoch_days(session, ScoreEvent.occurred_at)
    return func.max(age, 0.0) if session.get_bind().dialect.name == "sqlite" else func.greatest(age, 0.0)


def _settle(session: Session, now: datetime, half_life: _Active | None) -> int:
    """A full pass's half-life decay and cached scores from one grouped read of the ledger.

    One scan sums, per lead, the fit and engagement points, the decay the half-life rule wants (as
    :func:`_half_life` computes it) and the decay already recorded, into a temporary table; the decay that
    changed is written from it and the cached scores and grades of the leads whose values differ are rewritten
    from it — nothing when nothing changed. (Two grouped passes, one for decay and one for the cache, cost
    twice the sort.)"""
    event = ScoreEvent
    sums = Table("score_sums", MetaData(), Column("lead_id", Integer, primary_key=True),
                 Column("fit", Float, nullable=False), Column("engagement", Float, nullable=False),
                 Column("target", Float, nullable=False), Column("held", Float, nullable=False),
                 prefixes=["TEMPORARY"])
    connection = session.connection()
    sums.drop(connection, checkfirst=True)
    sums.create(connection)
    try:
        if half_life is not None:
            rule = half_life.rule
            days = float(rule.params["half_life_days"])
            decayed = event.points * (func.power(0.5, _age_days(session, now) / days) - 1.0)
            target = func.sum(case((and_(event.component == "engagement", event.kind == "rule"), decayed),
                                   else_=0.0))
            held = func.sum(case((and_(event.kind == "decay", event.rule_id == rule.id), event.points), else_=0.0))
        else:
            target = held = literal(0.0)
        _rows(session, insert(sums).from_select(["lead_id", "fit", "engagement", "target", "held"], select(
            event.lead_id, func.sum(case((event.component == "fit", event.points), else_=0.0)),
            func.sum(case((event.component == "engagement", event.points), else_=0.0)), target, held)
            .group_by(event.lead_id)))
        s = sums.c
        written = 0
        if half_life is not None:
            rule = half_life.rule
            delta = s.target - s.held
            decaying = [Lead.status != LeadStatus.MERGED]
            if half_life.ast is not None:
                decaying.append(lead_condition(half_life.ast, now=now))
            written = _rows(session, _event_insert(
                select(Lead.id, literal("engagement"), literal(rule.id), literal(rule.version), null(), delta,
                       literal("decay"), literal("half_life"), _now(now), _now(now))
                .select_from(Lead).join(sums, s.lead_id == Lead.id)
                .where(*decaying, func.abs(delta) >= 0.01).order_by(Lead.id)))
            if written:
                session.execute(update(sums).where(func.abs(delta) >= 0.01,
                                                   s.lead_id.in_(select(Lead.id).where(*decaying)))
                                .values(engagement=s.engagement + delta))
        scope = Lead.status != LeadStatus.MERGED
        session.execute(update(Lead).where(scope, Lead.id == s.lead_id,
                                           or_(func.abs(Lead.fit_score - s.fit) > 1e-9,
                                               func.abs(Lead.engagement_score - s.engagement) > 1e-9))
                        .values(fit_score=s.fit, engagement_score=s.engagement)
                        .execution_options(synchronize_session=False))
        session.execute(update(Lead).where(scope, or_(Lead.fit_score != 0, Lead.engagement_score != 0),
                                           Lead.id.not_in(select(s.lead_id)))
                        .values(fit_score=0.0, engagement_score=0.0).execution_options(synchronize_session=False))
    finally:
        sums.drop(connection)
    bands = grade_bands(session)
    grade = case((Lead.fit_score >= bands["A"], "A"), (Lead.fit_score >= bands["B"], "B"),
                 (Lead.fit_score >= bands["C"], "C"), else_="D")
    session.execute(update(Lead).where(scope).values(grade=grade, scored_at=now)
                    .execution_options(synchronize_session=False))
    _expire_scores(session)
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
    age = _age_days(session, now)
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
    bands = grade_bands(session)

    def grade_of(fit: Any) -> Any:
        return case((fit >= bands["A"], "A"), (fit >= bands["B"], "B"), (fit >= bands["C"], "C"), else_="D")

    if ids is not None:
        # One UPDATE (each row rewritten once): the grade follows from the same fit sum.
        fit = total("fit")
        session.execute(update(Lead).where(scope).values(fit_score=fit, engagement_score=total("engagement"),
                                                         grade=grade_of(fit), scored_at=now)
                        .execution_options(synchronize_session=False))
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
        session.execute(update(Lead).where(scope).values(scored_at=now, grade=grade_of(Lead.fit_score))
                        .execution_options(synchronize_session=False))
    _expire_scores(session)


def _expire_scores(session: Session) -> None:
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
