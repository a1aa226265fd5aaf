"""The whole LeadLoop schema, in one place.

Conventions
- Datetimes are timezone-aware UTC (SQLModel's ``UTCDateTime``: timestamptz on PostgreSQL, UTC text on SQLite);
  ``core.clock`` converts to the team's time zone for display and working hours.
- Enumerations are stored as short strings (portable between SQLite and PostgreSQL); the allowed values are the
  ``StrEnum`` classes below, which core modules use instead of string literals.
- JSON columns use ``JSONType``: JSON on SQLite, JSONB on PostgreSQL.
- ``Lead.version`` is bumped by every write that must not race (accept/reject, merge, manual edits):
  ``UPDATE lead SET … , version = version + 1 WHERE id = :id AND version = :seen``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, MetaData, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# A naming convention lets Alembic's batch mode (SQLite) find and alter constraints by name.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata

JSONType = JSON().with_variant(JSONB(), "postgresql")


def json_field(default_factory: Any = dict, **kwargs: Any) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSONType, nullable=False), **kwargs)


def json_field_nullable(**kwargs: Any) -> Any:
    return Field(default=None, sa_column=Column(JSONType, nullable=True), **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Enumerations
# ---------------------------------------------------------------------------------------------------------------
class Role(StrEnum):
    ADMIN = "admin"
    MARKETER = "marketer"
    MANAGER = "manager"
    SALES = "sales"


class Stage(StrEnum):
    NEW = "new"
    MQL = "mql"
    SAL = "sal"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    WON = "won"
    LOST = "lost"
    RECYCLED = "recycled"
    DISQUALIFIED = "disqualified"


class LeadStatus(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    MERGED = "merged"


class TouchpointKind(StrEnum):
    FORM_SUBMIT = "form_submit"
    WEBINAR_REGISTERED = "webinar_registered"
    WEBINAR_ATTENDED = "webinar_attended"
    LIVESTREAM_VIEW = "livestream_view"
    TRADESHOW_SCAN = "tradeshow_scan"
    WHITEPAPER_DOWNLOAD = "whitepaper_download"
    EMAIL_SENT = "email_sent"
    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    PAGE_VIEW = "page_view"
    PRICING_VIEW = "pricing_view"
    DEMO_REQUEST = "demo_request"
    WECHAT_FOLLOW = "wechat_follow"
    WECHAT_MESSAGE = "wechat_message"
    REFERRAL = "referral"
    SEM_CLICK = "sem_click"
    EVENT_ATTENDED = "event_attended"
    IMPORTED = "imported"
    REGISTERED = "registered"


class RuleKind(StrEnum):
    TAG = "tag"
    FIT = "fit"
    ENGAGEMENT = "engagement"
    MQL = "mql"
    DECAY = "decay"


class ImportStatus(StrEnum):
    PREVIEWED = "previewed"
    COMMITTED = "committed"
    UNDONE = "undone"
    FAILED = "failed"


class CandidateStatus(StrEnum):
    PENDING = "pending"
    MERGED = "merged"
    NOT_DUPLICATE = "not_duplicate"
    SKIPPED = "skipped"


class WorkflowStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    RUNNING = "running"
    COMPLETED = "completed"
    EXITED = "exited"
    FAILED = "failed"


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class AssignmentStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REASSIGNED = "reassigned"


# ---------------------------------------------------------------------------------------------------------------
# People and organisation
# ---------------------------------------------------------------------------------------------------------------
class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    display_name: str = Field(default="", max_length=128)
    email: str | None = Field(default=None, max_length=254)
    password_hash: str = Field(default="")
    role: str = Field(default=Role.MARKETER, index=True, max_length=16)
    language: str = Field(default="zh", max_length=8)
    manager_id: int | None = Field(default=None, foreign_key="user.id")
    # Routing attributes of a sales rep: provinces/cities, industries and product lines they cover.
    territories: list[str] = json_field(list)
    industries: list[str] = json_field(list)
    product_lines: list[str] = json_field(list)
    capacity: int = Field(default=50, description="open MQLs a rep may hold at once")
    out_of_office: bool = False
    employee_code: str | None = Field(default=None, index=True, max_length=32)
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = None
    password_changed_at: datetime | None = None
    last_login_at: datetime | None = None
    created_at: datetime = Field(default_factory=lambda: _utcnow())


class Channel(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    kind: str = Field(default="other", max_length=32)
    description: str = ""
    # The column mapping remembered for this channel's files (source header -> lead field).
    import_mapping: dict[str, Any] = json_field(dict)
    active: bool = True
    created_at: datetime = Field(default_factory=lambda: _utcnow())


class Campaign(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, max_length=128)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    utm_source: str | None = Field(default=None, max_length=128)
    utm_medium: str | None = Field(default=None, max_length=128)
    utm_campaign: str | None = Field(default=None, index=True, max_length=128)
    tracking_code: str | None = Field(default=None, unique=True, max_length=32)
    product_line: str | None = Field(default=None, max_length=64)
    start_date: date | None = None
    end_date: date | None = None
    budget: float | None = None
    created_at: datetime = Field(default_factory=lambda: _utcnow())


class TrackingLink(SQLModel, table=True):
    """A link or QR code per campaign and optionally per employee, so offline posters and shares are attributed."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    employee_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    target_url: str = ""
    label: str = ""
    created_at: datetime = Field(default_factory=lambda: _utcnow())


