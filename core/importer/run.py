"""Preview and run an import batch (one transaction), and undo a batch."""

from __future__ import annotations

import functools
import gc
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel

from core import audit
from core.accounts import Placement, place_leads
from core.auth import Actor, require
from core.dedup.queue import FRAME_COLUMNS
from core.dedup.search import PairSearch
from core.dedup.thresholds import thresholds
from core.errors import ConcurrentUpdate, FileFormatError, NotFound, ValidationError
from core.export import to_csv_bytes
from core.i18n import t
from core.importer.mapping import LEAD_FIELDS, clean_mapping, suggest_mapping
from core.importer.plan import Plan, build_plan, new_lead_identity, new_lead_keys
from core.importer.reading import RawTable, filled_cells, read_file
from core.importer.validate import blocklist_terms
from core.normalize import lead_keys
from core.settings import get_setting
from db.bulk import among, insert_many, json_objects, per_value, update_from
from db.engine import use_bulk_cache
from db.models import (
    Account,
    Assignment,
    Campaign,
    Channel,
    Enrollment,
    ImportBatch,
    ImportRow,
    ImportStatus,
    Lead,
    LeadStatus,
    MergeRecord,
    Message,
    Opportunity,
    ScoreEvent,
    Stage,
    StageChange,
    Touchpoint,
)

Progress = Callable[[float, str], None]
_F = TypeVar("_F", bound=Callable[..., Any])
_CHUNK = 5000
_LEAD = Lead.__table__  # type: ignore[attr-defined]
_SAMPLE_ROWS = 20
SAMPLE_COLUMNS = ["row_number", "outcome", "name", "phone", "email", "wechat_id", "company", "title", "industry",
                  "province", "city", "company_size", "utm_source", "utm_campaign", "tracking_code", "touch_kind",
                  "occurred_at", "reasons"]


@dataclass
class ImportPreview:
    """What the page shows before a person confirms."""

    columns: list[str]
    mapping: dict[str, str | None]
    kind: str
    counts: dict[str, int]
    sample: pd.DataFrame
    problems: pd.DataFrame
    encoding: str | None = None
    delimiter: str | None = None
    header_line: int = 1
    sheet: str | None = None
    sheets: list[str] = field(default_factory=list)
    already_imported_batch_id: int | None = None


@dataclass
class ImportSummary:
    batch_id: int | None
    kind: str
    inserted: int = 0
    updated: int = 0
    changed: int = 0
    duplicates_in_file: int = 0
    invalid: int = 0
    owned_by_sales: int = 0
    skipped: int = 0
    touchpoints: int = 0
    touchpoints_known: int = 0
    problems: int = 0
    rows: int = 0
    dry_run: bool = False
    already_imported: bool = False
    problem_report: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["row", "column", "problem", "value"]))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("problem_report", None)
        return data


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def max_upload_bytes(session: Session) -> int:
    return int(float(get_setting(session, "import").get("max_upload_mb", 50)) * 1024 * 1024)


def _channel(session: Session, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise NotFound(f"Not found: channel {channel_id}.", what=str(channel_id))
    return channel


def _check_campaign(session: Session, campaign_id: int | None, channel_id: int) -> None:
    if campaign_id is None:
        return
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"Not found: campaign {campaign_id}.", what=str(campaign_id))
    if campaign.channel_id != channel_id:
        raise ValidationError("The campaign belongs to another channel.", key="import.campaign_other_channel")


def _committed_batch(session: Session, digest: str) -> int | None:
    return session.scalar(select(ImportBatch.id).where(ImportBatch.content_hash == digest,
                                                       ImportBatch.status == ImportStatus.COMMITTED)
                          .order_by(ImportBatch.id.desc()).limit(1))


def _read(session: Session, data: bytes, filename: str, sheet: str | None) -> RawTable:
    return read_file(data, filename, sheet=sheet, max_bytes=max_upload_bytes(session))


def _plan(session: Session, table: RawTable, *, channel: Channel, campaign_id: int | None,
          mapping: dict[str, str | None] | None, now: datetime, digest: str, lang: str) -> tuple[Plan, dict]:
    columns = table.columns
    chosen = clean_mapping(mapping, columns) if mapping is not None else suggest_mapping(
        columns, channel.import_mapping or {})
    settings = get_setting(session, "import")
    assert channel.id is not None
    plan = build_plan(session=session, table=table, mapping=chosen, channel_id=channel.id,
                      channel_kind=channel.kind, campaign_id=campaign_id,
                      blocklist=blocklist_terms(settings.get("blocklist") or []), now=now, content_hash=digest,
                      lang=lang)
    return plan, chosen


def _checked(session: Session, table: RawTable, *, channel: Channel, campaign_id: int | None,
             mapping: dict[str, str | None] | None, now: datetime, digest: str, lang: str,
             planned: Callable[[Plan], None] | None = None) -> tuple[Plan, dict, list[dict[str, Any]], dict[str, int]]:
    """The plan, the mapping used, what the batch fills on matched leads, and the counts the user sees.
    ``planned`` is called with the plan before the matched leads are read."""
    plan, chosen = _plan(session, table, channel=channel, campaign_id=campaign_id, mapping=mapping, now=now,
                         digest=digest, lang=lang)
    if planned is not None:
        planned(plan)
    fills = _fills(plan, _existing_rows(session, [int(i) for i in plan.groups["existing_id"].dropna()]))
    counts = dict(plan.counts)
    counts["owned_by_sales"] = sum(1 for f in fills if f["owned"])
    counts["changed"] = sum(1 for f in fills if f["changes"] or f["added_attributes"])
    return plan, chosen, fills, counts


