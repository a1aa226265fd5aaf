"""Accounts (ABM): leads grouped into companies, the buying committee, engagement, fit against the ICP, MQA.

An account is found from two keys of its leads: the normalized company name (``core.normalize.company_key``) and
the corporate email domain (free-mail and disposable domains never count: two people with @qq.com addresses are
not colleagues). A lead without a company name joins the account its domain belongs to; a domain nobody named
becomes an account of its own (named after the domain) until someone from it gives a company name.

Everything here is set-based: ``rebuild_accounts`` re-derives every account from one query over the leads;
``assign_accounts`` places new leads the same way without touching the others (``place_leads`` does it for an
import's leads before they are written, so each new row is written once); ``refresh_accounts`` recomputes
the account figures (engagement, stage, fit, MQA) from one query over their contacts and one over recent
touchpoints, and writes them back in bulk.

Routing reads ``Account.owner_id``: an account's leads go to its owner.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from disposable_email_domains import blocklist as _DISPOSABLE
from sqlalchemy import (
    ColumnElement,
    String,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlmodel import Session

from core import audit
from core.auth import Actor, lead_scope, require
from core.errors import NotFound, Term, ValidationError
from core.journeys import PASSIVE_KINDS, TIMELINE_PAGE, leads_timeline
from core.settings import get_setting, set_setting
from db.bulk import among, update_from
from db.models import Account, Lead, LeadStatus, Opportunity, Role, Stage, Touchpoint, TouchpointKind, User

_CHUNK = 1000
_LEAD_TABLE = Lead.__table__  # type: ignore[attr-defined]

# ---------------------------------------------------------------------------------------------------------------
# Domains
# ---------------------------------------------------------------------------------------------------------------
FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    """
    qq.com vip.qq.com foxmail.com 163.com vip.163.com 126.com vip.126.com yeah.net 188.com sina.com sina.cn
    vip.sina.com sohu.com vip.sohu.com 139.com 189.cn wo.cn wo.com.cn 21cn.com tom.com aliyun.com 263.net
    gmail.com googlemail.com hotmail.com outlook.com live.com live.cn msn.com yahoo.com yahoo.com.cn
    yahoo.co.jp icloud.com me.com mac.com aol.com protonmail.com proton.me gmx.com gmx.de mail.com yandex.com
    yandex.ru zoho.com qq.cn hotmail.co.uk outlook.cn naver.com hanmail.net
    """.split()
)


def is_free_mail(domain: str | None) -> bool:
    """True for consumer mail providers and disposable addresses (they say nothing about an employer)."""
    if not domain:
        return True
    return domain in FREE_MAIL_DOMAINS or domain in _DISPOSABLE


def _map_unique(series: pd.Series, func: Any, missing: Any) -> pd.Series:
    """``func`` once per distinct value, spread back as an object Series (``missing`` where there is no value)."""
    codes, uniques = pd.factorize(series.to_numpy(dtype=object, na_value=None), use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [func(v) for v in uniques]
    table[-1] = missing
    return pd.Series(table[codes], index=series.index, dtype=object)


def corporate_domain(emails: pd.Series) -> pd.Series:
    """The email's domain where it can identify an employer, else ``None`` (vectorized over unique values)."""

    def checked(domain: str) -> str | None:
        domain = domain.strip(" .>")
        return None if "." not in domain or is_free_mail(domain) else domain

    def one(value: Any) -> str | None:
        if not isinstance(value, str) or "@" not in value:
            return None
        if value.startswith("@") and value.isascii():  # the domain part of a plain address (below)
            return checked(value[1:].rstrip().lower())
        return checked(unicodedata.normalize("NFKC", value).strip().lower().rsplit("@", 1)[1])

    # A batch's addresses are all different but share a few hundred domains: a plain (ASCII) address, which NFKC
    # leaves as it is, is reduced to "@" + its domain part first, so each domain is looked at once.
    values = emails.to_numpy(dtype=object, na_value=None)
    parts = np.empty(len(values), dtype=object)
    parts[:] = [("@" + v.rpartition("@")[2]) if type(v) is str and "@" in v and v.isascii() else v for v in values]
    return _map_unique(pd.Series(parts, index=emails.index, dtype=object), one, None)


# ---------------------------------------------------------------------------------------------------------------
# Titles: seniority, department, role in the buying committee
# ---------------------------------------------------------------------------------------------------------------
SENIORITIES = ("c_level", "vp", "director", "manager", "staff", "unknown")
DEPARTMENTS = ("executive", "it", "marketing", "sales", "finance", "procurement", "operations", "hr", "product",
               "other")
COMMITTEE_ROLES = ("decision_maker", "influencer", "user", "unknown")

def _ascii_words(pattern: str) -> str:
    """``\\b`` as a boundary between ASCII letters only: in "IT总监" the "it" is a word of its own, although
    Python counts Chinese characters as word characters."""
    return re.sub(r"\\b(?=[a-z])", r"(?<![a-z0-9])", pattern).replace(r"\b", r"(?![a-z0-9])")


# First match wins. Assistants first ("总经理助理" is not a general manager), deputies before chiefs
# ("副总经理" contains "总经理").
_SENIORITY_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(_ascii_words(pattern)))
    for name, pattern in (
        ("staff", r"(助理|秘书|assistant\b|secretary\b|intern\b|实习)"),
        ("vp", r"(副总裁|副总经理|副总(?!监)|副董事长|\bsvp\b|\bevp\b|\bvp\b|vice[\s-]+president|\bavp\b)"),
        ("c_level", r"(首席|总裁|董事长|董事|创始人|合伙人|总经理|老板|法人|\bc[a-z]?o\b|chief\b|president\b|"
                    r"founder|chairman|\bowner\b|\bpartner\b|general manager|managing director|\bgm\b)"),
        ("director", r"(总监|部长|主任|负责人|厂长|院长|\bdirector\b|\bhead\b|\bhead of\b)"),
        ("manager", r"(经理|主管|组长|科长|\bmanager\b|\blead\b|\bsupervisor\b|\bteam lead)"),
        ("staff", r"(工程师|专员|分析师|顾问|开发|文员|职员|代表|会计|出纳|采购员|销售员|设计师|\bengineer\b|"
                  r"specialist|analyst|coordinator|developer|consultant|associate|officer|representative|"
                  r"accountant|designer|executive\b|\bstaff\b)"),
    )
)
_DEPARTMENT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(_ascii_words(pattern)))
    for name, pattern in (
        ("it", r"(信息|技术|研发|开发|工程师|架构|运维|数据|数字化|网络|安全|\bit\b|\bcto\b|\bcio\b|\bcdo\b|"
               r"technology|technical|engineering|engineer|developer|software|infrastructure|devops|security|"
               r"\bdata\b)"),
        ("marketing", r"(市场|营销|品牌|推广|公关|新媒体|\bmarketing\b|\bcmo\b|\bbrand\b|\bgrowth\b|"
                      r"communications|\bpr\b)"),
        ("sales", r"(销售|商务|渠道|大客户|业务|\bsales\b|business development|\bbd\b|account manager|"
                  r"commercial|\bcso\b)"),
        ("finance", r"(财务|会计|出纳|审计|\bcfo\b|finance|financial|accounting|accountant|controller|treasur)"),
        ("procurement", r"(采购|供应链|purchas|procurement|\bbuyer\b|sourcing|supply chain)"),
        ("hr", r"(人事|人力|招聘|\bhr\b|human resources|\btalent\b|recruit)"),
        ("product", r"(产品|\bproduct\b)"),
        ("operations", r"(运营|生产|物流|工厂|厂长|行政|\bcoo\b|operations|\bops\b|logistics|production|plant|"
                       r"administration)"),
        ("executive", r"(总裁|董事长|董事|创始人|合伙人|总经理|老板|法人|首席执行官|\bceo\b|president|founder|"
                      r"chairman|\bowner\b|general manager|managing director|\bgm\b|\bpartner\b)"),
    )
)
_COMMITTEE_ROLE = {"c_level": "decision_maker", "vp": "decision_maker", "director": "influencer",
                   "manager": "influencer", "staff": "user", "unknown": "unknown"}
