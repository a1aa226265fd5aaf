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
    String,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from core.rules import RuleSyntaxError, lead_condition, parse, rule_ast, to_sql
from core.settings import get_setting
from db.models import (
    Campaign,
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
        for start in range(0, len(ids), CHUNK):
            _rescore(session, now, ids[start:start + CHUNK], report)
    report.crossed_mql = sorted(set(report.crossed_mql))
    report.seconds = time.perf_counter() - started
    return report


def _rescore(session: Session, now: datetime, ids: list[int] | None, report: ScoreReport) -> None:
    rules = _active_rules(session, report)
    _apply_tags(session, now, ids, rules[RuleKind.TAG], report)
    universe = _apply_fit(session, now, ids, rules[RuleKind.FIT], report)
    report.leads += len(universe)
    engagement = _apply_engagement(session, now, ids, universe, rules[RuleKind.ENGAGEMENT], report)
    report.decay_events += _decay(session, now, ids, universe, engagement, rules[RuleKind.DECAY])
    _refresh_cache(session, now, ids)
    report.crossed_mql.extend(_crossed_mql(session, now, ids))


def _apply_tags(session: Session, now: datetime, ids: list[int] | None, rules: list[_Active],
                report: ScoreReport) -> None:
    for item in rules:
        if item.ast is None:
            continue
        rule = item.rule
        tag_id = _tag_id(session, str(rule.params.get("tag")))
        condition = lead_condition(item.ast, now=now)
        missing = (select(Lead.id, literal(tag_id), literal("rule"), literal(rule.id),
                          literal(now, type_=LeadTag.__table__.c.created_at.type))
                   .where(condition, Lead.status != LeadStatus.MERGED, _scope(Lead.id, ids),
                          ~exists(select(LeadTag.lead_id).where(LeadTag.lead_id == Lead.id,
                                                                LeadTag.tag_id == tag_id))))
        # RETURNING: an ORM-executed INSERT … SELECT reports no rowcount on psycopg.
        added = session.execute(insert(LeadTag).from_select(
            ["lead_id", "tag_id", "source", "rule_id", "created_at"], missing).returning(LeadTag.lead_id)).all()
        report.tags_added += len(added)
        if rule.params.get("remove_when_false"):
            removed = session.execute(delete(LeadTag).where(
                LeadTag.tag_id == tag_id, LeadTag.rule_id == rule.id, LeadTag.source == "rule",
                _scope(LeadTag.lead_id, ids), LeadTag.lead_id.not_in(select(Lead.id).where(condition)))
                .returning(LeadTag.lead_id).execution_options(synchronize_session=False)).all()
            report.tags_removed += len(removed)


def _tag_id(session: Session, name: str) -> int:
    tag_id = session.scalar(select(Tag.id).where(Tag.name == name))
    if tag_id is None:
        tag = Tag(name=name)
        session.add(tag)
        session.flush()
        tag_id = tag.id
    return int(tag_id)


def _apply_fit(session: Session, now: datetime, ids: list[int] | None, rules: list[_Active],
               report: ScoreReport) -> np.ndarray:
    """One pass over the leads with a 0/1 column per fit rule; returns the ids of the leads in scope."""
    active = [item for item in rules if item.ast is not None]
    flags = [case((to_sql(item.ast, now=now), 1), else_=0) for item in active]  # type: ignore[arg-type]
    rows = session.execute(select(Lead.id, *flags).where(Lead.status != LeadStatus.MERGED,
                                                        _scope(Lead.id, ids))).all()
    matrix = np.array(rows, dtype=np.int64).reshape(len(rows), len(active) + 1)
    universe = matrix[:, 0]
    parts = []
    for index, item in enumerate(active):
        matched = universe[matrix[:, index + 1] == 1]
        parts.append(pd.DataFrame({"lead_id": matched, "rule_id": int(item.rule.id or 0),
                                   "touchpoint_id": 0, "desired": float(item.rule.points)}))
    desired = _frame(parts, ["lead_id", "rule_id", "touchpoint_id", "desired"])
    current = _current(session, "fit", ids)
    versions = {int(item.rule.id or 0): int(item.rule.version) for item in rules}
    report.fit_events += _write_diff(session, now, "fit", desired, current, universe, versions, with_times=False)
    return universe


def _apply_engagement(session: Session, now: datetime, ids: list[int] | None, universe: np.ndarray,
                      rules: list[_Active], report: ScoreReport) -> pd.DataFrame:
    """Points per matching touchpoint (at most ``cap`` per ``period_days`` window); returns the resulting rule
    events (lead_id, points, at) for the decay step."""
    parts = []
    for item in rules:
        if item.ast is None:
            continue
        rule = item.rule
        query = (select(Touchpoint.id, Touchpoint.lead_id, _raw_time(Touchpoint.occurred_at))
                 .join(Lead, Lead.id == Touchpoint.lead_id)
                 .where(to_sql(item.ast, now=now), Touchpoint.occurred_at <= now,
                        Lead.status != LeadStatus.MERGED, _scope(Touchpoint.lead_id, ids)))
        if rule.params.get("touchpoint_kind"):
            query = query.where(Touchpoint.kind == str(rule.params["touchpoint_kind"]))
        if rule.params.get("campaign"):
            query = query.where(Touchpoint.campaign_id.in_(select(Campaign.id).where(
                Campaign.name == str(rule.params["campaign"]))))
        rows = session.execute(query).all()
        if not rows:
            continue
        frame = pd.DataFrame(rows, columns=["touchpoint_id", "lead_id", "raw"])
        frame["at"] = _times_us(frame.pop("raw"))
        frame["rule_id"] = int(rule.id or 0)
        frame["desired"] = _capped(frame, float(rule.points), rule.params)
        parts.append(frame[frame["desired"] != 0])
    desired = _frame(parts, ["touchpoint_id", "lead_id", "at", "rule_id", "desired"])
    current = _current(session, "engagement", ids)
    versions = {int(item.rule.id or 0): int(item.rule.version) for item in rules}
    report.engagement_events += _write_diff(session, now, "engagement", desired, current, universe, versions,
                                            with_times=True)
    return desired.rename(columns={"desired": "points"})[["lead_id", "points", "at"]]


def _capped(frame: pd.DataFrame, points: float, params: dict[str, Any]) -> np.ndarray:
    """Each touchpoint's points, in time order, until the lead reached ``cap`` in that ``period_days`` window."""
    cap = params.get("cap")
    if not cap or points <= 0:
        return np.full(len(frame), points)
    period = max(float(params.get("period_days") or 36_500), 1.0) * _US_PER_DAY
    bucket = (frame["at"].to_numpy() // period).astype(np.int64)
    order = np.lexsort((frame["touchpoint_id"].to_numpy(), frame["at"].to_numpy(), bucket,
                        frame["lead_id"].to_numpy()))
    lead = frame["lead_id"].to_numpy()[order]
    bucket = bucket[order]
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = (lead[1:] != lead[:-1]) | (bucket[1:] != bucket[:-1])
    group = np.cumsum(new_group)
    position = np.arange(len(order)) - np.flatnonzero(new_group)[group - 1]  # 0, 1, 2… within the group
    before = position * points
    awarded = np.clip(float(cap) - before, 0, points)
    out = np.empty(len(order))
    out[order] = awarded
    return out


def _frame(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    parts = [p[columns] for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c == "desired" else "int64") for c in columns})
    return pd.concat(parts, ignore_index=True)


def _current(session: Session, component: str, ids: list[int] | None) -> pd.DataFrame:
    """What the ledger holds per (lead, rule, touchpoint) for rule points of one component."""
    touchpoint = func.coalesce(ScoreEvent.touchpoint_id, 0)
    query = (select(ScoreEvent.lead_id, ScoreEvent.rule_id, touchpoint.label("touchpoint_id"),
                    func.sum(ScoreEvent.points).label("current"))
             .where(ScoreEvent.component == component, ScoreEvent.kind == "rule", ScoreEvent.rule_id.is_not(None),
                    _scope(ScoreEvent.lead_id, ids))
             .group_by(ScoreEvent.lead_id, ScoreEvent.rule_id, touchpoint))
    rows = session.execute(query).all()
    return pd.DataFrame(rows, columns=["lead_id", "rule_id", "touchpoint_id", "current"])


def _write_diff(session: Session, now: datetime, component: str, desired: pd.DataFrame, current: pd.DataFrame,
                universe: np.ndarray, versions: dict[int, int], *, with_times: bool) -> int:
    keys = ["lead_id", "rule_id", "touchpoint_id"]
    current = current[current["lead_id"].isin(universe)]
    merged = desired.merge(current, on=keys, how="outer")
    merged["desired"] = merged["desired"].fillna(0.0)
    merged["current"] = merged["current"].fillna(0.0)
    merged["points"] = (merged["desired"] - merged["current"]).round(6)
    changes = merged[merged["points"].abs() > 1e-9].copy()
    if changes.empty:
        return 0
    reasons = np.where(changes["current"] == 0, "matched",
                       np.where(changes["desired"] == 0, "no_longer_matches", "points_changed"))
    if component == "engagement":
        reasons = np.where(reasons == "matched", "touchpoint", reasons)
    changes["reason"] = reasons
    now_us = _us(now)
    if with_times:
        missing = changes["at"].isna() if "at" in changes else pd.Series(True, index=changes.index)
        if missing.any():
            # Reversals of touchpoints no longer matched: dated like the points they take back.
            times = _touchpoint_times(session, changes.loc[missing, "touchpoint_id"].astype(int).tolist())
            changes.loc[missing, "at"] = changes.loc[missing, "touchpoint_id"].map(times).fillna(now_us)
        at = changes["at"].astype(np.int64).to_numpy()
    else:
        at = np.full(len(changes), now_us, dtype=np.int64)
    events = pd.DataFrame({
        "lead_id": changes["lead_id"].astype(np.int64).to_numpy(),
        "component": component,
        "rule_id": changes["rule_id"].astype(np.int64).to_numpy(),
        "rule_version": changes["rule_id"].astype(np.int64).map(versions).to_numpy(),
        "touchpoint_id": changes["touchpoint_id"].astype(np.int64).to_numpy(),
        "points": changes["points"].to_numpy(dtype=np.float64),
        "kind": "rule",
        "reason": changes["reason"].to_numpy(),
        "occurred_at": at,
    })
    return _insert_events(session, events, now)


def _touchpoint_times(session: Session, ids: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for start in range(0, len(ids), 5000):
        rows = session.execute(select(Touchpoint.id, _raw_time(Touchpoint.occurred_at))
                               .where(Touchpoint.id.in_(ids[start:start + 5000]))).all()
        if rows:
            times = _times_us([r[1] for r in rows])
            out.update(zip([int(r[0]) for r in rows], times.tolist(), strict=True))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Decay
# ---------------------------------------------------------------------------------------------------------------
def apply_decay(*, session: Session, now: datetime) -> int:
    """The daily job: bring every lead's decay up to ``now`` (one ``decay`` ledger event per lead whose decay
    changed) and refresh the cached scores; returns the number of events written."""
    rules = _active_rules(session, ScoreReport())
    if not rules[RuleKind.DECAY]:
        return 0
    universe = np.array(session.scalars(select(Lead.id).where(Lead.status != LeadStatus.MERGED)).all(),
                        dtype=np.int64)
    rows = session.execute(select(ScoreEvent.lead_id, ScoreEvent.points, _raw_time(ScoreEvent.occurred_at))
                           .where(ScoreEvent.component == "engagement", ScoreEvent.kind == "rule")).all()
    events = pd.DataFrame(rows, columns=["lead_id", "points", "raw"])
    events["at"] = _times_us(events.pop("raw"))
    written = _decay(session, now, None, universe, events, rules[RuleKind.DECAY])
    _refresh_cache(session, now, None)
    return written


def _decay(session: Session, now: datetime, ids: list[int] | None, universe: np.ndarray, events: pd.DataFrame,
           rules: list[_Active]) -> int:
    """Half-life: decay = Σ points·½^(age/half-life) − Σ points over the lead's engagement rule events, kept as a
    running correction (only the change is written, so applying it twice a day writes nothing). Idle: −N points
    per X days without a touchpoint, never below zero, not given back."""
    written = 0
    half_life = next((r for r in rules if r.rule.params.get("half_life_days")), None)
    if half_life is not None:
        scoped = _decay_scope(session, now, ids, universe, half_life)
        days = float(half_life.rule.params["half_life_days"])
        frame = events[events["lead_id"].isin(scoped)]
        age = np.maximum(_us(now) - frame["at"].to_numpy(dtype=np.int64), 0) / _US_PER_DAY
        lost = frame["points"].to_numpy(dtype=np.float64) * (np.power(0.5, age / days) - 1.0)
        target = pd.Series(lost).groupby(frame["lead_id"].to_numpy()).sum()
        current = _decay_sums(session, ids, int(half_life.rule.id or 0))
        table = pd.DataFrame({"target": target}).join(current, how="outer").fillna(0.0)
        table = table[table.index.isin(scoped)]
        table["points"] = (table["target"] - table["current"]).round(2)
        table = table[table["points"].abs() >= 0.01]
        written += _insert_events(session, pd.DataFrame({
            "lead_id": table.index.to_numpy(dtype=np.int64), "component": "engagement",
            "rule_id": int(half_life.rule.id or 0), "rule_version": int(half_life.rule.version), "touchpoint_id": 0,
            "points": table["points"].to_numpy(), "kind": "decay", "reason": "half_life",
            "occurred_at": _us(now)}), now)
    for item in rules:
        if item.rule.params.get("idle_days") and not item.rule.params.get("half_life_days"):
            written += _idle_decay(session, now, ids, _decay_scope(session, now, ids, universe, item), item)
    return written


def _decay_scope(session: Session, now: datetime, ids: list[int] | None, universe: np.ndarray,
                 item: _Active) -> np.ndarray:
    if item.ast is None:
        return universe
    matched = session.scalars(select(Lead.id).where(lead_condition(item.ast, now=now), _scope(Lead.id, ids))).all()
    return np.intersect1d(universe, np.array(matched, dtype=np.int64))


def _decay_sums(session: Session, ids: list[int] | None, rule_id: int) -> pd.DataFrame:
    rows = session.execute(select(ScoreEvent.lead_id, func.sum(ScoreEvent.points))
                           .where(ScoreEvent.kind == "decay", ScoreEvent.rule_id == rule_id,
                                  _scope(ScoreEvent.lead_id, ids)).group_by(ScoreEvent.lead_id)).all()
    return pd.DataFrame(rows, columns=["lead_id", "current"]).set_index("lead_id")


def _idle_decay(session: Session, now: datetime, ids: list[int] | None, scoped: np.ndarray, item: _Active) -> int:
    rule = item.rule
    idle_days = float(rule.params["idle_days"])
    step = float(rule.params.get("idle_points") or abs(rule.points) or 0)
    if step <= 0 or len(scoped) == 0:
        return 0
    last = (select(Touchpoint.lead_id, _raw_time(func.max(Touchpoint.occurred_at)))
            .where(Touchpoint.occurred_at <= now, _scope(Touchpoint.lead_id, ids)).group_by(Touchpoint.lead_id))
    leads = session.execute(select(Lead.id, _raw_time(Lead.created_at), Lead.engagement_score)
                            .where(_scope(Lead.id, ids), Lead.status != LeadStatus.MERGED)).all()
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
# Ledger writes, cache, MQL
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
    session.execute(update(Lead).where(scope).values(fit_score=total("fit"),
                                                     engagement_score=total("engagement"),
                                                     scored_at=now).execution_options(synchronize_session=False))
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
    query = select(Lead.id).where(lead_condition(ast, now=now), ready, Lead.status == LeadStatus.VALID,
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
