"""Lead search, the 360° profile, the timeline and journey (path) analysis.

Nothing here keeps a second copy of what happened: the timeline is one ``UNION ALL`` over the tables that
already record each kind of event (touchpoints, the score ledger, stage changes, workflow enrollments and step
runs, the outbox, assignments with the sales feedback, merges). Path analysis reads one statement per view into
a DataFrame and does the rest in pandas, never a query per lead.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import aliased
from sqlmodel import Session

from core.auth import Actor, lead_scope, require
from core.display_names import Labels, labels, show
from core.errors import NotFound
from core.i18n import has_key, t
from core.lifecycle import MAIN_TRACK
from db.models import (
    Assignment,
    Campaign,
    Channel,
    Enrollment,
    Group,
    GroupMember,
    Lead,
    LeadStatus,
    LeadTag,
    MergeRecord,
    Message,
    Rule,
    ScoreEvent,
    Stage,
    StageChange,
    StepRun,
    Tag,
    Touchpoint,
    TouchpointKind,
    User,
    Workflow,
)

SEARCH_COLUMNS = ["id", "name", "company", "title", "phone", "email", "stage", "grade", "fit_score",
                  "engagement_score", "owner", "channel", "status"]
SEARCH_LIMIT = 50
MAX_SEARCH_WORDS = 5
TIMELINE_KINDS = ("touchpoint", "score", "stage", "workflow", "message", "assignment", "merge")
TIMELINE_COLUMNS = ["at", "kind", "what", "detail", "channel", "campaign", "points", "status", "by", "data",
                    "lead_id", "ref_id"]
TIMELINE_PAGE = 100
TIMELINE_EXPORT_MAX = 20_000

# ---------------------------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------------------------
_PHONE_LIKE = re.compile(r"^\+?[\d\s\-().]+$")
_LIKE_SPECIAL = re.compile(r"([\\%_])")


def _like_pattern(text: str, *, anchored: bool = False) -> str:
    """``%text%`` (or ``text%``) with LIKE wildcards in the text escaped, so ``50%`` finds a literal percent."""
    escaped = _LIKE_SPECIAL.sub(r"\\\1", text)
    return f"{escaped}%" if anchored else f"%{escaped}%"


def search_terms(query: str) -> list[str]:
    """The words one search looks for, each matched anywhere in ``Lead.search_text``.

    NFKC folds what Chinese input methods type (full-width digits, letters and spaces); text is lower-cased like
    the search text. A query made of digits with spaces, dashes, brackets or a ``+86`` prefix is one phone
    fragment: "138 0013-8000" looks for ``13800138000``, as stored (national number, no country code).
    """
    text = unicodedata.normalize("NFKC", query or "").strip().lower()
    if not text:
        return []
    if _PHONE_LIKE.match(text) and sum(c.isdigit() for c in text) >= 3:
        digits = re.sub(r"\D", "", text)
        if text.startswith("+86") or (text.startswith(("0086", "86")) and len(digits) > 11):
            digits = digits[4:] if digits.startswith("0086") else digits[2:]
        return [digits] if digits else []
    return [word for word in text.split() if word][:MAX_SEARCH_WORDS]


def search_leads(*, session: Session, actor: Actor, query: str, limit: int = SEARCH_LIMIT) -> pd.DataFrame:
    """Leads whose name (characters, pinyin or initials), phone fragment, email or company contains ``query``.

    One statement over ``Lead.search_text`` (maintained by ``core.normalize``), limited to what ``actor`` may see
    (a sales rep finds only their own leads); every word is a bound, escaped LIKE parameter. Best matches first:
    the exact name, then leads whose search text starts with the query (name or pinyin), then the most recently
    active. ``frame.attrs["more"]`` tells whether more than ``limit`` leads matched.

    A plain scan of the one narrow column is fast enough that no trigram index is needed: p95 ≈ 50 ms on
    SQLite and ≈ 65 ms on PostgreSQL for 100,000 leads (``python -m bench.search_bench``). A trigram index would
    not help the commonest query anyway: two Chinese characters are fewer than a trigram.
    """
    require(actor, "journeys")
    terms = search_terms(query)
    if not terms:
        return pd.DataFrame(columns=SEARCH_COLUMNS)
    whole = unicodedata.normalize("NFKC", query).strip()
    rank = case(
        (Lead.name == whole, 0),
        (Lead.search_text.like(_like_pattern(terms[0], anchored=True), escape="\\"), 1),
        else_=2,
    )
    statement = (
        select(Lead.id, Lead.name, Lead.company, Lead.title, Lead.phone, Lead.email, Lead.stage, Lead.grade,
               Lead.fit_score, Lead.engagement_score, User.display_name.label("owner"),
               Channel.name.label("channel"), Lead.status)
        .join(User, User.id == Lead.owner_id, isouter=True)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .where(lead_scope(actor), Lead.status != LeadStatus.MERGED)
    )
    for term in terms:
        statement = statement.where(Lead.search_text.like(_like_pattern(term), escape="\\"))
    statement = statement.order_by(rank, Lead.last_activity_at.desc().nulls_last(), Lead.id.desc()).limit(limit + 1)
    rows = session.execute(statement).all()
    frame = pd.DataFrame([tuple(r) for r in rows[:limit]], columns=SEARCH_COLUMNS)
    frame.attrs["more"] = len(rows) > limit
    return frame


# ---------------------------------------------------------------------------------------------------------------
# Profile
# ---------------------------------------------------------------------------------------------------------------
def get_visible_lead(*, session: Session, actor: Actor, lead_id: int) -> Lead:
    """The lead, or ``NotFound`` when it does not exist or ``actor`` may not see it (same answer for both)."""
    lead = session.scalars(select(Lead).where(Lead.id == lead_id, lead_scope(actor))).first()
    if lead is None:
        raise NotFound(f"Not found: lead {lead_id}.", what=f"#{lead_id}")
    return lead


def lead_profile(*, session: Session, actor: Actor, lead_id: int) -> dict[str, Any]:
    """Identity, account, owner, source, stage, tags, groups and scores of one lead.

    ``profile["account"]`` is the account's name; ``profile["account_info"]`` its summary (stage, fit,
    engagement, MQA, target lists, owner) or ``None``.
    """
    require(actor, "journeys")
    lead = get_visible_lead(session=session, actor=actor, lead_id=lead_id)
    profile: dict[str, Any] = lead.model_dump()
    names = dict(session.execute(
        select(User.id, User.display_name).where(User.id.in_(
            [i for i in (lead.owner_id, lead.referrer_id, lead.followup_owner_id) if i is not None]))
    ).all())
    profile["owner"] = names.get(lead.owner_id)
    profile["referrer"] = names.get(lead.referrer_id)
    profile["followup_owner"] = names.get(lead.followup_owner_id)
    profile["channel"] = session.scalar(select(Channel.name).where(Channel.id == lead.source_channel_id))
    profile["campaign"] = session.scalar(select(Campaign.name).where(Campaign.id == lead.source_campaign_id))
    profile["tags"] = list(
        session.scalars(select(Tag.name).join(LeadTag, LeadTag.tag_id == Tag.id).where(LeadTag.lead_id == lead_id)
                        .order_by(Tag.name))
    )
    profile["groups"] = list(
        session.scalars(
            select(Group.name).join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.lead_id == lead_id).order_by(Group.name)
        )
    )
    profile["account_info"] = None
    profile["account"] = None
    if lead.account_id is not None:
        from core.accounts import account_summary  # accounts reads journeys' timeline; import late

        info = account_summary(session=session, account_id=lead.account_id)
        profile["account_info"] = info
        profile["account"] = info["name"] if info else None
    return profile


SCORE_COLUMNS = ["component", "rule", "kind", "reason", "points", "events", "last_at"]


def score_explanation(*, session: Session, actor: Actor, lead_id: int) -> pd.DataFrame:
    """Why the lead has its fit and engagement: the score ledger summed per component and rule.

    Each row is one rule (or decay / manual adjustment / cap) with its points, how many ledger lines it has and
    when it last counted; the sum of ``points`` per component is the lead's score.
    """
    require(actor, "journeys")
    get_visible_lead(session=session, actor=actor, lead_id=lead_id)
    rule_name = func.coalesce(Rule.name, "")
    reason = func.max(ScoreEvent.reason)
    rows = session.execute(
        select(ScoreEvent.component, rule_name, ScoreEvent.kind, reason, func.sum(ScoreEvent.points),
               func.count(), func.max(ScoreEvent.occurred_at))
        .join(Rule, Rule.id == ScoreEvent.rule_id, isouter=True)
        .where(ScoreEvent.lead_id == lead_id)
        .group_by(ScoreEvent.component, rule_name, ScoreEvent.kind)
        .order_by(ScoreEvent.component, func.sum(ScoreEvent.points).desc())
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=SCORE_COLUMNS)
    frame["points"] = frame["points"].astype(float)
    frame["last_at"] = pd.to_datetime(frame["last_at"], utc=True)
    return frame


# ---------------------------------------------------------------------------------------------------------------
# Timeline
# ---------------------------------------------------------------------------------------------------------------
def _text(value: Any) -> ColumnElement[Any]:
    return cast(value, Text) if value is not None else cast(null(), Text)


def _part(
    *, at: Any, kind: str, what: Any, detail: Any = None, channel: Any = None, campaign: Any = None,
    points: Any = None, status: Any = None, by: Any = None, data: Any = None, lead_id: Any, ref_id: Any,
) -> Select[Any]:
    """One SELECT of the timeline UNION: every part has the same typed columns, NULL where it has nothing."""
    return select(
        at.label("at"),
        cast(literal(kind), Text).label("kind"),
        _text(what).label("what"),
        _text(detail).label("detail"),
        _text(channel).label("channel"),
        _text(campaign).label("campaign"),
        (cast(points, Float) if points is not None else cast(null(), Float)).label("points"),
        _text(status).label("status"),
        _text(by).label("by"),
        _text(data).label("data"),
        lead_id.label("lead_id"),
        ref_id.label("ref_id"),
    )


def _timeline_union(
    lead_filter: Callable[[Any], ColumnElement[bool]], kinds: Iterable[str], since: datetime | None,
    until: datetime | None,
) -> Any:
    """The UNION ALL of every kind asked for, as a subquery; ``lead_filter(column)`` picks the leads."""

    def period(column: Any) -> list[ColumnElement[bool]]:
        conditions = []
        if since is not None:
            conditions.append(column >= since)
        if until is not None:
            conditions.append(column < until)
        return conditions

    kinds = set(kinds)
    parts: list[Select[Any]] = []
    by_user = aliased(User)
    if "touchpoint" in kinds:
        parts.append(
            _part(at=Touchpoint.occurred_at, kind="touchpoint", what=Touchpoint.kind, channel=Channel.name,
                  campaign=Campaign.name, data=Touchpoint.properties, lead_id=Touchpoint.lead_id,
                  ref_id=Touchpoint.id)
            .join(Channel, Channel.id == Touchpoint.channel_id, isouter=True)
            .join(Campaign, Campaign.id == Touchpoint.campaign_id, isouter=True)
            .where(lead_filter(Touchpoint.lead_id), *period(Touchpoint.occurred_at))
        )
    if "score" in kinds:
        parts.append(
            _part(at=ScoreEvent.occurred_at, kind="score", what=ScoreEvent.component, detail=ScoreEvent.reason,
                  campaign=Rule.name, points=ScoreEvent.points, status=ScoreEvent.kind,
                  lead_id=ScoreEvent.lead_id, ref_id=ScoreEvent.id)
            .join(Rule, Rule.id == ScoreEvent.rule_id, isouter=True)
            .where(lead_filter(ScoreEvent.lead_id), *period(ScoreEvent.occurred_at))
        )
    if "stage" in kinds:
        parts.append(
            _part(at=StageChange.at, kind="stage", what=StageChange.to_stage, detail=StageChange.reason,
                  status=StageChange.from_stage, by=func.coalesce(by_user.display_name, StageChange.by_rule),
                  lead_id=StageChange.lead_id, ref_id=StageChange.id)
            .join(by_user, by_user.id == StageChange.by_user_id, isouter=True)
            .where(lead_filter(StageChange.lead_id), *period(StageChange.at))
        )
    if "workflow" in kinds:
        parts.append(
            _part(at=StepRun.at, kind="workflow", what=StepRun.step_type, detail=StepRun.error,
                  campaign=Workflow.name, status=StepRun.status, by=StepRun.step_id, data=StepRun.result,
                  lead_id=Enrollment.lead_id, ref_id=StepRun.id)
            .join(Enrollment, Enrollment.id == StepRun.enrollment_id)
            .join(Workflow, Workflow.id == Enrollment.workflow_id)
            .where(lead_filter(Enrollment.lead_id), *period(StepRun.at))
        )
        parts.append(
            _part(at=Enrollment.entered_at, kind="workflow", what=literal("enrolled"), campaign=Workflow.name,
                  status=Enrollment.status, lead_id=Enrollment.lead_id, ref_id=Enrollment.id)
            .join(Workflow, Workflow.id == Enrollment.workflow_id)
            .where(lead_filter(Enrollment.lead_id), *period(Enrollment.entered_at))
        )
        parts.append(
            _part(at=Enrollment.finished_at, kind="workflow", what=literal("finished"), detail=Enrollment.last_error,
                  campaign=Workflow.name, status=Enrollment.status, lead_id=Enrollment.lead_id,
                  ref_id=Enrollment.id)
            .join(Workflow, Workflow.id == Enrollment.workflow_id)
            .where(lead_filter(Enrollment.lead_id), Enrollment.finished_at.is_not(None),
                   *period(Enrollment.finished_at))
        )
    if "message" in kinds:
        sent_or_queued = func.coalesce(Message.sent_at, Message.created_at)
        parts.append(
            _part(at=sent_or_queued, kind="message", what=Message.channel, detail=Message.subject,
                  campaign=Workflow.name, status=Message.status, by=Message.to_address,
                  lead_id=Message.lead_id, ref_id=Message.id)
            .join(Enrollment, Enrollment.id == Message.enrollment_id, isouter=True)
            .join(Workflow, Workflow.id == Enrollment.workflow_id, isouter=True)
            .where(lead_filter(Message.lead_id), *period(sent_or_queued))
        )
    if "assignment" in kinds:
        rep = aliased(User)
        parts.append(
            _part(at=Assignment.assigned_at, kind="assignment", what=literal("assigned"),
                  detail=Assignment.routed_by, status=Assignment.status, by=rep.display_name,
                  lead_id=Assignment.lead_id, ref_id=Assignment.id)
            .join(rep, rep.id == Assignment.rep_id)
            .where(lead_filter(Assignment.lead_id), *period(Assignment.assigned_at))
        )
        # The sales feedback: accepted or rejected, with the reason and the rep's note.
        parts.append(
            _part(at=Assignment.decided_at, kind="assignment", what=Assignment.status, detail=Assignment.note,
                  campaign=Assignment.reason, status=Assignment.status,
                  by=func.coalesce(by_user.display_name, rep.display_name), lead_id=Assignment.lead_id,
                  ref_id=Assignment.id)
            .join(rep, rep.id == Assignment.rep_id)
            .join(by_user, by_user.id == Assignment.decided_by_id, isouter=True)
            .where(lead_filter(Assignment.lead_id), Assignment.decided_at.is_not(None),
                   *period(Assignment.decided_at))
        )
    if "merge" in kinds:
        other = aliased(Lead)
        merger = aliased(User)
        for lead_column, other_column, what in ((MergeRecord.survivor_id, MergeRecord.merged_id, "merged_in"),
                                                (MergeRecord.merged_id, MergeRecord.survivor_id, "merged_into")):
            parts.append(
                _part(at=MergeRecord.merged_at, kind="merge", what=literal(what), detail=other.name,
                      status=case((MergeRecord.automatic, "automatic"), else_="manual"),
                      by=merger.display_name, data=cast(other_column, String), lead_id=lead_column,
                      ref_id=MergeRecord.id)
                .join(other, other.id == other_column)
                .join(merger, merger.id == MergeRecord.merged_by_id, isouter=True)
                .where(lead_filter(lead_column), *period(MergeRecord.merged_at))
            )
            parts.append(
                _part(at=MergeRecord.undone_at, kind="merge", what=literal("unmerged"), detail=other.name,
                      by=merger.display_name, data=cast(other_column, String), lead_id=lead_column,
                      ref_id=MergeRecord.id)
                .join(other, other.id == other_column)
                .join(merger, merger.id == MergeRecord.undone_by_id, isouter=True)
                .where(lead_filter(lead_column), MergeRecord.undone_at.is_not(None),
                       *period(MergeRecord.undone_at))
            )
    if not parts:
        return None
    return union_all(*parts).subquery("timeline")


def _timeline_frame(session: Session, union: Any, limit: int | None, offset: int) -> pd.DataFrame:
    if union is None:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    statement = select(*union.c).order_by(union.c.at.desc(), union.c.kind, union.c.ref_id.desc())
    if limit is not None:
        statement = statement.limit(limit).offset(offset)
    rows = session.execute(statement).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=TIMELINE_COLUMNS)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["points"] = pd.to_numeric(frame["points"], errors="coerce")
    frame["data"] = [_parse_json(v) for v in frame["data"]]
    return frame


def _parse_json(value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _check_kinds(kinds: Iterable[str] | None) -> tuple[str, ...]:
    return TIMELINE_KINDS if kinds is None else tuple(k for k in kinds if k in TIMELINE_KINDS)


def timeline(
    *, session: Session, actor: Actor, lead_id: int, kinds: Iterable[str] | None = None,
    since: datetime | None = None, until: datetime | None = None, limit: int | None = TIMELINE_PAGE,
    offset: int = 0,
) -> pd.DataFrame:
    """Everything that happened to one lead, newest first, one page of it.

    One UNION ALL statement over the recording tables, filtered by ``kinds`` and the period
    [``since``, ``until``) in SQL. ``what`` is a machine value (touchpoint kind, stage, score component, step
    type, message channel, assignment status, merge direction) that ``timeline_for_people`` translates;
    ``data`` holds the touchpoint properties (e.g. webinar minutes) or the step result.
    """
    require(actor, "journeys")
    get_visible_lead(session=session, actor=actor, lead_id=lead_id)
    union = _timeline_union(lambda column: column == lead_id, _check_kinds(kinds), since, until)
    return _timeline_frame(session, union, limit, offset)


def timeline_count(
    *, session: Session, actor: Actor, lead_id: int, kinds: Iterable[str] | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> int:
    """How many timeline rows the same filters give (for paging)."""
    require(actor, "journeys")
    get_visible_lead(session=session, actor=actor, lead_id=lead_id)
    union = _timeline_union(lambda column: column == lead_id, _check_kinds(kinds), since, until)
    return 0 if union is None else int(session.scalar(select(func.count()).select_from(union)) or 0)


def leads_timeline(
    *, session: Session, lead_ids: list[int], kinds: Iterable[str] | None = None, since: datetime | None = None,
    until: datetime | None = None, limit: int | None = TIMELINE_PAGE, offset: int = 0,
) -> tuple[pd.DataFrame, int]:
    """One page of the merged timeline of several leads (an account's contacts) and the total row count.

    Callers check permissions and pass only leads the actor may see.
    """
    if not lead_ids:
        return pd.DataFrame(columns=TIMELINE_COLUMNS), 0
    union = _timeline_union(lambda column: column.in_(lead_ids), _check_kinds(kinds), since, until)
    total = 0 if union is None else int(session.scalar(select(func.count()).select_from(union)) or 0)
    return _timeline_frame(session, union, limit, offset), total


# Touchpoint properties people recognise, in display order; others are shown as ``key: value``.
_KNOWN_PROPERTIES = ("minutes", "duration_minutes", "watch_minutes", "url", "page", "asset", "title", "booth",
                     "form", "keyword", "subject", "score", "event")


def _label(prefixes: str | tuple[str, ...], value: Any, lang: str) -> str:
    """The catalog label of an enumerated value under the first prefix that has one, else the value itself
    (step types and reject reasons are defined by other parts of the product and may grow)."""
    if value is None or value == "" or (isinstance(value, float) and pd.isna(value)):
        return ""
    for prefix in (prefixes,) if isinstance(prefixes, str) else prefixes:
        key = f"{prefix}.{value}"
        if has_key(key):
            return t(key, lang)
    return str(value)


def _properties_text(data: Any, lang: str) -> str:
    if not isinstance(data, dict) or not data:
        return ""
    keys = [k for k in _KNOWN_PROPERTIES if k in data] + sorted(k for k in data if k not in _KNOWN_PROPERTIES)
    parts = []
    for key in keys:
        value = data[key]
        if value in (None, "", [], {}):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        label_key = f"journeys.prop.{key}"
        parts.append(f"{t(label_key, lang) if has_key(label_key) else key}: {value}")
    return "；".join(parts) if lang == "zh" else "; ".join(parts)


def _event_text(row: Any, lang: str) -> tuple[str, str]:
    """(what, detail) of one timeline row in ``lang``."""
    kind, what = row.kind, row.what
    bits: list[str] = []

    def add(*values: Any) -> None:
        bits.extend(str(v) for v in values if v not in (None, "") and not (isinstance(v, float) and pd.isna(v)))

    if kind == "touchpoint":
        label = _label("touchpoint", what, lang)
        add(row.campaign, _properties_text(row.data, lang))
    elif kind == "score":
        points = row.points if row.points is not None and not pd.isna(row.points) else 0
        label = t("journeys.score_change", lang, component=_label("journeys.component", what, lang),
                  points=f"{points:+g}")
        add(row.campaign, row.detail, _label("journeys.score_kind", row.status, lang) if row.status != "rule" else "")
    elif kind == "stage":
        label = t("journeys.stage_change", lang, from_stage=_label("stage", row.status, lang) or "—",
                  to_stage=_label("stage", what, lang))
        add(row.by, row.detail)
    elif kind == "workflow":
        label = (_label("journeys.workflow_event", what, lang) if what in ("enrolled", "finished")
                 else _label(("step_type", "journeys.step"), what, lang))
        add(row.campaign, _label("enrollment_status", row.status, lang) if what in ("enrolled", "finished")
            else _label("journeys.step_status", row.status, lang), row.by if what not in ("enrolled", "finished") else "",
            row.detail)
    elif kind == "message":
        label = _label("journeys.channel", what, lang)
        add(row.detail, row.by, _label("journeys.message_status", row.status, lang), row.campaign)
    elif kind == "assignment":
        if what == "assigned":
            label = t("journeys.assigned_to", lang, rep=row.by or "—")
            add(_label("journeys.routed_by", row.detail, lang), _label("assignment_status", row.status, lang))
        else:
            label = _label("assignment_status", what, lang)
            add(row.by, _label(("reject_reason", "journeys.reject_reason"), row.campaign, lang), row.detail)
    elif kind == "merge":
        label = _label("journeys.merge", what, lang)
        add(f"{row.detail or '—'} (#{row.data})" if row.data is not None else row.detail,
            _label("journeys.merge_mode", row.status, lang), row.by)
    else:
        label = str(what)
    return label, " · ".join(bits)


# The kind of name the ``campaign`` column holds for each kind of timeline row (core.display_names).
_NAME_KIND = {"touchpoint": "campaign", "score": "rule", "workflow": "workflow", "message": "workflow"}


def timeline_for_people(frame: pd.DataFrame, lang: str, names: Labels | None = None) -> pd.DataFrame:
    """The timeline with ``what`` and ``detail`` as sentences in ``lang`` (the page and the exports show this).

    ``names`` (``core.display_names.labels``) shows campaign, rule, workflow and channel names in ``lang``."""
    out = frame.copy()
    if names and not out.empty:
        out["campaign"] = [show(c, names.get(_NAME_KIND.get(k, ""), {})) for k, c in zip(out["kind"], out["campaign"],
                                                                                           strict=True)]
        out["channel"] = out["channel"].map(lambda c: show(c, names.get("channel", {})))
    texts = [_event_text(row, lang) for row in frame.itertuples(index=False)]
    out["what"] = [w for w, _ in texts]
    out["detail"] = [d for _, d in texts]
    return out


def timeline_export(
    *, session: Session, actor: Actor, lead_id: int, lang: str, kinds: Iterable[str] | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> pd.DataFrame:
    """The whole filtered timeline (up to 20,000 rows) in people's words, for CSV/Excel."""
    require(actor, "journeys")
    frame = timeline(session=session, actor=actor, lead_id=lead_id, kinds=kinds, since=since, until=until,
                     limit=TIMELINE_EXPORT_MAX)
    return timeline_for_people(frame, lang, labels(session, lang))[["at", "kind", "what", "detail", "channel",
                                                                     "points"]]


# ---------------------------------------------------------------------------------------------------------------
# Path analysis
# ---------------------------------------------------------------------------------------------------------------
MILESTONES = ("mql", "won")
# Touchpoints that are not something the person did: they do not count as a step of a journey.
PASSIVE_KINDS = (TouchpointKind.EMAIL_SENT, TouchpointKind.IMPORTED)
PATH_COLUMNS = ["path", "steps", "leads", "share", "median_days"]
NO_SECOND = "—"


def _touch_label(by: str) -> Any:
    return Channel.name if by == "channel" else Touchpoint.kind


def _collapse(values: Iterable[Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for value in values:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            continue
        if not out or out[-1] != value:
            out.append(value)
    return tuple(out)


def path_sequences(
    *, session: Session, actor: Actor, milestone: str = "mql", since: datetime | None = None,
    until: datetime | None = None, by: str = "kind", depth: int = 4, top: int = 15,
) -> pd.DataFrame:
    """The most common touchpoint sequences before leads first reached ``milestone`` (MQL or won).

    One statement loads every active touchpoint up to the milestone of the leads that reached it in the
    period; pandas orders them per lead, collapses repeats (three page views in a row are one step) and keeps the
    last ``depth`` steps. ``path`` is a tuple of touchpoint kinds (or channel names with ``by="channel"``);
    ``median_days`` is the median time from the first of all that lead's touchpoints to the milestone.
    """
    require(actor, "journeys")
    if milestone not in MILESTONES:
        raise ValueError(milestone)
    reached = (
        select(StageChange.lead_id.label("lead_id"), func.min(StageChange.at).label("at"))
        .where(StageChange.to_stage == milestone)
        .group_by(StageChange.lead_id)
        .subquery("reached")
    )
    statement = (
        select(Touchpoint.lead_id, Touchpoint.occurred_at, _touch_label(by).label("step"), reached.c.at)
        .join(reached, reached.c.lead_id == Touchpoint.lead_id)
        .join(Lead, Lead.id == Touchpoint.lead_id)
        .where(lead_scope(actor), Touchpoint.occurred_at <= reached.c.at,
               Touchpoint.kind.not_in([str(k) for k in PASSIVE_KINDS]))
    )
    if by == "channel":
        statement = statement.join(Channel, Channel.id == Touchpoint.channel_id)
    if since is not None:
        statement = statement.where(reached.c.at >= since)
    if until is not None:
        statement = statement.where(reached.c.at < until)
    frame = pd.DataFrame([tuple(r) for r in session.execute(statement).all()],
                         columns=["lead_id", "occurred_at", "step", "reached_at"])
    if frame.empty:
        return pd.DataFrame(columns=PATH_COLUMNS)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    frame["reached_at"] = pd.to_datetime(frame["reached_at"], utc=True)
    frame = frame.sort_values(["lead_id", "occurred_at"], kind="stable")
    grouped = frame.groupby("lead_id", sort=False)
    per_lead = pd.DataFrame({
        "path": grouped["step"].agg(lambda s: _collapse(s)[-depth:]),
        "days": (grouped["reached_at"].first() - grouped["occurred_at"].first()).dt.total_seconds() / 86400,
    })
    summary = per_lead.groupby("path").agg(leads=("days", "size"), median_days=("days", "median")).reset_index()
    summary["steps"] = summary["path"].map(len)
    summary["share"] = summary["leads"] / len(per_lead)
    summary = summary.sort_values(["leads", "steps"], ascending=[False, True]).head(top).reset_index(drop=True)
    return summary[PATH_COLUMNS]


OUTCOMES = ("won", "lost", "opportunity", "sales", "mql", "nurture", "disqualified")
_OUTCOME_OF_STAGE = {
    Stage.WON: "won", Stage.LOST: "lost", Stage.OPPORTUNITY: "opportunity", Stage.SQL: "sales",
    Stage.SAL: "sales", Stage.MQL: "mql", Stage.NEW: "nurture", Stage.RECYCLED: "nurture",
    Stage.DISQUALIFIED: "disqualified",
}
SANKEY_COLUMNS = ["step", "source", "target", "value"]


def channel_flows(
    *, session: Session, actor: Actor, since: datetime | None = None, until: datetime | None = None,
) -> pd.DataFrame:
    """Links of the Sankey "first channel → next channel → outcome" for leads created in the period.

    The first channel is where the lead came from (its source channel, else its first touchpoint's); the next
    is the first other channel it touched afterwards (``—`` when none); the outcome groups its current stage.
    One statement (leads left-joined with their touchpoints' channels), pandas for the rest.
    """
    require(actor, "journeys")
    statement = (
        select(Lead.id, Lead.stage, Lead.source_channel_id, Touchpoint.channel_id, Touchpoint.occurred_at)
        .join(Touchpoint, Touchpoint.lead_id == Lead.id, isouter=True)
        .where(lead_scope(actor), Lead.status == LeadStatus.VALID)
    )
    if since is not None:
        statement = statement.where(Lead.created_at >= since)
    if until is not None:
        statement = statement.where(Lead.created_at < until)
    frame = pd.DataFrame([tuple(r) for r in session.execute(statement).all()],
                         columns=["lead_id", "stage", "source", "channel", "at"])
    if frame.empty:
        return pd.DataFrame(columns=SANKEY_COLUMNS)
    names = dict(session.execute(select(Channel.id, Channel.name)).all())
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame = frame.sort_values(["lead_id", "at"], kind="stable", na_position="last")
    first_touch = frame.dropna(subset=["channel"]).groupby("lead_id")["channel"].first()
    leads = frame.groupby("lead_id", sort=False).agg(stage=("stage", "first"), source=("source", "first"))
    leads["first"] = leads["source"].fillna(first_touch)
    leads = leads.dropna(subset=["first"])
    touches = frame.dropna(subset=["channel"]).join(leads["first"], on="lead_id", how="inner")
    second = touches[touches["channel"] != touches["first"]].groupby("lead_id")["channel"].first()
    leads["second"] = second.reindex(leads.index)
    leads["first"] = leads["first"].map(lambda i: names.get(int(i), str(i)))
    leads["second"] = leads["second"].map(lambda i: NO_SECOND if pd.isna(i) else names.get(int(i), str(i)))
    leads["outcome"] = leads["stage"].map(lambda s: _OUTCOME_OF_STAGE.get(s, "nurture"))
    first_links = leads.groupby(["first", "second"]).size().reset_index(name="value")
    first_links.insert(0, "step", 1)
    first_links = first_links.rename(columns={"first": "source", "second": "target"})
    second_links = leads.groupby(["second", "outcome"]).size().reset_index(name="value")
    second_links.insert(0, "step", 2)
    second_links = second_links.rename(columns={"second": "source", "outcome": "target"})
    links = pd.concat([first_links, second_links], ignore_index=True)
    return links.sort_values(["step", "value"], ascending=[True, False]).reset_index(drop=True)[SANKEY_COLUMNS]


def sankey_figure(links: pd.DataFrame, *, outcome_label: Callable[[str], str], title: str = "",
                  none_label: str = NO_SECOND) -> Any:
    """A Plotly Sankey of ``channel_flows``: three columns of nodes (first channel, next channel, outcome)."""
    import plotly.graph_objects as go

    nodes: dict[tuple[int, str], int] = {}
    labels: list[str] = []

    def node(column: int, name: str) -> int:
        if (column, name) not in nodes:
            nodes[(column, name)] = len(labels)
            if column == 2:
                labels.append(outcome_label(name))
            else:
                labels.append(none_label if name == NO_SECOND else name)
        return nodes[(column, name)]

    sources, targets, values = [], [], []
    for row in links.itertuples(index=False):
        source_column = 0 if row.step == 1 else 1
        sources.append(node(source_column, row.source))
        targets.append(node(source_column + 1, row.target))
        values.append(int(row.value))
    figure = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": labels, "pad": 12, "thickness": 14},
        link={"source": sources, "target": targets, "value": values},
    ))
    figure.update_layout(title_text=title, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
                         height=460, font={"size": 12})
    return figure


STAGE_STEPS = tuple(zip(MAIN_TRACK[:-1], MAIN_TRACK[1:], strict=True))
DURATION_COLUMNS = ["source", "leads", *[f"{a}_{b}" for a, b in STAGE_STEPS]]


def stage_durations(
    *, session: Session, actor: Actor, since: datetime | None = None, until: datetime | None = None,
) -> pd.DataFrame:
    """Median days between consecutive lifecycle stages, per source channel, for leads created in the period.

    One statement: each lead's creation and the first time it reached each main-track stage. A lead that
    skipped a stage (a trade-show SQL) counts the time from the last stage it did reach. Columns ``new_mql``,
    ``mql_sal`` … hold median days (NaN where no lead made that step); ``leads`` counts the leads of the source.
    """
    require(actor, "journeys")
    statement = (
        select(Lead.id, func.coalesce(Channel.name, ""), Lead.created_at, StageChange.to_stage,
               func.min(StageChange.at))
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .join(StageChange, and_(StageChange.lead_id == Lead.id,
                                StageChange.to_stage.in_([str(s) for s in MAIN_TRACK[1:]])), isouter=True)
        .where(lead_scope(actor), Lead.status == LeadStatus.VALID)
        .group_by(Lead.id, Channel.name, Lead.created_at, StageChange.to_stage)
    )
    if since is not None:
        statement = statement.where(Lead.created_at >= since)
    if until is not None:
        statement = statement.where(Lead.created_at < until)
    frame = pd.DataFrame([tuple(r) for r in session.execute(statement).all()],
                         columns=["lead_id", "source", "created_at", "stage", "at"])
    if frame.empty:
        return pd.DataFrame(columns=DURATION_COLUMNS)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    wide = frame.pivot_table(index=["lead_id", "source", "created_at"], columns="stage", values="at",
                             aggfunc="min")
    wide = wide.reset_index()
    previous = wide["created_at"]
    durations = pd.DataFrame({"source": wide["source"]})
    for before, after in STAGE_STEPS:
        reached = wide[after] if after in wide.columns else pd.Series(pd.NaT, index=wide.index, dtype=previous.dtype)
        days = (reached - previous).dt.total_seconds() / 86400
        # A lead recycled and qualified again can reach an earlier stage after a later one: no step to measure.
        durations[f"{before}_{after}"] = days.where(days >= 0)
        previous = reached.combine_first(previous)
    grouped = durations.groupby("source")
    result = grouped.median(numeric_only=True)
    result.insert(0, "leads", grouped.size())
    result = result.reset_index().sort_values("leads", ascending=False).reset_index(drop=True)
    for column in DURATION_COLUMNS:
        if column not in result.columns:
            result[column] = float("nan")
    return result[DURATION_COLUMNS]


__all__ = [
    "MILESTONES", "OUTCOMES", "SEARCH_COLUMNS", "TIMELINE_COLUMNS", "TIMELINE_KINDS", "channel_flows",
    "get_visible_lead", "lead_profile", "leads_timeline", "path_sequences", "sankey_figure", "score_explanation",
    "search_leads", "search_terms", "stage_durations", "timeline", "timeline_count", "timeline_export",
    "timeline_for_people",
]