SENIORITY_RANK = {name: rank for rank, name in enumerate(reversed(SENIORITIES))}


def _title_text(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return " ".join(unicodedata.normalize("NFKC", value).lower().split())


def _classify(series: pd.Series, rules: tuple[tuple[str, re.Pattern[str]], ...], default: str) -> pd.Series:
    def one(value: Any) -> str:
        text = _title_text(value)
        for name, pattern in rules:
            if text and pattern.search(text):
                return name
        return default

    return _map_unique(series, one, default)


def infer_seniority(titles: pd.Series) -> pd.Series:
    """c_level / vp / director / manager / staff / unknown from job titles in Chinese or English."""
    return _classify(titles, _SENIORITY_RULES, "unknown")


def infer_department(titles: pd.Series) -> pd.Series:
    """executive / it / marketing / sales / finance / procurement / operations / hr / product / other."""
    return _classify(titles, _DEPARTMENT_RULES, "other")


def committee_role(seniority: pd.Series) -> pd.Series:
    """Decision makers (C-level, VP), influencers (directors, managers) and users (staff)."""
    return _map_unique(seniority, lambda s: _COMMITTEE_ROLE.get(s, "unknown"), "unknown")


# ---------------------------------------------------------------------------------------------------------------
# Settings: the ideal-customer profile and the ABM thresholds
# ---------------------------------------------------------------------------------------------------------------
ICP_DEFAULTS: dict[str, Any] = {
    "industries": [],
    "size_min": None,
    "size_max": None,
    "regions": [],
    # Departments a buying committee needs someone senior (director or above) from; empty: any department.
    "departments": [],
    "weights": {"industry": 40, "size": 30, "region": 20, "committee": 10},
}
ABM_DEFAULTS: dict[str, Any] = {
    # Engagement of one contact counts up to contact_cap; the account's sum is capped at account_cap, so one
    # very active person cannot make a whole company look hot.
    "contact_cap": 100,
    "account_cap": 300,
    # MQA: at least mqa_people different people engaged within mqa_days, and the account's engagement is at
    # least mqa_min_engagement.
    "mqa_people": 3,
    "mqa_days": 30,
    "mqa_min_engagement": 0,
}
ICP_CRITERIA = ("industry", "size", "region", "committee")
# What does not show a person engaging: mail sent to them, a file import, and opens (mail clients that load
# images on their own make opens unreliable).
MQA_IGNORED_KINDS: tuple[str, ...] = (*(str(k) for k in PASSIVE_KINDS), str(TouchpointKind.EMAIL_OPEN))


def get_icp(session: Session) -> dict[str, Any]:
    """The team's ideal-customer profile (setting ``icp``) over its defaults."""
    value = {**ICP_DEFAULTS, **get_setting(session, "icp")}
    value["weights"] = {**ICP_DEFAULTS["weights"], **(value.get("weights") or {})}
    return value


def get_abm(session: Session) -> dict[str, Any]:
    """Engagement caps and the MQA rule (setting ``abm``) over their defaults."""
    return {**ABM_DEFAULTS, **get_setting(session, "abm")}


def _clean_list(values: Any) -> list[str]:
    if isinstance(values, str):
        values = re.split(r"[,，、;；\n]", values)
    seen: dict[str, None] = {}
    for value in values or []:
        text = unicodedata.normalize("NFKC", str(value)).strip()
        if text:
            seen.setdefault(text, None)
    return list(seen)


def _optional_int(value: Any, field: str) -> int | None:
    """A whole number or nothing; ``field`` names the form field in the message (``accounts.field.<name>``)."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} must be a whole number.", key="accounts.not_a_number",
                              field=Term("accounts.field", field)) from None
    if number < 0:
        raise ValidationError(f"{field} cannot be negative.", key="accounts.negative",
                              field=Term("accounts.field", field))
    return number


def save_icp(
    *, session: Session, actor: Actor, icp: dict[str, Any], abm: dict[str, Any] | None = None, now: datetime,
) -> int:
    """Store the ideal-customer profile (and the MQA rule) and re-score every account; returns how many.

    Marketers define the ICP, as they define fit rules (permission ``rules``).
    """
    require(actor, "rules")
    clean: dict[str, Any] = {
        "industries": _clean_list(icp.get("industries")),
        "regions": _clean_list(icp.get("regions")),
        "departments": [d for d in _clean_list(icp.get("departments")) if d in DEPARTMENTS],
        "size_min": _optional_int(icp.get("size_min"), "size_min"),
        "size_max": _optional_int(icp.get("size_max"), "size_max"),
        "weights": {},
    }
    if clean["size_min"] is not None and clean["size_max"] is not None and clean["size_min"] > clean["size_max"]:
        raise ValidationError("The smallest company size is larger than the largest.", key="accounts.size_range",
                              size_min=clean["size_min"], size_max=clean["size_max"])
    weights = {**ICP_DEFAULTS["weights"], **(icp.get("weights") or {})}
    for name in ICP_CRITERIA:
        clean["weights"][name] = _optional_int(weights.get(name), name) or 0
    set_setting(session, "icp", clean, actor_id=actor.id or None)
    changes: dict[str, Any] = {"icp": clean}
    if abm is not None:
        clean_abm = {name: _optional_int(abm.get(name, default), name) or 0 for name, default in ABM_DEFAULTS.items()}
        if clean_abm["mqa_people"] < 1 or clean_abm["mqa_days"] < 1:
            raise ValidationError("The MQA rule needs at least one person and one day.", key="accounts.mqa_rule_invalid")
        set_setting(session, "abm", clean_abm, actor_id=actor.id or None)
        changes["abm"] = clean_abm
    session.flush()
    refreshed = refresh_accounts(session=session, now=now)
    audit.record(session, actor_id=actor.id or None, action="accounts.icp", entity="setting", entity_id="icp",
                 detail=changes, now=now)
    return refreshed


# ---------------------------------------------------------------------------------------------------------------
# Building accounts
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class AccountBuild:
    """What a rebuild or an incremental assignment did."""

    created: int = 0
    renamed: int = 0
    leads_assigned: int = 0
    removed: int = 0
    refreshed: int = 0
    mqa: int = 0


_LEAD_COLUMNS = ["id", "company", "company_key", "email", "account_id"]


def _load_leads(session: Session, lead_ids: list[int] | None) -> pd.DataFrame:
    statement = select(Lead.id, Lead.company, Lead.company_key, Lead.email, Lead.account_id).where(
        Lead.status == LeadStatus.VALID)
    if lead_ids is None:
        return _frame(session.connection().execute(statement), _LEAD_COLUMNS)
    # Many ids (an import's leads): one statement joined with a temporary table, not IN lists chunk by chunk.
    with among(session, Lead.id, lead_ids, name="account_leads") as wanted:
        return _frame(session.connection().execute(statement.where(wanted)), _LEAD_COLUMNS)


def _frame(result: Any, columns: list[str]) -> pd.DataFrame:
    """A result's rows as a frame, straight from the driver (plain text, numbers and ids need no processing)."""
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    return pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def _group_mode(keys: pd.Series, values: pd.Series) -> dict[Any, str]:
    """The most common non-blank text per key, vectorized (ties broken alphabetically: rebuilds are stable)."""
    frame = pd.DataFrame({"k": keys.to_numpy(), "v": values.to_numpy()}).dropna()
    if frame.empty:
        return {}
    frame["v"] = frame["v"].astype(str).str.strip()
    frame = frame[frame["v"] != ""]
    counts = frame.groupby(["k", "v"], sort=False).size().reset_index(name="n")
    counts = counts.sort_values(["k", "n", "v"], ascending=[True, False, True], kind="stable").drop_duplicates("k")
    return dict(zip(counts["k"].tolist(), counts["v"].tolist(), strict=True))


def _account_keys(leads: pd.DataFrame, accounts: pd.DataFrame) -> pd.Series:
    """The account key of every lead.

    A corporate domain is the strongest sign of an employer, so it decides first: the lead joins the company that
    owns its domain — an existing company account with that domain, else the company most of that domain's
    leads name (so "Jiachuan Software Co., Ltd." with @jiachuan.com joins 成都嘉川软件). Without a corporate
    domain the company key decides; with neither, there is no account. A domain nobody names becomes a key of
    its own (domains contain a dot, company keys never do, so the two cannot collide).
    """
    # Plain object arrays: looping over pandas' Arrow-backed text columns costs a conversion per value.
    company_keys = leads["company_key"].to_numpy(dtype=object, na_value=None)
    company_values = np.empty(len(company_keys), dtype=object)
    company_values[:] = [k if isinstance(k, str) and k else None for k in company_keys]
    domain_values = leads["domain"].to_numpy(dtype=object, na_value=None)
    company = pd.Series(company_values, index=leads.index, dtype=object)
    domain = pd.Series(domain_values, index=leads.index, dtype=object)
    named_accounts: dict[str, str] = {}
    domain_accounts: dict[str, str] = {}
    for name_key, account_domain in sorted(zip(accounts["name_key"], accounts["domain"], strict=True),
                                           key=lambda pair: str(pair[0])):
        if isinstance(account_domain, str) and account_domain:
            target = named_accounts if key_is_company(str(name_key)) else domain_accounts
            target.setdefault(account_domain, str(name_key))
    named_by_leads = _group_mode(domain, company)
    owners: dict[str, str] = {}
    for dom in {d for d in domain_values if isinstance(d, str)}:
        owners[dom] = named_accounts.get(dom) or named_by_leads.get(dom) or domain_accounts.get(dom) or dom
    keys = np.empty(len(domain_values), dtype=object)
    keys[:] = [owners[d] if isinstance(d, str) else c for d, c in zip(domain_values, company_values, strict=True)]
    return pd.Series(keys, index=leads.index, dtype=object)


def _assign(session: Session, leads: pd.DataFrame, now: datetime) -> tuple[AccountBuild, set[int]]:
    """Give each lead of ``leads`` the account of its key, creating the accounts that do not exist yet."""
    result, new_ids, _ = _place(session, leads, now)
    return result, _move(session, leads, new_ids, result)


def _move(session: Session, leads: pd.DataFrame, new_ids: list[int | None], result: AccountBuild,
          stored: np.ndarray | None = None) -> set[int]:
    """Write the leads' new account where it changed (only the ``stored`` ones, when given); returns the accounts
    that gained or lost a lead."""
    old_ids = [_int_or_none(v) for v in leads["account_id"]]
    flags = np.ones(len(leads), dtype=bool) if stored is None else stored
    moved = [(int(lead_id), new) for lead_id, new, old, flag in zip(leads["id"], new_ids, old_ids, flags, strict=True)
             if new != old and flag]
    if moved:
        # One UPDATE … FROM a temporary table of (lead, account): an import moves tens of thousands of leads.
        update_from(session, _LEAD_TABLE, {"id": [m[0] for m in moved], "account_id": [m[1] for m in moved]})
    result.leads_assigned = sum(1 for new, old in zip(new_ids, old_ids, strict=True) if new != old)
    return {a for a in new_ids if a is not None} | {a for a in old_ids if a is not None}


def _place(session: Session, leads: pd.DataFrame, now: datetime) -> tuple[AccountBuild, list[int | None], set[int]]:
    """The account of each lead of ``leads`` by its key (None: no key), creating the accounts that do not exist
    yet; returns what was done, the account per lead and the ids of the accounts created."""
    result = AccountBuild()
    if leads.empty:
        return result, [], set()
    leads = leads.copy()
    leads["domain"] = corporate_domain(leads["email"])
    accounts = pd.DataFrame(
        [tuple(r) for r in session.execute(select(Account.id, Account.name_key, Account.domain)).all()],
        columns=["id", "name_key", "domain"],
    )
    leads["key"] = _account_keys(leads, accounts)
    keyed = leads[leads["key"].notna()]
    by_key = {str(k): int(i) for k, i in zip(accounts["name_key"], accounts["id"], strict=True)}
    key_of_id = {i: k for k, i in by_key.items()}
    by_domain: dict[str, int] = {}
    for row in accounts.dropna(subset=["domain"]).sort_values("id").itertuples(index=False):
        by_domain.setdefault(row.domain, int(row.id))
    names = _group_mode(keyed["key"], keyed["company"])
    domains = _group_mode(keyed["key"], keyed["domain"])
    wanted = set(keyed["key"])

    new_rows: list[dict[str, Any]] = []
    renames: list[dict[str, Any]] = []
    claimed: set[int] = set()
    key_to_id: dict[str, int] = {}
    for key in sorted(wanted):
        if key in by_key:
            key_to_id[key] = by_key[key]
            claimed.add(by_key[key])
            continue
        dominant = domains.get(key)
        reuse = by_domain.get(dominant) if dominant else None
        # A domain-only account whose people now give a company name becomes that company (keeping its owner and
        # lists) instead of leaving an orphan behind.
        if reuse is not None and reuse not in claimed and key_is_company(key):
            reuse_key = key_of_id.get(reuse, "")
            if not key_is_company(reuse_key) and reuse_key not in wanted:
                key_to_id[key] = reuse
                claimed.add(reuse)
                renames.append({"id": reuse, "name_key": key[:256], "name": (names.get(key) or key)[:256]})
                continue
        new_rows.append({"name": (names.get(key) or key)[:256], "name_key": key[:256], "domain": dominant,
                         "target_lists": [], "created_at": now})
    if renames:
        session.execute(update(Account), renames)
        result.renamed = len(renames)
    created: set[int] = set()
    if new_rows:
        for start in range(0, len(new_rows), _CHUNK):
            inserted = session.execute(insert(Account).returning(Account.id, Account.name_key),
                                       new_rows[start:start + _CHUNK]).all()
            key_to_id.update({name_key: int(account_id) for account_id, name_key in inserted})
            created.update(int(account_id) for account_id, _ in inserted)
        result.created = len(new_rows)
    return result, [key_to_id.get(k) if isinstance(k, str) else None for k in leads["key"]], created


def key_is_company(key: str) -> bool:
    return "." not in key


def rebuild_accounts(*, session: Session, now: datetime, actor: Actor | None = None) -> AccountBuild:
    """Re-derive every account from the valid leads, set-based, then recompute every account's figures.

    Accounts keep their id, owner and target lists when their key still exists. An account left without
    contacts is removed unless someone gave it an owner, put it on a target list or it has opportunities.
    Leads that are invalid or merged leave their account. With ``actor`` (a person clicking "rebuild") the
    permission is checked and the rebuild is audited.
    """
    if actor is not None:
        require(actor, "accounts")
    leads = _load_leads(session, None)
    result, _ = _assign(session, leads, now)
    # Leads that are not valid any more (invalid, merged into another) leave their account.
    session.execute(update(Lead).where(Lead.status != LeadStatus.VALID, Lead.account_id.is_not(None))
                    .values(account_id=None))
    has_leads = exists().where(Lead.account_id == Account.id)
    has_opportunities = exists().where(Opportunity.account_id == Account.id)
    removed = session.execute(
        delete(Account).where(~has_leads, ~has_opportunities, Account.owner_id.is_(None),
                              Account.is_target.is_(False), _no_target_lists(session))
    )
    result.removed = int(removed.rowcount or 0)
    result.refreshed, result.mqa = _refresh(session, None, now)
    audit.record(session, actor_id=(actor.id or None) if actor else None, action="accounts.rebuild",
                 entity="account", detail=result.__dict__, now=now)
    return result


def assign_accounts(*, session: Session, lead_ids: Iterable[int], now: datetime, also_refresh: Iterable[int] = (),
                    prune: Iterable[int] = ()) -> AccountBuild:
    """Place new or changed leads in their accounts (creating accounts as needed) and refresh those accounts.

    The importer and the lead form call this after writing leads; it touches only those leads' accounts.
    ``also_refresh``: further accounts whose figures are due (those a batch's leads were placed in before they
    were written, :func:`place_leads`). ``prune``: accounts to remove if no valid lead is left in them and nobody
    owns, lists or sells to them (one created for a lead of the batch that was then merged away).
    """
    ids = sorted({int(i) for i in lead_ids})
    result, affected = _assign(session, _load_leads(session, ids), now) if ids else (AccountBuild(), set())
    doomed = sorted({int(a) for a in prune})
    if doomed:
        has_leads = exists().where(Lead.account_id == Account.id, Lead.status == LeadStatus.VALID)
        has_opportunities = exists().where(Opportunity.account_id == Account.id)
        gone = sorted(session.scalars(select(Account.id).where(
            Account.id.in_(doomed), ~has_leads, ~has_opportunities, Account.owner_id.is_(None),
            Account.is_target.is_(False), _no_target_lists(session))))
        if gone:
            # The merged-away leads that pointed at them point nowhere now.
            session.execute(update(Lead).where(Lead.account_id.in_(gone)).values(account_id=None))
            session.execute(delete(Account).where(Account.id.in_(gone)))
        result.removed = len(gone)
        affected -= set(gone)
        also_refresh = set(also_refresh) - set(gone)
    affected |= {int(a) for a in also_refresh}
    if affected:
        result.refreshed, result.mqa = _refresh(session, sorted(affected), now)
    return result


@dataclass
class Placement:
    """The accounts of a batch of leads, chosen before the leads are written (:func:`place_leads`)."""

    account_of: dict[int, int | None]  # lead id → account id (None: the lead has no account key)
    affected: set[int]  # accounts whose figures are due once the batch is written
    created: set[int]  # accounts created for the batch
    build: AccountBuild


def place_leads(*, session: Session, leads: pd.DataFrame, stored: Iterable[bool], now: datetime) -> Placement:
    """Accounts for a batch of valid leads about to be written, chosen exactly as ``assign_accounts`` would choose
    them once written, creating the accounts they need.

    ``leads`` has the columns id, company, company_key, email and account_id (the stored account; None for a lead
    not written yet); ``stored`` says which leads are in the database already. Those whose account changes are
    moved now; the writer puts ``account_of`` into the INSERT of the others, instead of rewriting every new row
    afterwards. The figures of ``affected`` are refreshed after the write (``assign_accounts(also_refresh=…)``).
    """
    frame = leads[_LEAD_COLUMNS].reset_index(drop=True)
    build, account_ids, created = _place(session, frame, now)
    affected = _move(session, frame, account_ids, build, stored=np.fromiter(stored, dtype=bool, count=len(frame)))
    return Placement(account_of=dict(zip((int(i) for i in frame["id"]), account_ids, strict=True)),
                     affected=affected, created=created, build=build)


def _no_target_lists(session: Session) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return func.jsonb_array_length(Account.target_lists) == 0
    return func.json_array_length(Account.target_lists) == 0


# ---------------------------------------------------------------------------------------------------------------
# Account figures
# ---------------------------------------------------------------------------------------------------------------
# Account stage: the most advanced contact. An open opportunity is further than a lost one; disqualified least.
STAGE_ORDER: tuple[str, ...] = (Stage.DISQUALIFIED, Stage.RECYCLED, Stage.NEW, Stage.MQL, Stage.SAL, Stage.SQL,
                                Stage.LOST, Stage.OPPORTUNITY, Stage.WON)
STAGE_RANK = {str(stage): rank for rank, stage in enumerate(STAGE_ORDER)}


def _stage_rank_expression() -> Any:
    return case(*[(Lead.stage == stage, rank) for stage, rank in STAGE_RANK.items()], else_=0)


def refresh_accounts(*, session: Session, now: datetime, account_ids: Iterable[int] | None = None) -> int:
    """Recompute engagement, fit, customer flag, attributes and the MQA signal of accounts (all by default).

    The scheduler's heartbeat calls this so MQA follows new touchpoints; returns how many accounts were written.
    """
    ids = None if account_ids is None else sorted({int(i) for i in account_ids})
    refreshed, _ = _refresh(session, ids, now)
    return refreshed


_CONTACT_COLUMNS = ["account_id", "lead_id", "industry", "company_size", "province", "city", "title", "stage",
                    "engagement_score", "is_customer"]


_FIGURES = ("industry", "company_size", "province", "city", "engagement_score", "fit_score", "is_customer", "mqa_at")
_ACCOUNT_TABLE = Account.__table__  # type: ignore[attr-defined]
_WRITE_FIGURES = (
    update(_ACCOUNT_TABLE)
    .where(_ACCOUNT_TABLE.c.id == bindparam("account_id"))
    .values({name: bindparam(f"new_{name}") for name in _FIGURES})
)


def _figure_values(row: Any) -> dict[str, Any]:
    return {
        "industry": _text_or_none(row.industry), "company_size": _int_or_none(row.company_size),
        "province": _text_or_none(row.province), "city": _text_or_none(row.city),
        "engagement_score": round(float(row.engagement_score or 0), 1), "fit_score": round(float(row.fit_score or 0), 1),
        "is_customer": bool(row.is_customer),
        "mqa_at": None if row.mqa_at is None or pd.isna(row.mqa_at) else pd.Timestamp(row.mqa_at).to_pydatetime(),
    }


def _changed(figures: pd.DataFrame, accounts: pd.DataFrame) -> pd.Series:
    """Which rows of ``figures`` differ from the stored ``accounts`` (same order, same ids)."""
    differs = pd.Series(False, index=figures.index)
    for name in _FIGURES:
        new, old = figures[name].reset_index(drop=True), accounts[name].reset_index(drop=True)
        if name in ("engagement_score", "fit_score"):
            new = pd.to_numeric(new, errors="coerce").fillna(0).round(1)
            old = pd.to_numeric(old, errors="coerce").fillna(0).round(1)
        elif name == "mqa_at":
            new, old = pd.to_datetime(new, utc=True), pd.to_datetime(old, utc=True)
        elif name in ("company_size", "is_customer"):
            new, old = pd.to_numeric(new, errors="coerce"), pd.to_numeric(old, errors="coerce")
        else:
            new = new.astype(object).where(new.notna() & (new.astype(str) != ""), None)
            old = old.astype(object).where(old.notna() & (old.astype(str) != ""), None)
        same = (new == old) | (new.isna() & old.isna())
        differs |= ~same.fillna(False).to_numpy()
    return differs


def _refresh(session: Session, account_ids: list[int] | None, now: datetime) -> tuple[int, int]:
    """Recompute the figures of accounts (all with ``None``); write only the accounts whose figures changed.
    Returns (accounts written, accounts that are MQA)."""
    session.flush()  # what the caller changed is part of what is counted (and safe from the expiry below)
    icp, abm = get_icp(session), get_abm(session)
    accounts_statement = select(Account.id, Account.industry, Account.company_size, Account.province, Account.city,
                                Account.mqa_at, Account.is_customer, Account.fit_score, Account.engagement_score)
    contacts_statement = select(Lead.account_id, Lead.id, Lead.industry, Lead.company_size, Lead.province, Lead.city,
                                Lead.title, Lead.stage, Lead.engagement_score, Lead.is_customer).where(
        Lead.status == LeadStatus.VALID, Lead.account_id.is_not(None))
    window_start = now - timedelta(days=int(abm["mqa_days"]))
    # Each contact's first touch in the window, per lead (the contacts give the account): the touchpoints are
    # read by the lead-and-time index, with no join and no grouping by account.
    contact_ids = select(Lead.id).where(Lead.status == LeadStatus.VALID, Lead.account_id.is_not(None))
    touches_statement = (
        select(Touchpoint.lead_id, func.min(Touchpoint.occurred_at))
        .where(Touchpoint.occurred_at >= window_start, Touchpoint.occurred_at <= now,
               Touchpoint.kind.not_in(MQA_IGNORED_KINDS))
        .group_by(Touchpoint.lead_id)
    )
    # Plain rows through the connection: these are figures, not objects to track.
    connection = session.connection()
    with among(session, Account.id, account_ids or [], name="accounts") as wanted_account, \
            among(session, Lead.account_id, account_ids or [], name="account_leads") as wanted_lead:
        if account_ids is not None:
            accounts_statement = accounts_statement.where(wanted_account)
            contacts_statement = contacts_statement.where(wanted_lead)
            contact_ids = contact_ids.where(wanted_lead)
        account_rows = connection.execute(accounts_statement).all()
        # Text, numbers and ids straight from the driver; the flag is made a bool below.
        contacts = _frame(connection.execute(contacts_statement), _CONTACT_COLUMNS)
        touches = _frame(connection.execute(touches_statement.where(Touchpoint.lead_id.in_(contact_ids))),
                         ["lead_id", "first_at"])
    touches.insert(0, "account_id", touches["lead_id"].map(
        pd.Series(contacts["account_id"].to_numpy(), index=contacts["lead_id"].to_numpy())))
    contacts["is_customer"] = contacts["is_customer"].astype(bool)
    if len(touches) and isinstance(touches["first_at"].iloc[0], str):
        # SQLite hands back its text form ("2026-11-23 02:00:00.000000"): parsed in one pass, not row by row.
        touches["first_at"] = pd.to_datetime(touches["first_at"], format="ISO8601")
    accounts = pd.DataFrame([tuple(r) for r in account_rows],
                            columns=["id", "industry", "company_size", "province", "city", "mqa_at", "is_customer",
                                     "fit_score", "engagement_score"])
    if accounts.empty:
        return 0, 0
    figures = account_figures(accounts, contacts, touches, icp=icp, abm=abm)
    changed = figures[_changed(figures, accounts)]
    updates = [{"account_id": int(row.id), **{f"new_{k}": v for k, v in _figure_values(row).items()}}
               for row in changed.itertuples(index=False)]
    for start in range(0, len(updates), _CHUNK):
        connection.execute(_WRITE_FIGURES, updates[start:start + _CHUNK])
    if updates:
        # Account objects already loaded in this session must not hide the new figures.
        session.expire_all()
    return len(updates), int(figures["mqa_at"].notna().sum())


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def account_figures(
    accounts: pd.DataFrame, contacts: pd.DataFrame, touches: pd.DataFrame, *, icp: dict[str, Any],
    abm: dict[str, Any],
) -> pd.DataFrame:
    """Pure computation of account figures from frames (the unit tests call it directly).

    - attributes (industry, size, province, city): the account's own value, else the most common among contacts
      (size: the largest reported);
    - engagement: each contact's engagement capped at ``contact_cap``, summed, capped at ``account_cap``;
    - customer: any contact won or flagged customer;
    - fit: the ICP score 0–100 (``icp_fit``);
    - MQA: when at least ``mqa_people`` people engaged in the window, the time the last of them first did so
      (an account that already was MQA keeps its original time); ``NaT`` otherwise.
    """
    out = accounts.copy()
    contacts = contacts.copy()
    if not contacts.empty:
        grouped = contacts.groupby("account_id")
        fill = pd.DataFrame({"c_size": grouped["company_size"].max()})
        for column in ("industry", "province", "city"):
            fill[f"c_{column}"] = fill.index.map(_group_mode(contacts["account_id"], contacts[column]))
        capped = contacts["engagement_score"].fillna(0).clip(lower=0, upper=float(abm["contact_cap"]))
        fill["engagement"] = capped.groupby(contacts["account_id"]).sum().clip(upper=float(abm["account_cap"]))
        fill["customer"] = (contacts["is_customer"].fillna(False).astype(bool) | (contacts["stage"] == Stage.WON)) \
            .groupby(contacts["account_id"]).any()
        contacts["seniority"] = infer_seniority(contacts["title"])
        contacts["department"] = infer_department(contacts["title"])
        out = out.join(fill, on="id")
    else:
        for column in ("c_industry", "c_province", "c_city", "c_size", "engagement", "customer"):
            out[column] = None
    out["industry"] = out["industry"].where(out["industry"].notna(), out["c_industry"])
    out["province"] = out["province"].where(out["province"].notna(), out["c_province"])
    out["city"] = out["city"].where(out["city"].notna(), out["c_city"])
    out["company_size"] = [_int_or_none(a) if _int_or_none(a) is not None else _int_or_none(b)
                           for a, b in zip(out["company_size"], out["c_size"], strict=True)]
    out["engagement_score"] = pd.to_numeric(out["engagement"], errors="coerce").fillna(0.0).round(1)
    out["is_customer"] = out["is_customer"].fillna(False).astype(bool) | \
        out["customer"].astype("boolean").fillna(False).astype(bool)
    fits = icp_fit(out, contacts, icp)
    out["fit_score"] = out["id"].map(fits["fit_score"]).fillna(0.0)
    out["mqa_at"] = _mqa(out, touches, abm)
    return out[["id", "industry", "company_size", "province", "city", "engagement_score", "fit_score",
                "is_customer", "mqa_at"]]


def _mqa(accounts: pd.DataFrame, touches: pd.DataFrame, abm: dict[str, Any]) -> pd.Series:
    people = int(abm["mqa_people"])
    previous = pd.to_datetime(accounts["mqa_at"], utc=True)
    result = pd.Series(pd.NaT, index=accounts.index, dtype="datetime64[ns, UTC]")
    if touches.empty:
        return result
    firsts = touches.assign(first_at=pd.to_datetime(touches["first_at"], utc=True)).sort_values("first_at")
    grouped = firsts.groupby("account_id")
    nth = grouped["first_at"].nth(people - 1)
    nth_by_account = pd.Series(nth.to_numpy(), index=firsts.loc[nth.index, "account_id"].to_numpy())
    engaged_enough = accounts["engagement_score"] >= float(abm["mqa_min_engagement"])
    qualifying = accounts["id"].map(nth_by_account)
    qualifying = pd.to_datetime(qualifying, utc=True).where(engaged_enough)
    return previous.where(previous.notna() & qualifying.notna(), qualifying)


def icp_fit(accounts: pd.DataFrame, contacts: pd.DataFrame, icp: dict[str, Any]) -> pd.DataFrame:
    """Each account's fit against the ICP, 0–100, with one boolean column per configured criterion.

    A criterion the team left empty does not count (neither for nor against); the score is the matched weight
    over the weight of the configured criteria. Having a senior contact (director or above, in the ICP's
    departments when it names some) counts as soon as the team defined anything; with no ICP every fit is 0. Industries and regions match case-insensitively and as
    substrings ("制造" matches "汽车制造"); regions match the province or the city.
    """
    weights = {**ICP_DEFAULTS["weights"], **(icp.get("weights") or {})}
    frame = pd.DataFrame({"id": accounts["id"]}).set_index("id")
    configured: dict[str, pd.Series] = {}
    industries = [i.lower() for i in _clean_list(icp.get("industries"))]
    if industries:
        text = accounts["industry"].map(lambda v: str(v).lower() if isinstance(v, str) else "")
        matches = {v: bool(v) and any(i in v or v in i for i in industries) for v in set(text)}
        configured["industry"] = text.map(matches).astype(bool)
    size_min, size_max = icp.get("size_min"), icp.get("size_max")
    if size_min is not None or size_max is not None:
        size = pd.to_numeric(accounts["company_size"], errors="coerce")
        ok = size.notna()
        if size_min is not None:
            ok &= size >= float(size_min)
        if size_max is not None:
            ok &= size <= float(size_max)
        configured["size"] = ok.fillna(False)
    regions = [r.lower() for r in _clean_list(icp.get("regions"))]
    if regions:
        def region_ok(province: Any, city: Any) -> bool:
            places = [str(p).lower() for p in (province, city) if isinstance(p, str) and p]
            return any(r in p or p in r for r in regions for p in places)

        pairs = list(zip(accounts["province"], accounts["city"], strict=True))
        known = {pair: region_ok(*pair) for pair in set(pairs)}
        configured["region"] = pd.Series([known[pair] for pair in pairs], index=accounts.index)
    departments = _clean_list(icp.get("departments"))
    if not configured and not departments:
        # No profile defined yet: no account fits or misfits it.
        frame["fit_score"] = 0.0
        return frame
    if weights.get("committee") and not contacts.empty and "seniority" in contacts:
        senior = contacts["seniority"].isin(["c_level", "vp", "director"])
        if departments:
            senior &= contacts["department"].isin(departments + ["executive"])
        covered = set(contacts.loc[senior, "account_id"].dropna().astype(int))
        configured["committee"] = accounts["id"].map(lambda i: int(i) in covered)
    elif weights.get("committee") and departments:
        configured["committee"] = pd.Series(False, index=accounts.index)
    total = sum(float(weights.get(name) or 0) for name in configured)
    score = pd.Series(0.0, index=accounts.index)
    for name, matched in configured.items():
        score += matched.astype(float) * float(weights.get(name) or 0)
        frame[name] = matched.to_numpy()
    frame["fit_score"] = (score / total * 100).round(1).to_numpy() if total > 0 else 0.0
    return frame


# ---------------------------------------------------------------------------------------------------------------
# Reading accounts
# ---------------------------------------------------------------------------------------------------------------
ACCOUNT_COLUMNS = ["id", "name", "domain", "industry", "company_size", "province", "city", "contacts", "stage",
                   "fit_score", "engagement_score", "mqa_at", "is_target", "target_lists", "owner",
                   "is_customer", "last_activity_at"]


@dataclass(frozen=True)
class AccountFilters:
    text: str = ""
    target_list: str | None = None
    targets_only: bool = False
    mqa_only: bool = False
    stages: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()
    owner_id: int | None = None


def _contact_summary(accounts: Any = None) -> Any:
    """Contacts, most advanced stage and last activity per account (of the ``accounts`` id query only, if given)."""
    statement = (
        select(Lead.account_id.label("account_id"), func.count().label("contacts"),
               func.max(_stage_rank_expression()).label("stage_rank"),
               func.max(Lead.last_activity_at).label("last_activity_at"))
        .where(Lead.status == LeadStatus.VALID, Lead.account_id.is_not(None))
    )
    if accounts is not None:
        statement = statement.where(Lead.account_id.in_(accounts))
    return statement.group_by(Lead.account_id).subquery("contacts")


def _in_target_list(session: Session, name: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return Account.target_lists.op("@>")(func.jsonb_build_array(cast(literal(name), String)))
    member = func.json_each(Account.target_lists).table_valued("value").alias("member")
    return exists(select(1).select_from(member).where(member.c.value == name))


def list_accounts(
    *, session: Session, actor: Actor, filters: AccountFilters | None = None, limit: int = 100, offset: int = 0,
) -> tuple[pd.DataFrame, int]:
    """One page of accounts matching ``filters`` (filtered, counted and paged in SQL) and the total count.

    MQA accounts first, then by engagement. ``stage`` is the most advanced contact's stage.
    """
    require(actor, "accounts")
    filters = filters or AccountFilters()
    conditions: list[ColumnElement[bool]] = []
    if filters.text.strip():
        text = unicodedata.normalize("NFKC", filters.text).strip().lower()
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"
        conditions.append(or_(func.lower(Account.name).like(pattern, escape="\\"),
                              Account.name_key.like(pattern, escape="\\"),
                              func.coalesce(Account.domain, "").like(pattern, escape="\\")))
    if filters.target_list:
        conditions.append(_in_target_list(session, filters.target_list))
    if filters.targets_only:
        conditions.append(Account.is_target.is_(True))
    if filters.mqa_only:
        conditions.append(Account.mqa_at.is_not(None))
    if filters.industries:
        conditions.append(Account.industry.in_(list(filters.industries)))
    if filters.owner_id is not None:
        conditions.append(Account.owner_id == filters.owner_id)
    order = (Account.mqa_at.is_(None), Account.engagement_score.desc(), Account.fit_score.desc(), Account.id)
    if filters.stages:
        # The stage filter reads every account's contacts: summarize them all, then filter, count and page.
        summary = _contact_summary()
        conditions.append(summary.c.stage_rank.in_([STAGE_RANK[s] for s in filters.stages if s in STAGE_RANK]))
        base = select(Account.id).join(summary, summary.c.account_id == Account.id, isouter=True).where(*conditions)
        total = int(session.scalar(select(func.count()).select_from(base.subquery())) or 0)
        shown, cut = conditions, (limit, offset)
    else:
        # Otherwise the accounts are counted and paged on their own columns, and only the contacts of the page
        # are summarized: grouping every lead of the base to show a hundred accounts cost most of the page.
        total = int(session.scalar(select(func.count(Account.id)).where(*conditions)) or 0)
        page = select(Account.id).where(*conditions).order_by(*order).limit(limit).offset(offset)
        summary = _contact_summary(page)
        shown, cut = [Account.id.in_(page)], None  # the page is already cut
    stage_of_rank = case(*[(summary.c.stage_rank == rank, stage) for stage, rank in STAGE_RANK.items()],
                         else_=None)
    statement = (
        select(Account.id, Account.name, Account.domain, Account.industry, Account.company_size, Account.province,
               Account.city, func.coalesce(summary.c.contacts, 0), stage_of_rank, Account.fit_score,
               Account.engagement_score, Account.mqa_at, Account.is_target, Account.target_lists,
               User.display_name, Account.is_customer, summary.c.last_activity_at)
        .join(summary, summary.c.account_id == Account.id, isouter=True)
        .join(User, User.id == Account.owner_id, isouter=True)
        .where(*shown)
        .order_by(*order)
    )
    if cut is not None:
        statement = statement.limit(cut[0]).offset(cut[1])
    rows = session.execute(statement).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=ACCOUNT_COLUMNS)
    frame["mqa_at"] = pd.to_datetime(frame["mqa_at"], utc=True)
    frame["last_activity_at"] = pd.to_datetime(frame["last_activity_at"], utc=True)
    return frame, total


def account_filter_options(*, session: Session, actor: Actor) -> dict[str, list[str]]:
    """The values the filters offer: target lists and industries in use."""
    require(actor, "accounts")
    lists: dict[str, None] = {}
    for value in session.scalars(select(Account.target_lists).where(Account.is_target.is_(True))):
        for name in value or []:
            lists.setdefault(str(name), None)
    industries = [i for i in session.scalars(
        select(Account.industry).where(Account.industry.is_not(None)).distinct().order_by(Account.industry)) if i]
    return {"target_lists": sorted(lists), "industries": industries}


def _account_stage(session: Session, account_id: int) -> str | None:
    rank = session.scalar(select(func.max(_stage_rank_expression())).where(
        Lead.account_id == account_id, Lead.status == LeadStatus.VALID))
    if rank is None:
        return None
    return next(stage for stage, r in STAGE_RANK.items() if r == rank)


def account_summary(*, session: Session, account_id: int) -> dict[str, Any] | None:
    """The account fields a lead profile shows (callers have checked they may see the lead)."""
    account = session.get(Account, account_id)
    if account is None:
        return None
    info = account.model_dump()
    info["stage"] = _account_stage(session, account_id)
    info["owner"] = session.scalar(select(User.display_name).where(User.id == account.owner_id))
    info["contacts"] = int(session.scalar(select(func.count()).where(
        Lead.account_id == account_id, Lead.status == LeadStatus.VALID)) or 0)
    return info


def get_account(*, session: Session, actor: Actor, account_id: int) -> dict[str, Any]:
    """One account with its stage, owner, contact count and the fit explanation against the ICP."""
    require(actor, "accounts")
    info = account_summary(session=session, account_id=account_id)
    if info is None:
        raise NotFound(f"Not found: account {account_id}.", what=f"#{account_id}")
    info["fit_explanation"] = fit_explanation(session=session, actor=actor, account_id=account_id)
    return info


COMMITTEE_COLUMNS = ["id", "name", "title", "seniority", "department", "role", "stage", "engagement_score",
                     "fit_score", "grade", "owner", "email", "phone", "last_activity_at"]


def buying_committee(*, session: Session, actor: Actor, account_id: int) -> pd.DataFrame:
    """The account's contacts with seniority, department and committee role inferred from their titles.

    Decision makers first, then by seniority and engagement.
    """
    require(actor, "accounts")
    rows = session.execute(
        select(Lead.id, Lead.name, Lead.title, Lead.stage, Lead.engagement_score, Lead.fit_score, Lead.grade,
               User.display_name, Lead.email, Lead.phone, Lead.last_activity_at)
        .join(User, User.id == Lead.owner_id, isouter=True)
        .where(Lead.account_id == account_id, Lead.status == LeadStatus.VALID, lead_scope(actor))
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows],
                         columns=["id", "name", "title", "stage", "engagement_score", "fit_score", "grade", "owner",
                                  "email", "phone", "last_activity_at"])
    frame["seniority"] = infer_seniority(frame["title"])
    frame["department"] = infer_department(frame["title"])
    frame["role"] = committee_role(frame["seniority"])
    frame["_rank"] = frame["seniority"].map(SENIORITY_RANK)
    frame = frame.sort_values(["_rank", "engagement_score"], ascending=[False, False]).reset_index(drop=True)
    frame["last_activity_at"] = pd.to_datetime(frame["last_activity_at"], utc=True)
    return frame[COMMITTEE_COLUMNS]