class Account(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=256)
    name_key: str = Field(index=True, max_length=256)
    domain: str | None = Field(default=None, index=True, max_length=128)
    industry: str | None = Field(default=None, max_length=64)
    company_size: int | None = None
    province: str | None = Field(default=None, max_length=32)
    city: str | None = Field(default=None, max_length=32)
    owner_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    is_target: bool = False
    # Named target-account lists this account belongs to (ABM), e.g. ["2027 重点客户"].
    target_lists: list[str] = json_field(list)
    is_customer: bool = False
    fit_score: float = 0
    engagement_score: float = 0
    # When several people of the account engaged recently (marketing-qualified account); None when not.
    mqa_at: datetime | None = None
    created_at: datetime = Field(default_factory=lambda: _utcnow())


# ---------------------------------------------------------------------------------------------------------------
# Leads and what they did
# ---------------------------------------------------------------------------------------------------------------
class LeadBase(SQLModel):
    name: str | None = Field(default=None, max_length=128)
    email: str | None = Field(default=None, index=True, max_length=254)
    phone: str | None = Field(default=None, index=True, max_length=32)
    wechat_id: str | None = Field(default=None, max_length=64)
    company: str | None = Field(default=None, max_length=256)
    title: str | None = Field(default=None, max_length=128)
    industry: str | None = Field(default=None, max_length=64)
    province: str | None = Field(default=None, max_length=32)
    city: str | None = Field(default=None, max_length=32)
    company_size: int | None = None
    product_interest: str | None = Field(default=None, max_length=64)


def _where_set(column: str) -> dict[str, Any]:
    """A partial index's condition on both databases: only rows where ``column`` holds a value."""
    return {"sqlite_where": text(f"{column} IS NOT NULL"), "postgresql_where": text(f"{column} IS NOT NULL")}


