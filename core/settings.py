"""Team-wide settings stored as JSON under a key, with defaults defined here."""

from __future__ import annotations

import copy
from typing import Any

from sqlmodel import Session

from core.clock import utcnow
from db.models import Setting

DEFAULTS: dict[str, dict[str, Any]] = {
    "smtp": {
        "host": "",
        "port": 587,
        "security": "starttls",  # none | starttls | ssl
        "username": "",
        "password": "",
        "sender": "",
        "timeout": 10,
    },
    # Adapters for messages that leave through HTTP: group robots (WeCom, DingTalk, Feishu) and the SMS /
    # WeChat gateways a team uses, each a URL (and optional bearer token) that receives JSON.
    "webhooks": {
        "sms": {"url": "", "token": ""},
        "wechat": {"url": "", "token": ""},
        "wecom": {"url": ""},
        "dingtalk": {"url": ""},
        "feishu": {"url": ""},
    },
    "import": {"max_upload_mb": 50, "blocklist": []},
    "dedup": {"auto_merge": 0.95, "review": 0.6},
    "mql": {"threshold_rule": 'grade in ("A", "B") and engagement >= 60'},
    # The sales SLA: accept or reject within ``hours`` working hours. Working time is ``work_start``–``work_end``
    # on ``workdays`` (Monday = 0) in the team's time zone, minus ``holidays`` plus ``extra_workdays`` (ISO dates,
    # e.g. the weekend make-up days around Chinese public holidays). ``robots``: the sales team's group-robot
    # webhooks for reminders and escalations (empty: the team-wide robot in "webhooks", if any).
    "sla": {"hours": 8, "work_start": 9, "work_end": 18, "workdays": [0, 1, 2, 3, 4], "remind_before_hours": 2,
            "holidays": [], "extra_workdays": [], "email": True,
            "robots": {"wecom": "", "dingtalk": "", "feishu": ""}},
    # What a rejection does: reasons that disqualify instead of recycling, nurture days per reason before a
    # recycled lead may come back, and the default "not now" date. Alerts to reps on what their leads do.
    "handoff": {
        "disqualify_reasons": ["competitor", "duplicate"],
        "recycle_days": {"cannot_reach": 30, "no_budget": 120, "wrong_person": 30, "not_now": 90},
        "alert_kinds": ["pricing_view", "webinar_attended", "demo_request"],
        "score_jump": 15,
        "alert_lookback_hours": 24,
    },
    "crm": {"webhook_url": ""},
    "security": {"session_hours": 12, "max_failed_logins": 5},
    "scheduler": {"enabled": True},
}


def get_setting(session: Session, key: str) -> dict[str, Any]:
    """The stored value merged over its defaults, so new default keys appear without a migration."""
    value = copy.deepcopy(DEFAULTS.get(key, {}))
    row = session.get(Setting, key)
    if row is not None:
        value.update(row.value or {})
    return value


def set_setting(session: Session, key: str, value: dict[str, Any], *, actor_id: int | None = None) -> None:
    row = session.get(Setting, key)
    if row is None:
        row = Setting(key=key, value=dict(value), updated_by_id=actor_id)
        session.add(row)
    else:
        row.value = {**(row.value or {}), **value}
        row.updated_at = utcnow()
        row.updated_by_id = actor_id
        session.add(row)
