"""From a read table and a mapping to a plan: every row normalized, validated, grouped with its duplicates in the
file, matched against the base, attributed — all as DataFrames, with one SELECT of existing leads' keys.

The plan is what the preview shows and exactly what ``run_import`` writes, so the counts a marketer confirms are
the counts that happen.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from core.clock import TEAM_TIMEZONE
from core.dedup.fields import lengths_of
from core.i18n import t
from core.importer import validate
from core.importer.mapping import IGNORE, LEAD_FIELDS, is_activity_mapping
from core.importer.reading import RawTable, filled_cells
from core.normalize import email_normalize, email_valid, halfwidth, lead_keys, phone_e164
from db.models import Campaign, Lead, LeadStatus, TouchpointKind, TrackingLink, User

TEXT_FIELDS = ("name", "company", "title", "industry", "province", "city", "product_interest", "wechat_id")
# Column lengths of Lead: longer values are cut (and reported) instead of failing the whole batch.
MAX_LENGTH = {"name": 128, "email": 254, "phone": 32, "wechat_id": 64, "company": 256, "title": 128,
              "industry": 64, "province": 32, "city": 32, "product_interest": 64, "tracking_code": 32,
              "utm_source": 128, "utm_medium": 128, "utm_campaign": 128}
INVALID_REASONS = ("no_contact", "bad_phone", "fake_phone", "bad_email", "fake_email", "disposable_email",
                   "blocklisted")
# Reasons that make the lead invalid on their own; a malformed phone or email alone is only reported (the lead
# keeps its other contact) unless nothing else reaches the person, which ``no_contact`` says.
_DISQUALIFYING = ("no_contact", "fake_phone", "fake_email", "disposable_email", "blocklisted")

CHANNEL_TOUCH = {"website": TouchpointKind.FORM_SUBMIT, "wechat": TouchpointKind.WECHAT_FOLLOW,
                 "livestream": TouchpointKind.LIVESTREAM_VIEW, "tradeshow": TouchpointKind.TRADESHOW_SCAN,
                 "email": TouchpointKind.EMAIL_OPEN, "sem": TouchpointKind.SEM_CLICK,
                 "referral": TouchpointKind.REFERRAL, "event": TouchpointKind.EVENT_ATTENDED}
# Words in an activity column → touchpoint kind (the first match wins, so specific words come first).
ACTIVITY_WORDS: tuple[tuple[str, str], ...] = (
    ("点击", TouchpointKind.EMAIL_CLICK), ("click", TouchpointKind.EMAIL_CLICK),
    ("打开", TouchpointKind.EMAIL_OPEN), ("open", TouchpointKind.EMAIL_OPEN),
    ("报名", TouchpointKind.WEBINAR_REGISTERED), ("regist", TouchpointKind.WEBINAR_REGISTERED),
    ("签到", TouchpointKind.WEBINAR_ATTENDED), ("参会", TouchpointKind.WEBINAR_ATTENDED),
    ("出席", TouchpointKind.WEBINAR_ATTENDED), ("attend", TouchpointKind.WEBINAR_ATTENDED),
    ("直播", TouchpointKind.LIVESTREAM_VIEW), ("观看", TouchpointKind.LIVESTREAM_VIEW),
    ("view", TouchpointKind.LIVESTREAM_VIEW), ("watch", TouchpointKind.LIVESTREAM_VIEW),
    ("扫码", TouchpointKind.TRADESHOW_SCAN), ("展位", TouchpointKind.TRADESHOW_SCAN),
    ("scan", TouchpointKind.TRADESHOW_SCAN), ("booth", TouchpointKind.TRADESHOW_SCAN),
    ("白皮书", TouchpointKind.WHITEPAPER_DOWNLOAD), ("下载", TouchpointKind.WHITEPAPER_DOWNLOAD),
    ("download", TouchpointKind.WHITEPAPER_DOWNLOAD), ("whitepaper", TouchpointKind.WHITEPAPER_DOWNLOAD),
    ("演示", TouchpointKind.DEMO_REQUEST), ("demo", TouchpointKind.DEMO_REQUEST),
    ("表单", TouchpointKind.FORM_SUBMIT), ("form", TouchpointKind.FORM_SUBMIT),
)


@dataclass
class Plan:
    """What an import will do. ``rows``: one per file row; ``groups``: one per person (new or existing lead);
    ``touches``: the touchpoints to add."""

    kind: str
    rows: pd.DataFrame
    groups: pd.DataFrame
    touches: pd.DataFrame
    problems: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def _per_distinct(values: pd.Series, func: Any, width: int) -> list[np.ndarray]:
    """``func(value)`` — a tuple of ``width`` results — once per distinct non-missing value, spread back over the
    rows as ``width`` object arrays (None where the value is missing)."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object, na_value=None), use_na_sentinel=True)
    results = [func(v) for v in uniques]
    out = []
    for position in range(width):
        table = np.empty(len(results) + 1, dtype=object)
        table[:-1] = [r[position] for r in results]
        table[-1] = None
        out.append(table[codes])
    return out