class Lead(LeadBase, table=True):
    __table_args__ = (
        # Also the index for status alone (its prefix).
        Index("ix_lead_status_stage", "status", "stage"),
        Index("ix_lead_owner_stage", "owner_id", "stage"),
        # Columns most leads leave empty: indexed only where set ("= value" lookups imply IS NOT NULL, so both
        # databases use these), which spares every import the index entries of its new leads' NULLs.
        Index("ix_lead_wechat_id", "wechat_id", **_where_set("wechat_id")),
        Index("ix_lead_merged_into_id", "merged_into_id", **_where_set("merged_into_id")),
        Index("ix_lead_source_campaign_id", "source_campaign_id", **_where_set("source_campaign_id")),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Matching keys, derived by core.normalize: pinyin of the name, company without suffixes / city prefixes.
    # Not indexed: dedup reads them with the whole lead frame, nothing looks a lead up by them.
    name_key: str | None = Field(default=None, max_length=256)
    company_key: str | None = Field(default=None, max_length=256)
    account_id: int | None = Field(default=None, foreign_key="account.id", index=True)
    # Source attribution (first touch that created the lead).
    source_channel_id: int | None = Field(default=None, foreign_key="channel.id", index=True)
    source_campaign_id: int | None = Field(default=None, foreign_key="campaign.id")
    tracking_code: str | None = Field(default=None, max_length=32)
    referrer_id: int | None = Field(default=None, foreign_key="user.id")
    utm_source: str | None = Field(default=None, max_length=128)
    utm_medium: str | None = Field(default=None, max_length=128)
    utm_campaign: str | None = Field(default=None, max_length=128)
    import_batch_id: int | None = Field(default=None, foreign_key="importbatch.id", index=True)
    # Ownership and lifecycle.
    owner_id: int | None = Field(default=None, foreign_key="user.id")
    stage: str = Field(default=Stage.NEW, index=True, max_length=16)
    stage_changed_at: datetime | None = None
    recycle_at: datetime | None = None
    is_customer: bool = False
    # Scores (cache of the ScoreEvent ledger).
    fit_score: float = 0
    engagement_score: float = 0
    grade: str | None = Field(default=None, max_length=2)
    scored_at: datetime | None = None
    # Validity.
    status: str = Field(default=LeadStatus.VALID, max_length=16)
    invalid_reason: str | None = Field(default=None, max_length=256)
    merged_into_id: int | None = Field(default=None, foreign_key="lead.id")
    unsubscribed: bool = False
    # Set when a new lead matches someone sales already follows (another lead with an owner, or a customer):
    # it is flagged "already in follow-up by …" instead of being routed again.
    followup_lead_id: int | None = Field(default=None, foreign_key="lead.id")
    followup_owner_id: int | None = Field(default=None, foreign_key="user.id")
    # Columns of a channel's file that map to no lead field, kept as they came (custom fields).
    attributes: dict[str, Any] = json_field(dict)
    # Lower-case name, pinyin, initials, phone digits, email and company in one string, maintained by
    # core.normalize.search_text on every write, so one indexed-free LIKE finds a lead by any of them.
    search_text: str = Field(default="", max_length=1024)
    last_activity_at: datetime | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=lambda: _utcnow(), index=True)
    updated_at: datetime = Field(default_factory=lambda: _utcnow())
    version: int = Field(default=1)
    is_demo: bool = False