def _existing_rows(session: Session, ids: list[int]) -> pd.DataFrame:
    columns = ["id", *LEAD_FIELDS, "attributes", "owner_id", "is_customer", "name_key", "company_key", "search_text",
               *_CHAIN_COLUMNS, "status", "account_id", "version", "updated_at"]
    # One statement: the ids go to a temporary table when there are many (an import matches thousands).
    with among(session, _LEAD.c.id, ids, name="import_matched") as wanted:
        rows = session.connection().execute(select(*[_LEAD.c[c] for c in columns]).where(wanted)).fetchall()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=columns, dtype=object)
    frame["id"] = frame["id"].astype("int64")
    return frame.set_index("id", drop=False)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or (isinstance(value, str)
                                                                              and not value.strip())


def _fills(plan: Plan, existing: pd.DataFrame) -> list[dict[str, Any]]:
    """For each matched lead: the fields the import fills (only where the lead has none) and their old values.
    Compared column by column over all matched leads at once; only leads that change get a dict of changes."""
    matched = plan.groups[~plan.groups["is_new"].astype(bool)]
    if matched.empty:
        return []
    lead_ids = matched["existing_id"].astype("int64").to_numpy()
    present = pd.Index(existing.index).get_indexer(lead_ids) >= 0
    matched, lead_ids = matched[present], lead_ids[present]
    old = existing.loc[lead_ids]
    fill: dict[str, np.ndarray] = {}
    for name in LEAD_FIELDS:
        new_values, old_values = matched[name].to_numpy(dtype=object), old[name].to_numpy(dtype=object)
        fill[name] = filled_cells(new_values) & ~filled_cells(old_values)
    old_records = _Rows(old)
    new_attrs = matched["attributes"].tolist()
    owners = old["owner_id"].to_numpy(dtype=object)
    customers = old["is_customer"].to_numpy(dtype=object)
    out = []
    for position, group in enumerate(matched.index):
        changes = {name: matched[name].iat[position] for name in LEAD_FIELDS if fill[name][position]}
        attributes = old_records[position]["attributes"] or {}
        added = {k: v for k, v in (new_attrs[position] or {}).items() if k not in attributes}
        owner = owners[position]
        out.append({"group": int(group), "lead_id": int(lead_ids[position]), "changes": changes,
                    "added_attributes": added, "old": old_records[position],
                    "owned": not _empty(owner) or bool(customers[position])})
    return out


class _Rows:
    """The rows of a frame by position, each a read-only mapping of column → value, built on access only (an
    import matches tens of thousands of leads; most need two or three of their values)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._arrays = {c: frame[c].to_numpy(dtype=object) for c in frame.columns}

    def __getitem__(self, position: int) -> _Row:
        return _Row(self._arrays, position)


class _Row:
    __slots__ = ("_arrays", "_position")

    def __init__(self, arrays: dict[str, np.ndarray], position: int) -> None:
        self._arrays, self._position = arrays, position

    def __getitem__(self, name: str) -> Any:
        value = self._arrays[name][self._position]
        return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def _new_ids(session: Session, table: Any, count: int) -> list[int]:
    """``count`` fresh primary keys. PostgreSQL: from the table's sequence. SQLite: after the highest id, which is
    safe because the batch row was written first and SQLite lets one writer at a time hold the database."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        rows = connection.exec_driver_sql(
            f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, {int(count)})")
        return sorted(int(r[0]) for r in rows)
    top = connection.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table.name}").scalar() or 0
    return list(range(int(top) + 1, int(top) + 1 + count))


def _sample(plan: Plan) -> pd.DataFrame:
    rows = plan.rows.head(_SAMPLE_ROWS).copy()
    rows["reasons"] = rows["reasons"].map(lambda r: ", ".join(r))
    return rows[[c for c in SAMPLE_COLUMNS if c in rows.columns]].reset_index(drop=True)


def _collector_paused(function: _F) -> _F:
    """Run ``function`` with Python's cyclic garbage collector paused. Planning and writing a batch allocates
    millions of small objects (cells, row dicts, lists) that form no cycles, yet each allocation burst triggers
    collections that walk every live container again — about a tenth of an import's time. Reference counting
    still frees everything as usual; the collector resumes afterwards."""

    @functools.wraps(function)
    def paused(*args: Any, **kwargs: Any) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused  # type: ignore[return-value]