def _none_series(n: int, index: pd.Index) -> pd.Series:
    return pd.Series([None] * n, index=index, dtype=object)


def _blank_to_none(series: pd.Series) -> pd.Series:
    """The column as plain Python values, None where a cell is empty or blank."""
    values = series.to_numpy(dtype=object, na_value=None)
    return pd.Series(np.where(filled_cells(values), values, None), index=series.index, dtype=object)


def _company_size(series: pd.Series) -> pd.Series:
    """"100-499人" → 100, "500人以上" → 500, "1,000" → 1000: the first number, as employees."""
    def one(value: Any) -> int | None:
        match = re.search(r"\d[\d,]*", str(value))
        if not match:
            return None
        number = int(match.group(0).replace(",", ""))
        return number if 0 < number < 10_000_000 else None
    values = series.to_numpy(dtype=object)
    present = ~pd.isna(values)
    cache: dict[Any, int | None] = {}
    out = np.full(len(values), None, dtype=object)
    for position in np.flatnonzero(present):
        value = values[position]
        if value not in cache:
            cache[value] = one(value)
        out[position] = cache[value]
    return pd.Series(out, index=series.index, dtype=object)


def _parse_times(series: pd.Series, now: datetime) -> tuple[pd.Series, pd.Series]:
    """Activity times as UTC timestamps (naive text is the team's local time); ``now`` where absent or unreadable.
    Also returns which present values could not be read. Each distinct text is parsed once."""
    values = _blank_to_none(series)
    uniques = pd.unique(values.dropna().to_numpy(dtype=object))
    out = pd.Series(pd.Timestamp(now).tz_convert("UTC"), index=series.index, dtype="datetime64[us, UTC]")
    bad = pd.Series(False, index=series.index)
    if len(uniques):
        stamps = pd.to_datetime(pd.Series(uniques, dtype=object).astype(str), errors="coerce", format="mixed")
        parsed: dict[Any, Any] = {}
        for raw, stamp in zip(uniques, stamps, strict=True):
            if pd.isna(stamp):
                continue
            stamp = pd.Timestamp(stamp)
            stamp = stamp.tz_localize(TEAM_TIMEZONE) if stamp.tzinfo is None else stamp
            parsed[raw] = stamp.tz_convert("UTC")
        mapped = values.map(lambda v: parsed.get(v) if v is not None else None)
        readable = mapped.notna()
        if readable.any():
            out[readable] = pd.to_datetime(mapped[readable], utc=True).to_numpy()
        bad = values.notna() & ~readable
    return out, bad


def _utm_from_urls(urls: pd.Series) -> pd.DataFrame:
    """utm_source / utm_medium / utm_campaign and a tracking code (``code``/``ref``/``tc``) from landing URLs."""
    names = ("utm_source", "utm_medium", "utm_campaign", "url_code")

    def parse(url: Any) -> tuple[str | None, ...]:
        try:
            query = parse_qs(urlsplit(str(url)).query)
        except ValueError:
            query = {}

        def first(*keys: str) -> str | None:
            for key in keys:
                if query.get(key) and query[key][0].strip():
                    return query[key][0].strip()
            return None
        return first("utm_source"), first("utm_medium"), first("utm_campaign"), first("code", "ref", "tc", "ll")

    columns = _per_distinct(urls, parse, len(names))
    return pd.DataFrame(dict(zip(names, columns, strict=True)), index=urls.index, dtype=object)