def fit_explanation(*, session: Session, actor: Actor, account_id: int) -> pd.DataFrame:
    """Each ICP criterion the team configured: the account's value, whether it matches and its weight."""
    require(actor, "accounts")
    icp = get_icp(session)
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"Not found: account {account_id}.", what=f"#{account_id}")
    accounts = pd.DataFrame([{"id": account.id, "industry": account.industry, "company_size": account.company_size,
                              "province": account.province, "city": account.city}])
    titles = pd.DataFrame([tuple(r) for r in session.execute(
        select(Lead.account_id, Lead.title).where(Lead.account_id == account_id, Lead.status == LeadStatus.VALID)
    ).all()], columns=["account_id", "title"])
    titles["seniority"] = infer_seniority(titles["title"])
    titles["department"] = infer_department(titles["title"])
    fit = icp_fit(accounts, titles, icp).iloc[0]
    senior = titles[titles["seniority"].isin(["c_level", "vp", "director"])]
    values = {
        "industry": account.industry or "",
        "size": "" if account.company_size is None else str(account.company_size),
        "region": " ".join(p for p in (account.province, account.city) if p),
        "committee": "、".join(sorted(set(senior["title"].dropna().astype(str))))[:200],
    }
    wanted = {
        "industry": "、".join(icp["industries"]),
        "size": f"{icp['size_min'] if icp['size_min'] is not None else ''}–"
                f"{icp['size_max'] if icp['size_max'] is not None else ''}",
        "region": "、".join(icp["regions"]),
        "committee": "、".join(icp["departments"]),
    }
    rows = [{"criterion": name, "wanted": wanted[name], "account_value": values[name], "matched": bool(fit[name]),
             "weight": float(icp["weights"].get(name) or 0)}
            for name in ICP_CRITERIA if name in fit.index]
    return pd.DataFrame(rows, columns=["criterion", "wanted", "account_value", "matched", "weight"])