class Touchpoint(SQLModel, table=True):
    __table_args__ = (
        Index("ix_touchpoint_lead_occurred", "lead_id", "occurred_at"),
        # Engagement rules read touchpoints of a kind by lead and time; the index answers them without the rows.
        Index("ix_touchpoint_kind_lead_occurred", "kind", "lead_id", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="lead.id")
    kind: str = Field(max_length=32)
    channel_id: int | None = Field(default=None, foreign_key="channel.id", index=True)
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id", index=True)
    occurred_at: datetime = Field(index=True)
    properties: dict[str, Any] = json_field(dict)
    # A natural key (source, kind, identity, time) so a re-imported activity file does not double touchpoints.
    natural_key: str = Field(unique=True, max_length=128)
    import_batch_id: int | None = Field(default=None, foreign_key="importbatch.id", index=True)
    created_at: datetime = Field(default_factory=lambda: _utcnow())


class Tag(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    color: str = Field(default="#1f77b4", max_length=16)
    description: str = ""


class LeadTag(SQLModel, table=True):
    lead_id: int = Field(foreign_key="lead.id", primary_key=True)
    tag_id: int = Field(foreign_key="tag.id", primary_key=True, index=True)
    source: str = Field(default="manual", max_length=16)  # rule | manual | workflow | import
    rule_id: int | None = Field(default=None, foreign_key="rule.id")
    created_at: datetime = Field(default_factory=lambda: _utcnow())


class Group(SQLModel, table=True):
    __tablename__ = "leadgroup"  # "group" is a reserved word in SQL

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    description: str = ""
    created_at: datetime = Field(default_factory=lambda: _utcnow())


class GroupMember(SQLModel, table=True):
    group_id: int = Field(foreign_key="leadgroup.id", primary_key=True)
    lead_id: int = Field(foreign_key="lead.id", primary_key=True, index=True)
    source: str = Field(default="manual", max_length=16)
    added_at: datetime = Field(default_factory=lambda: _utcnow())


# ---------------------------------------------------------------------------------------------------------------
# Rules and scores
# ---------------------------------------------------------------------------------------------------------------
class Rule(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    kind: str = Field(index=True, max_length=16)
    text: str
    ast: dict[str, Any] = json_field(dict)
    points: float = 0
    # Kind-specific settings: tag name and remove_when_false (tag), cap and period (engagement),
    # half_life_days / idle_days (decay), grade bands (fit).
    params: dict[str, Any] = json_field(dict)
    active: bool = True
    version: int = 1
    author_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=lambda: _utcnow())
    updated_at: datetime = Field(default_factory=lambda: _utcnow())


class RuleVersion(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("rule_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    rule_id: int = Field(foreign_key="rule.id", index=True)
    version: int
    name: str = Field(max_length=128)
    text: str
    ast: dict[str, Any] = json_field(dict)
    points: float = 0
    params: dict[str, Any] = json_field(dict)
    active: bool = True
    author_id: int | None = Field(default=None, foreign_key="user.id")
    note: str = ""
    created_at: datetime = Field(default_factory=lambda: _utcnow())


class ScoreEvent(SQLModel, table=True):
    """The score ledger: the lead's fit/engagement columns are the sum of its events."""

    __table_args__ = (Index("ix_scoreevent_lead_component", "lead_id", "component"),)

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="lead.id")
    component: str = Field(max_length=16)  # fit | engagement
    rule_id: int | None = Field(default=None, foreign_key="rule.id", index=True)
    rule_version: int | None = None
    touchpoint_id: int | None = Field(default=None, foreign_key="touchpoint.id")
    points: float
    kind: str = Field(default="rule", max_length=16)  # rule | decay | manual | cap
    reason: str = ""
    occurred_at: datetime
    created_at: datetime = Field(default_factory=lambda: _utcnow())


class StageChange(SQLModel, table=True):
    __table_args__ = (Index("ix_stagechange_lead_at", "lead_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="lead.id")
    from_stage: str | None = Field(default=None, max_length=16)
    to_stage: str = Field(index=True, max_length=16)
    by_user_id: int | None = Field(default=None, foreign_key="user.id")
    by_rule: str | None = Field(default=None, max_length=128)
    reason: str = ""
    at: datetime = Field(index=True)


# ---------------------------------------------------------------------------------------------------------------
# Import and dedup
# ---------------------------------------------------------------------------------------------------------------
class ImportBatch(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    channel_id: int | None = Field(default=None, foreign_key="channel.id", index=True)
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id")
    filename: str = Field(default="", max_length=256)
    content_hash: str = Field(index=True, max_length=64)
    kind: str = Field(default="leads", max_length=16)  # leads | touchpoints
    encoding: str | None = Field(default=None, max_length=32)
    mapping: dict[str, Any] = json_field(dict)
    status: str = Field(default=ImportStatus.COMMITTED, index=True, max_length=16)
    row_count: int = 0
    counts: dict[str, Any] = json_field(dict)
    error: str | None = None
    created_by_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=lambda: _utcnow(), index=True)
    undone_at: datetime | None = None
    is_demo: bool = False


class ImportRow(SQLModel, table=True):
    """A raw input row, kept as read, with what became of it."""

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="importbatch.id", index=True)
    row_number: int
    raw: dict[str, Any] = json_field(dict)
    outcome: str = Field(max_length=16)  # inserted | updated | duplicate | invalid | touchpoint | skipped
    lead_id: int | None = Field(default=None, foreign_key="lead.id", index=True)
    problems: list[Any] = json_field(list)
    # Old values of the fields this row changed on an existing lead, so undo can restore them.
    before: dict[str, Any] | None = json_field_nullable()


class DuplicateCandidate(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("left_id", "right_id"),)

    id: int | None = Field(default=None, primary_key=True)
    left_id: int = Field(foreign_key="lead.id", index=True)
    right_id: int = Field(foreign_key="lead.id", index=True)
    score: float
    reasons: list[Any] = json_field(list)
    status: str = Field(default=CandidateStatus.PENDING, index=True, max_length=16)
    decided_by_id: int | None = Field(default=None, foreign_key="user.id")
    decided_at: datetime | None = None
    created_at: datetime = Field(default_factory=lambda: _utcnow())


class MergeRecord(SQLModel, table=True):
    """Everything needed to undo a merge: both leads as they were and every row that was re-pointed."""

    id: int | None = Field(default=None, primary_key=True)
    survivor_id: int = Field(foreign_key="lead.id", index=True)
    merged_id: int = Field(foreign_key="lead.id", index=True)
    snapshot: dict[str, Any] = json_field(dict)
    automatic: bool = False
    score: float | None = None
    merged_by_id: int | None = Field(default=None, foreign_key="user.id")
    merged_at: datetime = Field(default_factory=lambda: _utcnow())
    undone_at: datetime | None = None
    undone_by_id: int | None = Field(default=None, foreign_key="user.id")


# ---------------------------------------------------------------------------------------------------------------
# Automations and messaging
# ---------------------------------------------------------------------------------------------------------------
class Workflow(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    description: str = ""
    trigger: dict[str, Any] = json_field(dict)
    # {"start": step_id, "steps": {step_id: {"type": ..., ...params, "next": id | "yes"/"no": id}}}
    definition: dict[str, Any] = json_field(dict)
    status: str = Field(default=WorkflowStatus.DRAFT, index=True, max_length=16)
    reentry: str = Field(default="never", max_length=16)  # never | after_days | always
    reentry_days: int | None = None
    version: int = 1
    is_template: bool = False
    created_by_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=lambda: _utcnow())
    updated_at: datetime = Field(default_factory=lambda: _utcnow())


class WorkflowVersion(SQLModel, table=True):
    """Each activated definition of a workflow, so leads enrolled under an older version finish on it."""

    __table_args__ = (UniqueConstraint("workflow_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id", index=True)
    version: int
    trigger: dict[str, Any] = json_field(dict)
    definition: dict[str, Any] = json_field(dict)
    author_id: int | None = Field(default=None, foreign_key="user.id")
    note: str = ""
    created_at: datetime = Field(default_factory=lambda: _utcnow())


class Enrollment(SQLModel, table=True):
    __table_args__ = (Index("ix_enrollment_status_next", "status", "next_run_at"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id", index=True)
    lead_id: int = Field(foreign_key="lead.id", index=True)
    workflow_version: int = 1
    current_step: str | None = Field(default=None, max_length=64)
    status: str = Field(default=EnrollmentStatus.ACTIVE, max_length=16)
    next_run_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = None
    entered_at: datetime = Field(default_factory=lambda: _utcnow())
    finished_at: datetime | None = None


class StepRun(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    enrollment_id: int = Field(foreign_key="enrollment.id", index=True)
    step_id: str = Field(max_length=64)
    step_type: str = Field(max_length=32)
    status: str = Field(max_length=16)  # done | failed | waiting | branched
    idempotency_key: str = Field(unique=True, max_length=128)
    result: dict[str, Any] = json_field(dict)
    error: str | None = None
    at: datetime = Field(index=True)


class Message(SQLModel, table=True):
    """The outbox: every email, SMS, WeChat message, webhook and notification goes through it."""

    __table_args__ = (Index("ix_message_status_next", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)  # email | sms | wechat | wecom | dingtalk | feishu | webhook | notify
    lead_id: int | None = Field(default=None, foreign_key="lead.id", index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    enrollment_id: int | None = Field(default=None, foreign_key="enrollment.id", index=True)
    to_address: str = Field(default="", max_length=512)
    subject: str = ""
    body: str = ""
    payload: dict[str, Any] = json_field(dict)
    status: str = Field(default=MessageStatus.QUEUED, max_length=16)
    idempotency_key: str = Field(unique=True, max_length=128)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    provider_message_id: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=lambda: _utcnow())
    sent_at: datetime | None = None
    read_at: datetime | None = None


# ---------------------------------------------------------------------------------------------------------------
# Handoff to sales
# ---------------------------------------------------------------------------------------------------------------
class RoutingRule(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    position: int = 0
    name: str = Field(max_length=128)
    kind: str = Field(max_length=16)  # account | territory | industry | product_line | rule | round_robin
    # Kind-specific: {"provinces": [...]} / {"industries": [...]} / {"rule": "..."}; rep_ids to choose among.
    params: dict[str, Any] = json_field(dict)
    rep_ids: list[int] = json_field(list)
    active: bool = True


class Assignment(SQLModel, table=True):
    __table_args__ = (Index("ix_assignment_rep_status", "rep_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="lead.id", index=True)
    rep_id: int = Field(foreign_key="user.id")
    routed_by: str = Field(default="", max_length=128)  # which rule chose the rep
    status: str = Field(default=AssignmentStatus.PENDING, index=True, max_length=16)
    reason: str | None = Field(default=None, max_length=32)  # reject reason code
    note: str = ""
    assigned_at: datetime
    sla_due_at: datetime | None = Field(default=None, index=True)
    reminded_at: datetime | None = None
    escalated_at: datetime | None = None
    breached: bool = False
    decided_at: datetime | None = None
    decided_by_id: int | None = Field(default=None, foreign_key="user.id")
    come_back_at: datetime | None = None
    crm_pushed_at: datetime | None = None
    crm_status: str | None = Field(default=None, max_length=256)


class Opportunity(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="lead.id", index=True)
    account_id: int | None = Field(default=None, foreign_key="account.id", index=True)
    name: str = Field(default="", max_length=256)
    amount: float = 0
    stage: str = Field(default="open", index=True, max_length=16)  # open | won | lost
    owner_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(index=True)
    closed_at: datetime | None = None


class ChannelCost(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("channel_id", "campaign_id", "month"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id", index=True)
    month: date = Field(index=True)  # first day of the month
    amount: float
    note: str = ""


# ---------------------------------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------------------------------
class AuditLog(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    action: str = Field(index=True, max_length=64)
    entity: str = Field(default="", max_length=32)
    entity_id: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = json_field(dict)


class SchedulerLease(SQLModel, table=True):
    """One row per lease name; the holder whose lease has not expired is the scheduler leader."""

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    expires_at: datetime
    heartbeat_at: datetime
    info: dict[str, Any] = json_field(dict)


class JobRun(SQLModel, table=True):
    """What each heartbeat job did last: the status panel reads it."""

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(index=True, max_length=64)
    holder: str = Field(default="", max_length=128)
    started_at: datetime = Field(index=True)
    finished_at: datetime | None = None
    ok: bool = True
    summary: dict[str, Any] = json_field(dict)
    error: str | None = None


class DisplayName(SQLModel, table=True):
    """How a named thing (a channel, campaign, tag, rule, workflow…) reads in one interface language.

    Names are data a team types in its own language; a label here lets readers of the other language see it in
    theirs. Keyed by the name rather than the row id so that any report column holding names can be translated
    with one dictionary lookup; renaming a thing carries its labels along (core.display_names.rename).
    """

    __table_args__ = (UniqueConstraint("kind", "name", "lang", name="uq_displayname_kind_name_lang"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    name: str = Field(max_length=255)
    lang: str = Field(max_length=8)
    text: str = Field(max_length=255)


class Setting(SQLModel, table=True):
    """Team-wide settings (SMTP, thresholds, SLA hours, blocklists) as JSON values under a key."""

    key: str = Field(primary_key=True, max_length=64)
    value: dict[str, Any] = json_field(dict)
    updated_at: datetime = Field(default_factory=lambda: _utcnow())
    updated_by_id: int | None = Field(default=None, foreign_key="user.id")


def _utcnow() -> datetime:
    return datetime.now(UTC)