def _label_groups(keys: list[pd.Series]) -> np.ndarray:
    """Connected rows: two rows are one person when they share any key (phone, email, WeChat id, matched lead).
    Label propagation: every row takes the smallest label among rows sharing a key, until nothing changes.
    Each key column is turned into integer codes once; the rounds are then plain array operations."""
    n = len(keys[0]) if keys else 0
    label = np.arange(n)
    coded = []
    for key in keys:
        codes, uniques = pd.factorize(key.to_numpy(dtype=object, na_value=None), use_na_sentinel=True)
        rows = np.flatnonzero(codes >= 0)
        if len(rows):
            coded.append((codes[rows], rows, len(uniques)))
    for _ in range(50):
        before = label.copy()
        for codes, rows, count in coded:
            smallest = np.full(count, n, dtype=label.dtype)
            np.minimum.at(smallest, codes, label[rows])
            label[rows] = np.minimum(label[rows], smallest[codes])
        label = label[label]  # follow pointers: a row's label's label
        if np.array_equal(label, before):
            break
    return label


def _existing_keys(session: Session) -> pd.DataFrame:
    """Every live lead's id and contact keys: one SELECT; matching happens in pandas."""
    result = session.connection().execute(
        select(Lead.id, Lead.phone, Lead.email, Lead.wechat_id).where(Lead.status != LeadStatus.MERGED)
    )
    # Ids and text need no type processing: the driver's rows as they are.
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    return pd.DataFrame.from_records(rows, columns=["id", "phone", "email", "wechat_id"]).astype(object) if rows \
        else pd.DataFrame(columns=["id", "phone", "email", "wechat_id"], dtype=object)


def _reason_lists(flags: dict[str, pd.Series], n: int) -> list[list[str]]:
    """Per row, the names of the flags it raised, in ``INVALID_REASONS`` order (most rows raise none)."""
    reasons: list[list[str]] = [[] for _ in range(n)]
    for name in INVALID_REASONS:
        for position in np.flatnonzero(flags[name].to_numpy()):
            reasons[position].append(name)
    return reasons


def _durations(values: pd.Series) -> pd.Series:
    """The first number in each cell (minutes of attendance), NaN where there is none."""
    return pd.to_numeric(values.astype(object).astype(str).str.extract(r"(\d+(?:\.\d+)?)")[0], errors="coerce")