def account_timeline(
    *, session: Session, actor: Actor, account_id: int, kinds: Iterable[str] | None = None,
    since: datetime | None = None, until: datetime | None = None, limit: int = TIMELINE_PAGE, offset: int = 0,
) -> tuple[pd.DataFrame, int]:
    """One page of the merged timeline of the account's contacts (with a ``contact`` column) and its size."""
    require(actor, "accounts")
    contacts = dict(session.execute(
        select(Lead.id, Lead.name).where(Lead.account_id == account_id, Lead.status == LeadStatus.VALID,
                                          lead_scope(actor))
    ).all())
    frame, total = leads_timeline(session=session, lead_ids=sorted(contacts), kinds=kinds, since=since, until=until,
                                  limit=limit, offset=offset)
    frame.insert(2, "contact", frame["lead_id"].map(lambda i: contacts.get(int(i)) if pd.notna(i) else None))
    return frame, total


# ---------------------------------------------------------------------------------------------------------------
# Changing accounts: target lists and owners
# ---------------------------------------------------------------------------------------------------------------
def _target_list_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name or "").strip()
    if not text:
        raise ValidationError("Give the target list a name.", key="accounts.list_name_missing")
    if len(text) > 64:
        raise ValidationError("A target list name has at most 64 characters.", key="accounts.list_name_long")
    return text