@_collector_paused
def preview(*, session: Session, actor: Actor, data: bytes, filename: str, channel_id: int,
            campaign_id: int | None = None, mapping: dict[str, str | None] | None = None, sheet: str | None = None,
            now: datetime) -> ImportPreview:
    """Read and plan the file without writing anything: mapping, sample rows as they will be stored, counts."""
    require(actor, "import")
    channel = _channel(session, channel_id)
    _check_campaign(session, campaign_id, channel_id)
    digest = content_hash(data)
    table = _read(session, data, filename, sheet)
    plan, chosen, fills, counts = _checked(session, table, channel=channel, campaign_id=campaign_id,
                                           mapping=mapping, now=now, digest=digest, lang=actor.language)
    return ImportPreview(columns=table.columns, mapping=chosen, kind=plan.kind, counts=counts, sample=_sample(plan),
                         problems=problem_report(plan.problems, actor.language), encoding=table.encoding,
                         delimiter=table.delimiter, header_line=table.header_line, sheet=table.sheet,
                         sheets=table.sheets, already_imported_batch_id=_committed_batch(session, digest))


def problem_report(problems: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The problems with their explanation in ``lang`` (row, column, problem, original value)."""
    frame = problems.copy()
    frame["problem"] = frame["problem"].map(lambda p: t(f"import.reason.{p}", lang))
    return frame


def problem_report_csv(report: pd.DataFrame, lang: str) -> bytes:
    """The problem report as CSV for Excel: headers in ``lang``, cells that cannot run as formulas."""
    headers = {c: t(f"import.report.{c}", lang) for c in ("row", "column", "problem", "value")}
    return to_csv_bytes(report.rename(columns=headers))


def _step(progress: Progress | None, fraction: float, stage: str) -> None:
    if progress is not None:
        progress(fraction, stage)


def _datetimes(series: pd.Series) -> list[datetime | None]:
    """A datetime column as Python datetimes (NaT → None), each distinct time converted once."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [pd.Timestamp(u).to_pydatetime() for u in uniques]
    table[-1] = None
    return table[codes].tolist()


def _column(frame: pd.DataFrame, name: str, convert: Callable[[Any], Any] | None = None) -> list[Any]:
    """A column as plain Python values (missing → None), converted where given (ids and counts to int)."""
    series = frame[name]
    values = series.astype(object).where(series.notna(), None).tolist()
    if convert is None:
        return [_py(v) if v is not None and not isinstance(v, (str, dict, list)) else v for v in values]
    return [None if v is None else convert(v) for v in values]


def _new_leads(plan: Plan) -> pd.DataFrame:
    return plan.groups[plan.groups["is_new"].astype(bool)]


def _new_lead_columns(session: Session, plan: Plan, *, batch_id: int, channel_id: int, now: datetime,
                      keys: pd.DataFrame | None = None) -> tuple[dict[str, list[Any]], dict[int, int]]:
    """The rows the batch's new leads are written as, column by column (ids taken now), and group → lead id.
    ``keys``: their keys when the helper process derived them (indexed by group), else they are derived here."""
    new = _new_leads(plan)
    if new.empty:
        return {}, {}
    ids = _new_ids(session, _LEAD, len(new))
    n = len(new)
    keys = new_lead_keys(plan, new) if keys is None else keys.loc[new.index]
    columns: dict[str, list[Any]] = {"id": ids}
    for name in LEAD_FIELDS:
        columns[name] = _column(new, name, int if name == "company_size" else None)
    columns.update({
        "name_key": _column(keys, "name_key"), "company_key": _column(keys, "company_key"),
        "search_text": [v or "" for v in _column(keys, "search_text")],
        "source_channel_id": [channel_id] * n, "source_campaign_id": _column(new, "campaign_id", int),
        "tracking_code": _column(new, "tracking_code"), "referrer_id": _column(new, "referrer_id", int),
        "utm_source": _column(new, "utm_source"), "utm_medium": _column(new, "utm_medium"),
        "utm_campaign": _column(new, "utm_campaign"), "import_batch_id": [batch_id] * n,
        "stage": [str(Stage.NEW)] * n, "status": [str(v) for v in new["status"]],
        "invalid_reason": _column(new, "invalid_reason"), "attributes": [a or {} for a in new["attributes"]],
        "last_activity_at": _datetimes(new["last_activity_at"]), "created_at": [now] * n, "updated_at": [now] * n,
        "version": [1] * n, "is_customer": [False] * n, "fit_score": [0.0] * n, "engagement_score": [0.0] * n,
        "unsubscribed": [False] * n, "is_demo": [False] * n,
    })
    return columns, dict(zip((int(g) for g in new.index), ids, strict=True))


_DERIVED = ("name_key", "company_key", "search_text")
# Lead fields dedup compares: a matched lead the batch filled one of them on is compared with the base again.
_DEDUP_FIELDS = frozenset(LEAD_FIELDS) & frozenset(FRAME_COLUMNS)
# Columns the post-write chain (rescore, MQL hand-off) may change on a matched lead inside the batch's transaction.
_CHAIN_COLUMNS = ("fit_score", "engagement_score", "grade", "scored_at", "stage", "stage_changed_at")


@dataclass
class _LeadUpdates:
    """What the batch changes on matched leads: the undo snapshots per group, the UPDATEs to run (leads grouped by
    the columns they get) and each changed lead's new values."""

    snapshots: dict[int, dict[str, Any]]
    by_columns: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    after: dict[int, dict[str, Any]] = field(default_factory=dict)


def _lead_updates(fills: list[dict[str, Any]]) -> _LeadUpdates:
    """Fill empty fields of matched leads (never overwrite, never with an empty value), with the ``before``
    snapshot that undo restores."""
    # Every matched lead keeps what the chain may change, so undo can put scores and stage back.
    kept = {name: per_value([f["old"][name] for f in fills], _jsonable) for name in (*_CHAIN_COLUMNS, "owner_id")}
    updates = _LeadUpdates(snapshots={
        f["group"]: {"_chain": {name: kept[name][position] for name in _CHAIN_COLUMNS},
                     "_owner_id": kept["owner_id"][position]} for position, f in enumerate(fills)})
    changed = [f for f in fills if f["changes"] or f["added_attributes"]]
    if not changed:
        return updates
    # The derived keys depend on name, phone, email, company and WeChat id only: recomputed where one changed.
    key_fields = ("name", "phone", "email", "company", "wechat_id")
    rekey = [f for f in changed if any(name in f["changes"] for name in key_fields)]
    merged = [{name: f["changes"].get(name, f["old"][name]) for name in key_fields} for f in rekey]
    computed = lead_keys(pd.DataFrame(merged, columns=list(key_fields))).to_dict("records") if merged else []
    new_keys = {id(f): k for f, k in zip(rekey, computed, strict=True)}
    keys = [new_keys.get(id(f), {name: f["old"][name] for name in _DERIVED}) for f in changed]
    for f, key_row in zip(changed, keys, strict=True):
        old = f["old"]
        new_values = dict(f["changes"])
        if f["added_attributes"]:
            new_values["attributes"] = {**(old["attributes"] or {}), **f["added_attributes"]}
        if id(f) in new_keys:
            for name in _DERIVED:
                new_values[name] = key_row[name] if name != "search_text" else (key_row[name] or "")
        if new_values.get("company_size") is not None:
            new_values["company_size"] = int(new_values["company_size"])
        before = {name: _jsonable(old[name]) for name in new_values
                  if _jsonable(old[name]) != _jsonable(new_values[name])}
        after = {name: _jsonable(new_values[name]) for name in before}
        before["_after"] = after
        before["_updated_at"] = _jsonable(old["updated_at"])
        updates.snapshots[f["group"]].update(before)
        updates.by_columns.setdefault(tuple(new_values), []).append((f["lead_id"], new_values))
        updates.after[f["lead_id"]] = new_values
    return updates


def _write_updates(session: Session, updates: _LeadUpdates, now: datetime) -> None:
    for names, leads in updates.by_columns.items():
        columns: dict[str, list[Any]] = {"id": [lead_id for lead_id, _ in leads]}
        for name in names:
            columns[name] = [_py(values[name]) for _, values in leads]
        update_from(session, _LEAD, columns, also={"updated_at": now, "version": _LEAD.c.version + 1})


_COMPARED = [c for c in FRAME_COLUMNS if c != "id"]
_PLACED = ["id", "company", "company_key", "email", "account_id"]


def _place_accounts(session: Session, columns: dict[str, list[Any]], fills: list[dict[str, Any]],
                    updates: _LeadUpdates, now: datetime) -> Placement:
    """The accounts of the batch's valid leads as the batch leaves them: the new ones (written with theirs) and the
    matched ones (moved now where what the batch filled changes their account)."""
    new = pd.DataFrame({c: columns.get(c, [None] * len(columns.get("id", []))) for c in _PLACED}, dtype=object)
    if columns:
        new = new[np.asarray([status == LeadStatus.VALID for status in columns["status"]], dtype=bool)]
    matched = pd.DataFrame(
        [[updates.after.get(f["lead_id"], {}).get(c, f["old"][c]) if c != "id" else f["lead_id"] for c in _PLACED]
         for f in fills if f["old"]["status"] == LeadStatus.VALID], columns=_PLACED, dtype=object)
    stored = [False] * len(new) + [True] * len(matched)
    return place_leads(session=session, leads=pd.concat([new, matched], ignore_index=True), stored=stored, now=now)


def _compared_rows(columns: dict[str, list[Any]], fills: list[dict[str, Any]], updates: _LeadUpdates,
                   compare: set[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The compared columns of the new valid leads and of the matched leads to compare, as the batch writes
    them (indexed by lead id): what the helper process compares with the base."""
    if columns:
        valid = np.asarray([status == LeadStatus.VALID for status in columns["status"]], dtype=bool)
        new = pd.DataFrame({c: np.asarray(columns[c], dtype=object)[valid] for c in _COMPARED},
                           index=pd.Index(np.asarray(columns["id"], dtype=np.int64)[valid], name="id"), dtype=object)
    else:
        new = pd.DataFrame({c: [] for c in _COMPARED}, index=pd.Index([], dtype=np.int64, name="id"))
    records, ids = [], []
    for f in fills:
        if f["lead_id"] in compare:
            after = updates.after.get(f["lead_id"], {})
            records.append([after[c] if c in after else f["old"][c] for c in _COMPARED])
            ids.append(f["lead_id"])
    changed = pd.DataFrame(records, columns=_COMPARED, index=pd.Index(ids, dtype=np.int64, name="id"), dtype=object)
    return new, changed


def _py(value: Any) -> Any:
    """A DataFrame cell as a plain Python value for the driver: NaN/NA/NaT → None, numpy scalars unboxed."""
    if value is None or isinstance(value, (dict, list, str)):
        return value
    if pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):
        return value.item()
    return value


def _int(value: Any) -> int | None:
    """An id or count from a DataFrame cell (None, NaN or pandas NA mean none)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return int(value)


def _jsonable(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, dict):
        return dict(value)
    return value


def _insert_touches(session: Session, plan: Plan, lead_of_group: dict[int, int], *, batch_id: int,
                    channel_id: int, now: datetime) -> tuple[int, int]:
    """Write the batch's touchpoints; returns (written, already stored). A touchpoint whose natural key is stored
    already (the same activity imported before) is left out by the INSERT itself, not looked up first."""
    touches = plan.touches
    if touches.empty:
        return 0, 0
    lead_ids = [lead_of_group.get(int(g)) for g in touches["group"]]
    keep = np.array([i is not None for i in lead_ids], dtype=bool)
    fresh = touches[keep]
    lead_ids = [i for i in lead_ids if i is not None]
    n = len(fresh)
    durations = _column(fresh, "duration", float)
    rows = fresh["row_number"].astype(int).tolist()
    if any(d is not None for d in durations):
        properties = [json.dumps({"row": r} if d is None else {"row": r, "duration_minutes": d})
                      for r, d in zip(rows, durations, strict=True)]
    else:
        properties = json_objects({"row": rows})
    written = insert_many(session, Touchpoint.__table__, {  # type: ignore[attr-defined]
        "lead_id": lead_ids, "kind": [str(k) for k in fresh["kind"]], "channel_id": [channel_id] * n,
        "campaign_id": _column(fresh, "campaign_id", int), "occurred_at": _datetimes(fresh["occurred_at"]),
        "properties": properties, "natural_key": fresh["natural_key"].tolist(), "import_batch_id": [batch_id] * n,
        "created_at": [now] * n,
    }, serialized=("properties",), skip_existing="natural_key")
    return written, n - written


def _insert_rows(session: Session, plan: Plan, table: RawTable, lead_of_group: dict[int, int],
                 snapshots: dict[int, dict[str, Any]], batch_id: int) -> None:
    frame = table.frame.reset_index(drop=True)
    # The rows as they came, as JSON text built column by column (what json.dumps gives for each row's dict).
    raw = json_objects({str(c): frame[c].to_numpy(dtype=object) for c in frame.columns})
    rows = plan.rows
    problems_by_row: dict[int, list[str]] = {}
    for row_number, problem in zip(plan.problems["row"], plan.problems["problem"], strict=True):
        problems_by_row.setdefault(int(row_number), []).append(problem)
    no_problem = json.dumps([])
    numbers = rows["row_number"].astype("int64").tolist()
    outcomes = rows["outcome"].astype(str).tolist()
    groups = rows["group"].astype("int64").tolist()
    roots = rows["root"].astype(bool).tolist()
    insert_many(session, ImportRow.__table__, {  # type: ignore[attr-defined]
        "batch_id": [batch_id] * len(numbers), "row_number": numbers, "raw": raw, "outcome": outcomes,
        "lead_id": [lead_of_group.get(g) if o != "skipped" else None for g, o in zip(groups, outcomes, strict=True)],
        "problems": [json.dumps(problems_by_row[n]) if n in problems_by_row else no_problem for n in numbers],
        "before": [snapshots.get(g) if root and o == "updated" else None
                   for g, root, o in zip(groups, roots, outcomes, strict=True)],
    }, serialized=("raw", "problems"))


@_collector_paused
def run_import(*, session: Session, actor: Actor, data: bytes, filename: str, channel_id: int,
               campaign_id: int | None = None, mapping: dict[str, str | None] | None = None,
               sheet: str | None = None, now: datetime, force: bool = False, dry_run: bool = False,
               progress: Progress | None = None) -> ImportSummary:
    """Import one file as one batch in the caller's transaction (the caller commits; any error leaves the
    database as it was once the caller rolls back). The same file again does nothing unless ``force``."""
    require(actor, "import")
    channel = _channel(session, channel_id)
    _check_campaign(session, campaign_id, channel_id)
    digest = content_hash(data)
    _step(progress, 0.02, "read")
    table = _read(session, data, filename, sheet)
    previous = _committed_batch(session, digest)
    if previous is not None and not force:
        return ImportSummary(batch_id=previous, kind="leads", rows=len(table.frame), already_imported=True,
                             dry_run=dry_run)
    # A large batch is compared with the base by a helper process, which reads the base while the file is planned.
    search = None if dry_run else PairSearch.start(session.get_bind().engine, min_score=thresholds(session)[1],
                                                   rows=len(table.frame))
    keys_asked = False

    def derive_keys_aside(plan: Plan) -> None:
        # The helper, done reading the base, derives the new leads' keys while the matched leads are compared.
        nonlocal keys_asked
        new = _new_leads(plan)
        if search is not None and len(new) and search.ready():
            keys_asked = search.request_keys(new_lead_identity(plan, new))

    try:
        _step(progress, 0.15, "check")
        plan, chosen, fills, counts = _checked(session, table, channel=channel, campaign_id=campaign_id,
                                               mapping=mapping, now=now, digest=digest, lang=actor.language,
                                               planned=derive_keys_aside)
        report = problem_report(plan.problems, actor.language)
        summary = ImportSummary(batch_id=None, kind=plan.kind, dry_run=dry_run, problem_report=report,
                                **{k: v for k, v in counts.items() if k in ImportSummary.__dataclass_fields__})
        if dry_run:
            return summary
        # The batch writes tens of thousands of rows into tables with a dozen indexes each.
        use_bulk_cache(session)
        try:
            batch = ImportBatch(channel_id=channel_id, campaign_id=campaign_id, filename=filename[:256],
                                content_hash=digest, kind=plan.kind, encoding=table.encoding, mapping=chosen,
                                status=ImportStatus.COMMITTED, row_count=len(table.frame), counts={},
                                created_by_id=actor.id or None, created_at=now)
            session.add(batch)
            session.flush()
            assert batch.id is not None
            _step(progress, 0.35, "leads")
            updates = _lead_updates(fills)
            keys = search.keys() if search is not None and keys_asked else None
            if keys_asked and keys is None:
                search = None  # it failed and was stopped: the import compares in process
            columns, created = _new_lead_columns(session, plan, batch_id=batch.id, channel_id=channel_id, now=now,
                                                 keys=keys)
            # Dedup compares the new leads, and the matched ones whose compared values the batch filled, with the base.
            compare = set(created.values()) | {f["lead_id"] for f in fills if _DEDUP_FIELDS.intersection(f["changes"])}
            if search is not None:
                new_rows, changed_rows = _compared_rows(columns, fills, updates, compare)
                if not search.send(new=new_rows, changed=changed_rows, only=sorted(compare)):
                    search = None
            placement = _place_accounts(session, columns, fills, updates, now)
            if columns:
                columns["account_id"] = [placement.account_of.get(lead_id) for lead_id in columns["id"]]
                insert_many(session, _LEAD, columns)
            _write_updates(session, updates, now)
            lead_of_group = dict(created)
            for f in fills:
                lead_of_group[f["group"]] = f["lead_id"]
            _step(progress, 0.55, "touchpoints")
            summary.touchpoints, summary.touchpoints_known = _insert_touches(
                session, plan, lead_of_group, batch_id=batch.id, channel_id=channel_id, now=now)
            _step(progress, 0.7, "rows")
            _insert_rows(session, plan, table, lead_of_group, updates.snapshots, batch.id)
            counts.update(touchpoints=summary.touchpoints, touchpoints_known=summary.touchpoints_known)
            batch.counts = counts
            channel.import_mapping = {c: f for c, f in chosen.items() if f is not None}
            session.add(channel)
            session.flush()
            _step(progress, 0.8, "pipeline")
            from core.pipeline import after_leads_written

            found = search.result() if search is not None else None
            touched = sorted(set(lead_of_group.values()))
            after_leads_written(session=session, lead_ids=touched, now=now, actor=actor, compare_ids=compare,
                                found_pairs=found, placement=placement)
            audit.record(session, actor_id=actor.id or None, action="import.run", entity="importbatch",
                         entity_id=batch.id, detail={"filename": filename, "channel_id": channel_id,
                                                     "campaign_id": campaign_id, "counts": counts, "forced": force},
                         now=now)
            session.flush()
        except DBAPIError as error:
            raise ValidationError(f"The import failed and nothing was saved: {error.orig}", key="import.failed",
                                  detail=str(error.orig)[:200]) from error
        summary.batch_id = batch.id
        _step(progress, 1.0, "done")
        return summary
    finally:
        if search is not None:
            search.stop()


# ---------------------------------------------------------------------------------------------------------------
# Undo
# ---------------------------------------------------------------------------------------------------------------
def _ids_in(column: Any, ids: list[int]) -> list[Any]:
    return [column.in_(ids[start:start + _CHUNK]) for start in range(0, len(ids), _CHUNK)]


def undo_blockers(*, session: Session, batch_id: int) -> list[dict[str, Any]]:
    """What later work depends on the batch's leads (each: reason key and how many leads); empty = undo is safe."""
    batch = session.get(ImportBatch, batch_id)
    if batch is None:
        raise NotFound(f"Not found: import {batch_id}.", what=str(batch_id))
    created = list(session.scalars(select(Lead.id).where(Lead.import_batch_id == batch_id)))
    updated_rows = session.execute(select(ImportRow.lead_id, ImportRow.before).where(
        ImportRow.batch_id == batch_id, ImportRow.outcome == "updated", ImportRow.before.is_not(None),
        ImportRow.lead_id.is_not(None))).all()
    updated = sorted({int(r.lead_id) for r in updated_rows})
    blockers: list[dict[str, Any]] = []

    def count(what: str, statement_for: Callable[[list[int]], Any], ids: list[int]) -> None:
        total: set[int] = set()
        for start in range(0, len(ids), _CHUNK):
            total.update(int(i) for i in session.scalars(statement_for(ids[start:start + _CHUNK])) if i is not None)
        if total:
            blockers.append({"reason": what, "count": len(total), "lead_ids": sorted(total)[:20]})

    both = sorted(set(created) | set(updated))
    count("later_import", lambda c: select(ImportRow.lead_id).join(ImportBatch, ImportBatch.id == ImportRow.batch_id)
          .where(ImportRow.lead_id.in_(c), ImportRow.batch_id > batch_id,
                 ImportBatch.status == ImportStatus.COMMITTED, ImportRow.outcome.in_(("updated", "duplicate"))),
          both)
    # What the post-write chain did inside the batch's own transaction (scores, an MQL hand-off at the import's
    # time) goes with the batch; what happened after it is later work and blocks.
    at = batch.created_at
    handed_off = select(Assignment.lead_id).where(Assignment.assigned_at <= at)
    count("owner", lambda c: select(Lead.id).where(Lead.id.in_(c), Lead.owner_id.is_not(None),
                                                   Lead.id.not_in(handed_off)), created)
    count("stage", lambda c: select(StageChange.lead_id).where(StageChange.lead_id.in_(c), StageChange.at > at),
          created)
    count("assignment", lambda c: select(Assignment.lead_id).where(
        Assignment.lead_id.in_(c), (Assignment.assigned_at > at) | Assignment.decided_at.is_not(None)), created)
    count("opportunity", lambda c: select(Opportunity.lead_id).where(Opportunity.lead_id.in_(c)), created)
    count("merge", lambda c: select(MergeRecord.merged_id).where(
        (MergeRecord.merged_id.in_(c) | MergeRecord.survivor_id.in_(c)), MergeRecord.undone_at.is_(None)), created)
    count("workflow", lambda c: select(Enrollment.lead_id).where(Enrollment.lead_id.in_(c)), created)
    count("message", lambda c: select(Message.lead_id).where(Message.lead_id.in_(c), Message.created_at > at),
          created)
    count("other_touchpoints", lambda c: select(Touchpoint.lead_id).where(
        Touchpoint.lead_id.in_(c), (Touchpoint.import_batch_id != batch_id) | Touchpoint.import_batch_id.is_(None)),
        created)
    # Updated leads: a field the batch filled was changed again since.
    edited: list[int] = []
    current = _existing_rows(session, updated) if updated else pd.DataFrame()
    for row in updated_rows:
        after = (row.before or {}).get("_after", {})
        lead_id = int(row.lead_id)
        if lead_id not in current.index:
            edited.append(lead_id)
            continue
        for name, value in after.items():
            if _jsonable(current.loc[lead_id][name]) != value:
                edited.append(lead_id)
                break
    if edited:
        blockers.append({"reason": "edited_later", "count": len(set(edited)), "lead_ids": sorted(set(edited))[:20]})
    return blockers


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value) if isinstance(value, str) else value


def _same_time(value: datetime, other: datetime) -> bool:
    """Equal instants, whether the driver returns aware or naive UTC."""
    from core.clock import ensure_utc

    first = value if value.tzinfo else value.replace(tzinfo=UTC)
    second = other if other.tzinfo else other.replace(tzinfo=UTC)
    return ensure_utc(first) == ensure_utc(second)


def _lead_references() -> list[tuple[Any, str, bool]]:
    """(table, column, nullable) of every foreign key to lead, children first, so deletes respect the order."""
    found = []
    for table in reversed(SQLModel.metadata.sorted_tables):
        for fk in table.foreign_keys:
            if fk.column.table.name == "lead":
                found.append((table, fk.parent.name, bool(fk.parent.nullable)))
    return found


def undo_batch(*, session: Session, actor: Actor, batch_id: int, now: datetime) -> dict[str, int]:
    """Roll a committed batch back: its leads removed, the fields it filled emptied again, its touchpoints gone —
    refused with what blocks it when later work depends on them. A second click finds the batch undone."""
    require(actor, "import")
    batch = session.get(ImportBatch, batch_id)
    if batch is None:
        raise NotFound(f"Not found: import {batch_id}.", what=str(batch_id))
    if batch.status != ImportStatus.COMMITTED:
        raise ConcurrentUpdate("This import is not committed (already undone?).", key="import.not_undoable")
    blockers = undo_blockers(session=session, batch_id=batch_id)
    if blockers:
        text = "; ".join(t(f"import.blocker.{b['reason']}", actor.language, count=b["count"]) for b in blockers)
        raise ValidationError(f"The import cannot be undone: {text}", key="import.undo_blocked", blockers=text)
    # Claim the batch first: of two clicks, only one gets the row.
    claimed = session.execute(update(ImportBatch).where(ImportBatch.id == batch_id,
                                                        ImportBatch.status == ImportStatus.COMMITTED)
                              .values(status=ImportStatus.UNDONE, undone_at=now)
                              .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        raise ConcurrentUpdate("This import is not committed (already undone?).", key="import.not_undoable")
    created = sorted(int(i) for i in session.scalars(select(Lead.id).where(Lead.import_batch_id == batch_id)))
    touch_ids = list(session.scalars(select(Touchpoint.id).where(Touchpoint.import_batch_id == batch_id)))
    for condition in _ids_in(ScoreEvent.touchpoint_id, touch_ids):
        session.execute(delete(ScoreEvent).where(condition))
    removed_touches = session.execute(delete(Touchpoint).where(Touchpoint.import_batch_id == batch_id)).rowcount
    # Restore what the batch filled on leads that existed before it.
    restores = session.execute(select(ImportRow.lead_id, ImportRow.before).where(
        ImportRow.batch_id == batch_id, ImportRow.outcome == "updated", ImportRow.before.is_not(None),
        ImportRow.lead_id.is_not(None))).all()
    restored = 0
    at = batch.created_at
    matched_ids = [int(r.lead_id) for r in restores]
    for lead_id, before in restores:
        values = {k: v for k, v in (before or {}).items() if not k.startswith("_")}
        chain = (before or {}).get("_chain")
        current = session.execute(select(Lead.scored_at, Lead.stage_changed_at).where(Lead.id == lead_id)).one()
        # Scores and stage go back when the batch's own chain set them (their time is the batch's time).
        if chain and current.scored_at is not None and _same_time(current.scored_at, at):
            values.update({name: chain[name] for name in ("fit_score", "engagement_score", "grade")})
            values["scored_at"] = _time(chain["scored_at"])
        if chain and current.stage_changed_at is not None and _same_time(current.stage_changed_at, at):
            values.update(stage=chain["stage"], stage_changed_at=_time(chain["stage_changed_at"]),
                          owner_id=before.get("_owner_id"))
        if not values:
            continue
        if before.get("_updated_at"):
            values["updated_at"] = _time(before["_updated_at"])
        session.execute(update(_LEAD).where(_LEAD.c.id == lead_id).values(**values, version=_LEAD.c.version + 1))
        restored += 1
    # The ledger rows, stage changes and hand-offs the batch's chain wrote for those leads.
    for start in range(0, len(matched_ids), _CHUNK):
        chunk = matched_ids[start:start + _CHUNK]
        session.execute(delete(ScoreEvent).where(ScoreEvent.lead_id.in_(chunk), ScoreEvent.created_at == at))
        session.execute(delete(StageChange).where(StageChange.lead_id.in_(chunk), StageChange.at == at))
        session.execute(delete(Assignment).where(Assignment.lead_id.in_(chunk), Assignment.assigned_at == at,
                                                 Assignment.decided_at.is_(None)))
    # Remove the leads it created, with the rows derived from them.
    accounts = {int(a) for a in session.scalars(select(Lead.account_id).where(
        Lead.import_batch_id == batch_id, Lead.account_id.is_not(None)))}
    for start in range(0, len(created), _CHUNK):
        chunk = created[start:start + _CHUNK]
        session.execute(update(ImportRow).where(ImportRow.lead_id.in_(chunk)).values(lead_id=None))
        # Every row that points at these leads: history keeps its row with the lead emptied, derived rows go.
        for table, column, nullable in _lead_references():
            condition = table.c[column].in_(chunk)
            if table.name == "importrow" or (nullable and table.name not in ("leadtag", "groupmember")):
                session.execute(update(table).where(condition).values({column: None}))
            else:
                session.execute(delete(table).where(condition))
        session.execute(delete(_LEAD).where(_LEAD.c.id.in_(chunk)))
    # Accounts the batch brought into being and that now have no one left.
    if accounts:
        ids = sorted(accounts)
        still = {int(a) for a in session.scalars(select(Lead.account_id).where(Lead.account_id.in_(ids)))}
        used = {int(a) for a in session.scalars(select(Opportunity.account_id).where(Opportunity.account_id.in_(ids)))}
        empty = [i for i in ids if i not in still and i not in used]
        if empty:
            session.execute(delete(Account).where(Account.id.in_(empty), Account.created_at >= batch.created_at,
                                                  Account.owner_id.is_(None), Account.is_target.is_(False)))
    from core.accounts import assign_accounts, refresh_accounts

    if restores:
        assign_accounts(session=session, lead_ids=[int(r.lead_id) for r in restores], now=now)
    # Accounts that keep other contacts: their figures no longer count the removed leads.
    kept = sorted({int(a) for a in session.scalars(select(Account.id).where(Account.id.in_(sorted(accounts))))}) \
        if accounts else []
    if kept:
        refresh_accounts(session=session, now=now, account_ids=kept)
    result = {"removed_leads": len(created), "restored_leads": restored, "removed_touchpoints": int(removed_touches)}
    audit.record(session, actor_id=actor.id or None, action="import.undo", entity="importbatch", entity_id=batch_id,
                 detail=result, now=now)
    session.expire(batch)
    return result


def list_channels_for_import(*, session: Session) -> pd.DataFrame:
    rows = session.execute(select(Channel.id, Channel.name, Channel.kind).where(Channel.active.is_(True))
                           .order_by(Channel.id)).all()
    return pd.DataFrame([r._asdict() for r in rows], columns=["id", "name", "kind"])


def count_leads(*, session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Lead)) or 0)


def validate_filename(filename: str) -> None:
    if not filename.lower().endswith((".csv", ".tsv", ".txt", ".xlsx", ".xlsm")):
        raise FileFormatError("LeadLoop reads CSV, TSV, TXT and XLSX files.", key="import.unsupported_type")


__all__ = ["ImportPreview", "ImportSummary", "preview", "problem_report", "problem_report_csv",
           "run_import", "undo_batch", "undo_blockers"]