def _attribute_columns(frame: pd.DataFrame, mapping: dict[str, str | None], source: pd.Series,
                       phone_as_typed: pd.Series, email_as_typed: pd.Series) -> pd.DataFrame:
    """What each row keeps as custom attributes, one column per attribute (None where the row has no value):
    the columns mapped to no field as they came (stripped), the source, and a malformed phone or email beside a
    good contact as typed."""
    columns: dict[str, np.ndarray] = {}
    for name in (c for c, f in mapping.items() if f is None and c in frame.columns):
        text = _blank_to_none(frame[name].map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore"))
        stripped = text.map(str.strip, na_action="ignore")
        columns[name] = stripped.to_numpy(dtype=object, na_value=None)
    for name, values in (("source", source), ("phone_as_typed", phone_as_typed),
                         ("email_as_typed", email_as_typed)):
        array = values.to_numpy(dtype=object, na_value=None)
        if name == "source" or not pd.isna(array).all():
            columns[name] = array
    return pd.DataFrame(columns, index=frame.index, dtype=object)


def _group_attributes(attributes: pd.DataFrame, groups: pd.Series, index: pd.Index) -> list[dict[str, Any]]:
    """Per group (in ``index`` order), each attribute's first value in file order."""
    used = [c for c in attributes.columns if attributes[c].notna().any()]
    if not used:
        return [{} for _ in range(len(index))]
    first = attributes[used].groupby(groups.to_numpy(), sort=True).first().reindex(index)
    arrays = [first[c].to_numpy(dtype=object, na_value=None) for c in used]
    return [{c: v for c, v in zip(used, values, strict=True) if v is not None} for values in zip(*arrays, strict=True)]


def new_lead_identity(plan: Plan, groups: pd.DataFrame) -> pd.DataFrame:
    """What the keys of the groups that become new leads are derived from: name, company and WeChat id, and the
    phone and email as ``lead_keys(…, normalized=True)`` takes them.

    The rows' phones and emails were normalized while planning; a group's value is one of them unless a cut
    shortened it (or an invalid lead keeps the text as typed), and only those few are normalized here."""
    frame = groups[["name", "phone", "email", "company", "wechat_id"]].copy()
    for column, normalized, normalize in (("phone", "phone_e164", phone_e164),
                                          ("email", "email_normalized", email_normalize)):
        values = frame[column].astype(object)
        known = values.isin(set(plan.rows[normalized].dropna())) | values.isna()
        frame[column] = values.where(known, normalize(values.where(~known, None)))
    return frame


def new_lead_keys(plan: Plan, groups: pd.DataFrame) -> pd.DataFrame:
    """``name_key``, ``company_key`` and ``search_text`` of the groups that become new leads."""
    return lead_keys(new_lead_identity(plan, groups), normalized=True)


def _match(series: pd.Series, existing: pd.DataFrame, column: str) -> pd.Series:
    known = existing[["id", column]].dropna().sort_values("id").drop_duplicates(column)
    lookup = pd.Series(known["id"].to_numpy(dtype=object), index=known[column].to_numpy(dtype=object))
    found = series.map(lookup)
    return found.astype(object).where(found.notna(), None)


def _codes(session: Session, codes: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Tracking link or employee code → (tracking code, campaign id, referrer user id) per row."""
    wanted = sorted({str(c) for c in codes.dropna()})
    links: dict[str, tuple[int, int | None]] = {}
    employees: dict[str, int] = {}
    campaigns: dict[str, int] = {}
    if wanted:
        for code, campaign_id, employee_id in session.execute(
                select(TrackingLink.code, TrackingLink.campaign_id, TrackingLink.employee_id)):
            links[str(code).lower()] = (int(campaign_id), employee_id)
        for code, user_id in session.execute(select(User.employee_code, User.id)
                                             .where(User.employee_code.is_not(None))):
            employees[str(code).lower()] = int(user_id)
        for code, campaign_id in session.execute(select(Campaign.tracking_code, Campaign.id)
                                                 .where(Campaign.tracking_code.is_not(None))):
            campaigns[str(code).lower()] = int(campaign_id)

    def resolve(value: Any) -> tuple[str | None, int | None, int | None]:
        code = str(value).strip()
        key = code.lower()
        if key in links:
            return code, links[key][0], links[key][1]
        if key in campaigns:
            return code, campaigns[key], None
        if key in employees:
            return None, None, employees[key]
        return None, None, None

    tracking, campaign, referrer = _per_distinct(codes, resolve, 3)
    index = codes.index
    return (pd.Series(tracking, index=index, dtype=object), pd.Series(campaign, index=index, dtype=object),
            pd.Series(referrer, index=index, dtype=object))


def _activity_kind(values: pd.Series, durations: pd.Series, default: str) -> pd.Series:
    def one(value: Any) -> str:
        text = str(value).lower()
        for word, kind in ACTIVITY_WORDS:
            if word in text:
                return str(kind)
        return default
    (kinds_array,) = _per_distinct(values, lambda v: (one(v),), 1)
    kinds = pd.Series(kinds_array, index=values.index, dtype=object).where(values.notna(), default)
    # A registration list with an attendance duration: those who stayed attended.
    attended = (kinds == TouchpointKind.WEBINAR_REGISTERED) & (durations.fillna(0) > 0)
    return kinds.where(~attended, str(TouchpointKind.WEBINAR_ATTENDED))


def _touch_key(channel_id: int, kinds: pd.Series, identity: pd.Series, times: pd.Series) -> pd.Series:
    """A natural key per touchpoint, so the same activity imported again is recognised and not doubled."""
    # Times repeat (a list without times takes the import's): each distinct one is formatted once.
    codes, uniques = pd.factorize(times)
    stamps = np.asarray(pd.DatetimeIndex(uniques).strftime("%Y-%m-%dT%H:%M:%S"), dtype=object)[codes]
    sha1 = hashlib.sha1
    out = [f"imp:{sha1(f'{channel_id}|{kind}|{who}|{stamp}'.encode()).hexdigest()}"  # 40 hex digits
           for kind, who, stamp in zip(kinds.to_numpy(dtype=object), identity.to_numpy(dtype=object), stamps,
                                       strict=True)]
    return pd.Series(out, index=kinds.index, dtype=object)


def build_plan(*, session: Session, table: RawTable, mapping: dict[str, str | None], channel_id: int,
               channel_kind: str, campaign_id: int | None, blocklist: frozenset[str], now: datetime,
               content_hash: str, lang: str = "zh") -> Plan:
    """The plan for one file (no writes)."""
    frame = table.frame
    n = len(frame)
    index = pd.RangeIndex(n)
    frame = frame.reset_index(drop=True)
    by_field = {f: c for c, f in mapping.items() if f and f != IGNORE and c in frame.columns}
    column_of = dict(by_field)

    def col(name: str) -> pd.Series:
        return _blank_to_none(frame[by_field[name]]) if name in by_field else _none_series(n, index)

    rows = pd.DataFrame(index=index)
    rows["row_number"] = table.line_numbers[:n] if len(table.line_numbers) >= n else list(range(2, n + 2))
    for name in TEXT_FIELDS:
        rows[name] = halfwidth(col(name))
    rows["company_size"] = _company_size(halfwidth(col("company_size")))
    raw_phone = halfwidth(col("phone"))
    raw_email = col("email")
    phone = phone_e164(raw_phone)
    email = email_normalize(raw_email)
    email_ok = email_valid(email, normalized=True) & email.notna()
    wechat = rows["wechat_id"]

    # Validity, row by row, as boolean columns.
    bad_phone = raw_phone.notna() & phone.isna()
    fake_phone = validate.fake_phone(phone)
    bad_email = email.notna() & ~email_ok
    fake_email, disposable = validate.email_flags(email.where(email_ok, None))
    blocked = validate.blocked(blocklist, emails=email, phones=phone, companies=rows["company"])
    usable_phone = phone.notna() & ~fake_phone & ~blocked
    usable_email = email_ok & ~fake_email & ~disposable & ~blocked
    no_contact = ~usable_phone & ~usable_email & wechat.isna()
    flags = {"no_contact": no_contact, "bad_phone": bad_phone, "fake_phone": fake_phone, "bad_email": bad_email,
             "fake_email": fake_email, "disposable_email": disposable, "blocklisted": blocked}
    disqualified = pd.Series(False, index=index)
    for name in _DISQUALIFYING:
        disqualified |= flags[name]
    rows["valid"] = ~disqualified
    rows["reasons"] = _reason_lists(flags, n)
    rows["phone_e164"] = phone
    rows["email_normalized"] = email
    rows["phone_key"] = phone.where(usable_phone, None)
    rows["email_key"] = email.where(usable_email, None)
    # What a new lead stores: the normalized value where there is one, else the text as typed (an invalid lead
    # keeps it so a person can correct it); a valid lead never stores a value that failed the check.
    rows["phone"] = phone.where(phone.notna(), raw_phone.where(~rows["valid"], None))
    rows["email"] = email.where(email_ok | ~rows["valid"], None)

    # Attribution.
    utm = _utm_from_urls(col("landing_url"))
    for name in ("utm_source", "utm_medium", "utm_campaign"):
        rows[name] = halfwidth(col(name)).where(col(name).notna(), utm[name])
    codes = halfwidth(col("referral_code")).where(col("referral_code").notna(), utm["url_code"])
    rows["tracking_code"], code_campaign, rows["referrer_id"] = _codes(session, codes)
    utm_campaigns = {str(k).lower(): int(v) for k, v in session.execute(
        select(Campaign.utm_campaign, Campaign.id).where(Campaign.utm_campaign.is_not(None)))}
    (utm_campaign_ids,) = _per_distinct(rows["utm_campaign"], lambda v: (utm_campaigns.get(str(v).lower()),), 1)
    utm_campaign_id = pd.Series(utm_campaign_ids, index=index, dtype=object)
    rows["campaign_id"] = code_campaign.where(code_campaign.notna(),
                                              campaign_id if campaign_id is not None else utm_campaign_id)
    if campaign_id is None:
        rows["campaign_id"] = rows["campaign_id"].where(rows["campaign_id"].notna(), utm_campaign_id)

    # Custom columns, kept on the lead as they came; merged per person below.
    attribute_columns = _attribute_columns(frame, mapping, col("source"), raw_phone.where(bad_phone & rows["valid"]),
                                           raw_email.where(bad_email & rows["valid"]))

    # Activity.
    activity_file = is_activity_mapping(mapping)
    times, bad_time = _parse_times(col("occurred_at"), now)
    rows["occurred_at"] = times
    durations = _durations(halfwidth(col("duration"))) if "duration" in by_field else pd.Series(
        np.nan, index=index, dtype=float)
    default_kind = str(CHANNEL_TOUCH.get(channel_kind, TouchpointKind.IMPORTED))
    rows["touch_kind"] = _activity_kind(col("activity"), durations, default_kind)
    rows["duration"] = durations.astype(object).where(durations.notna(), None)

    # Cut what does not fit its column.
    too_long: list[tuple[int, str, str]] = []
    for name, limit in MAX_LENGTH.items():
        if name not in rows:
            continue
        values = rows[name]
        if not values.notna().any():
            continue
        long = pd.Series(lengths_of(values.to_numpy(dtype=object)) > limit, index=values.index)
        for position in np.flatnonzero(long.to_numpy()):
            too_long.append((position, name, str(values.iloc[position])))
        if long.any():
            rows.loc[long, name] = values[long].astype(str).str[:limit]

    # The same person more than once in the file, and people already in the base.
    existing = _existing_keys(session)
    matched = _match(rows["phone_key"], existing, "phone")
    matched = matched.where(matched.notna(), _match(rows["email_key"], existing, "email"))
    matched = matched.where(matched.notna(), _match(wechat, existing, "wechat_id"))
    rows["existing_id"] = matched
    identity = rows["phone_key"].notna() | rows["email_key"].notna() | wechat.notna()
    # Rows that share nothing with anyone stay alone (their own key: the row position).
    labels = _label_groups([rows["phone_key"], rows["email_key"], wechat, matched])
    rows["group"] = labels
    first_of_group = ~pd.Series(labels).duplicated().to_numpy()
    rows["skipped"] = activity_file & ~identity.to_numpy()
    rows["root"] = first_of_group & ~rows["skipped"].to_numpy()

    # One consolidated person per group: the first non-empty value of each field, in file order.
    keep = ~rows["skipped"]
    group_columns = ["name", "phone", "email", "wechat_id", "company", "title", "industry", "province", "city",
                     "company_size", "product_interest", "tracking_code", "referrer_id", "utm_source", "utm_medium",
                     "utm_campaign", "campaign_id", "existing_id", "phone_key", "email_key"]
    live = rows[keep]
    if len(live):
        groups = live.groupby("group", sort=True)[group_columns].first()
        groups["valid"] = live.groupby("group", sort=True)["valid"].any()
        groups["reasons"] = live.groupby("group", sort=True)["reasons"].first()
        groups["last_activity_at"] = live.groupby("group", sort=True)["occurred_at"].max()
        groups["attributes"] = _group_attributes(attribute_columns[keep.to_numpy()], live["group"], groups.index)
    else:
        groups = pd.DataFrame(columns=[*group_columns, "valid", "reasons", "last_activity_at", "attributes"])
    last_activity = groups["last_activity_at"] if len(groups) else None
    for name in groups.columns:  # missing values as None, column by column where there are any
        column = groups[name]
        if column.dtype != object or column.isna().any():
            groups[name] = column.astype(object).where(column.notna(), None)
    if last_activity is not None:
        groups["last_activity_at"] = last_activity
    groups["is_new"] = groups["existing_id"].isna()
    # A group that matched the base stores only usable contact values into the lead's empty fields.
    groups.loc[~groups["is_new"], "phone"] = groups.loc[~groups["is_new"], "phone_key"]
    groups.loc[~groups["is_new"], "email"] = groups.loc[~groups["is_new"], "email_key"]
    groups["status"] = pd.Series(np.where(groups["valid"].astype(bool), LeadStatus.VALID, LeadStatus.INVALID),
                                 index=groups.index, dtype=object)
    explained: dict[tuple[str, ...], str] = {}  # a few combinations of reasons, each put into words once

    def explain(reasons: list[str] | None) -> str:
        key = tuple(reasons or ["no_contact"])
        if key not in explained:
            explained[key] = "; ".join(t(f"import.reason.{r}", lang) for r in key)[:256]
        return explained[key]

    groups["invalid_reason"] = pd.Series(
        [None if ok else explain(reasons) for ok, reasons in zip(groups["valid"].astype(bool).to_numpy(),
                                                                   groups["reasons"].to_numpy(), strict=True)],
        index=groups.index, dtype=object)

    # Row outcomes.
    is_new = rows["group"].map(groups["is_new"]).fillna(False).astype(bool)
    group_valid = rows["group"].map(groups["valid"]).fillna(False).astype(bool)
    outcome = np.where(rows["skipped"], "skipped",
                       np.where(~rows["root"], "duplicate",
                                np.where(~is_new, "updated", np.where(group_valid, "inserted", "invalid"))))
    if activity_file:
        outcome = np.where((outcome == "duplicate"), "touchpoint", outcome)
    rows["outcome"] = pd.Series(outcome, index=rows.index, dtype=object)

    # Touchpoints: one per row that belongs to a person.
    touch_rows = rows[~rows["skipped"]]
    who = touch_rows["phone_key"].where(touch_rows["phone_key"].notna(), touch_rows["email_key"])
    who = who.where(who.notna(), touch_rows["wechat_id"])
    who = who.where(who.notna(), pd.Series([f"{content_hash[:16]}#{r}" for r in touch_rows["row_number"]],
                                           index=touch_rows.index, dtype=object))
    touches = pd.DataFrame({
        "row": touch_rows.index, "group": touch_rows["group"], "kind": touch_rows["touch_kind"],
        "campaign_id": touch_rows["campaign_id"], "occurred_at": touch_rows["occurred_at"],
        "duration": touch_rows["duration"], "row_number": touch_rows["row_number"],
    })
    touches["natural_key"] = _touch_key(channel_id, touches["kind"], who, touches["occurred_at"])
    touches = touches.drop_duplicates("natural_key")

    # The problem report: row, column, problem, value as it came.
    problems: list[tuple[int, str, str, str]] = []
    line = rows["row_number"].to_numpy()
    checks = (("bad_phone", "phone", raw_phone), ("fake_phone", "phone", raw_phone), ("bad_email", "email", raw_email),
              ("fake_email", "email", raw_email), ("disposable_email", "email", raw_email),
              ("blocklisted", "email" if "email" in column_of else "phone", raw_email if "email" in column_of
               else raw_phone))
    for reason, name, values in checks:
        positions = np.flatnonzero(flags[reason].to_numpy())
        if len(positions):
            cells = values.to_numpy(dtype=object, na_value=None)[positions]
            problems += [(int(row), column_of.get(name, ""), reason, str(value or ""))
                         for row, value in zip(line[positions], cells, strict=True)]
    for position in np.flatnonzero((no_contact & ~rows["skipped"]).to_numpy()):
        problems.append((int(line[position]), "", "no_contact", ""))
    for position in np.flatnonzero(rows["skipped"].to_numpy()):
        problems.append((int(line[position]), "", "no_identity", ""))
    for position, name, value in too_long:
        problems.append((int(line[position]), column_of.get(name, name), "too_long", value))
    for position in np.flatnonzero(bad_time.to_numpy()):
        problems.append((int(line[position]), column_of.get("occurred_at", ""), "bad_time",
                         str(col("occurred_at").iloc[position])))
    problem_frame = pd.DataFrame(problems, columns=["row", "column", "problem", "value"]).sort_values(
        ["row", "column"], kind="stable").reset_index(drop=True)

    counts = {
        "rows": int(n),
        "inserted": int(((outcome == "inserted")).sum()),
        "updated": int((outcome == "updated").sum()),
        "duplicates_in_file": int(((outcome == "duplicate") | (outcome == "touchpoint")).sum()),
        "invalid": int((outcome == "invalid").sum()),
        "skipped": int((outcome == "skipped").sum()),
        "touchpoints": int(len(touches)),
        "problems": int(len(problem_frame)),
    }
    return Plan(kind="touchpoints" if activity_file else "leads", rows=rows, groups=groups, touches=touches,
                problems=problem_frame, counts=counts)


LEAD_FILL_FIELDS = LEAD_FIELDS  # fields an import fills on an existing lead when the lead has none