def _accounts_for_update(session: Session, account_ids: Iterable[int]) -> list[Account]:
    ids = sorted({int(i) for i in account_ids})
    if not ids:
        raise ValidationError("Select at least one account.", key="accounts.none_selected")
    found = list(session.scalars(select(Account).where(Account.id.in_(ids))))
    missing = sorted(set(ids) - {a.id for a in found})
    if missing:
        raise NotFound(f"Not found: account {missing[0]}.", what=f"#{missing[0]}")
    return found


def update_target_lists(
    *, session: Session, actor: Actor, account_ids: Iterable[int], now: datetime, add: str | None = None,
    remove: str | None = None,
) -> int:
    """Put accounts on a named target list and/or take them off one; ``is_target`` follows the lists."""
    require(actor, "accounts")
    add_name = _target_list_name(add) if add else None
    remove_name = _target_list_name(remove) if remove else None
    if not add_name and not remove_name:
        raise ValidationError("Give the target list a name.", key="accounts.list_name_missing")
    changed = 0
    for account in _accounts_for_update(session, account_ids):
        lists = [n for n in (account.target_lists or []) if n != remove_name]
        if add_name and add_name not in lists:
            lists.append(add_name)
        if lists != list(account.target_lists or []) or account.is_target != bool(lists):
            account.target_lists = lists
            account.is_target = bool(lists)
            session.add(account)
            changed += 1
    audit.record(session, actor_id=actor.id or None, action="accounts.target_lists", entity="account",
                 detail={"accounts": sorted(int(i) for i in account_ids), "add": add_name, "remove": remove_name},
                 now=now)
    return changed


def owner_candidates(*, session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Active sales reps and managers who can own an account."""
    require(actor, "accounts")
    rows = session.execute(
        select(User.id, User.display_name, User.role).where(User.active.is_(True),
                                                            User.role.in_([Role.SALES, Role.MANAGER]))
        .order_by(User.role.desc(), User.display_name)
    ).all()
    return [{"id": r.id, "name": r.display_name, "role": r.role} for r in rows]


def set_account_owner(
    *, session: Session, actor: Actor, account_ids: Iterable[int], owner_id: int | None, now: datetime,
) -> int:
    """Give accounts one owner (or none). New MQLs of these accounts are routed to this owner.

    Owners are set by whoever manages routing (managers, admin); the owner must be an active rep or manager.
    """
    require(actor, "manage_routing")
    if owner_id is not None:
        owner = session.get(User, owner_id)
        if owner is None or not owner.active or owner.role not in (Role.SALES, Role.MANAGER):
            raise ValidationError("The owner must be an active sales rep or manager.", key="accounts.owner_invalid")
    accounts = _accounts_for_update(session, account_ids)
    for account in accounts:
        account.owner_id = owner_id
        session.add(account)
    audit.record(session, actor_id=actor.id or None, action="accounts.owner", entity="account",
                 detail={"accounts": sorted(a.id for a in accounts), "owner_id": owner_id}, now=now)
    return len(accounts)
