"""Shipped workflow templates: the flows most B2B teams start from. "Use template" copies one into a draft."""

from __future__ import annotations

import copy
from typing import Any

WECHAT_RECALL: dict[str, Any] = {
    "start": "add_group",
    "steps": {
        "add_group": {"type": "add_group", "group": "未完善信息粉丝", "next": "send_invite"},
        "send_invite": {"type": "send_wechat", "text": "完善信息，赢福利：点击菜单「会员中心」填写手机号和公司，即可参与抽奖。",
                        "next": "wait_first"},
        "wait_first": {"type": "wait", "days": 3, "next": "check_first"},
        "check_first": {"type": "condition", "check": {"kind": "registered"}, "yes": "leave_group",
                        "no": "wait_20"},
        "leave_group": {"type": "remove_group", "group": "未完善信息粉丝", "next": "send_gift"},
        "send_gift": {"type": "send_wechat", "text": "感谢完善信息！回复「礼包」领取《2026 B2B 营销自动化白皮书》和新人礼。",
                      "next": "end"},
        "wait_20": {"type": "wait", "days": 20, "next": "send_reminder"},
        "send_reminder": {"type": "send_wechat", "text": "完善信息，领新人礼：资料包和 1 对 1 顾问咨询名额仅剩最后 3 天。",
                          "next": "wait_second"},
        "wait_second": {"type": "wait", "days": 3, "next": "check_second"},
        "check_second": {"type": "condition", "check": {"kind": "registered"}, "yes": "leave_group",
                         "no": "to_sleeping"},
        "to_sleeping": {"type": "move_group", "from": "未完善信息粉丝", "to": "沉睡粉丝", "next": "wait_30"},
        "wait_30": {"type": "wait", "days": 30, "next": "to_deep_sleep"},
        "to_deep_sleep": {"type": "move_group", "from": "沉睡粉丝", "to": "深度沉睡粉丝", "next": "end"},
        "end": {"type": "end"},
    },
}
EMAIL_LIFECYCLE: dict[str, Any] = {
    "start": "send_a",
    "steps": {
        "send_a": {"type": "send_email", "subject": "{name}，3 分钟看懂营销自动化：从线索到商机",
                   "body": "{name} 您好：\n\n这是为 {company} 准备的营销自动化入门指南……", "next": "wait_3"},
        "wait_3": {"type": "wait", "days": 3, "next": "check_open"},
        "check_open": {"type": "condition", "check": {"kind": "opened"}, "yes": "send_b", "no": "send_c"},
        "send_b": {"type": "send_email", "subject": "案例：制造业客户如何把 MQL 转化率提升 40%",
                   "body": "{name} 您好：\n\n上次的指南您已经看过了，这里是一个同行案例……", "next": "end"},
        "send_c": {"type": "send_email", "subject": "免费领取《B2B 线索评分指南》",
                   "body": "{name} 您好：\n\n也许上一封邮件被埋没了，这份评分指南可以直接下载……", "next": "end"},
        "end": {"type": "end"},
    },
}
# The webinar date is a placeholder the marketer sets in the editor; the reminders wait until fixed times.
WEBINAR_SERIES: dict[str, Any] = {
    "start": "invite",
    "steps": {
        "invite": {"type": "send_email", "subject": "直播邀请：数字化营销公开课",
                   "body": "{name} 您好：\n\n公开课将于 2026-12-10 19:30 开始，报名已确认。", "next": "wait_day_before"},
        "wait_day_before": {"type": "wait_until", "at": "2026-12-09T19:30:00+08:00", "next": "remind_day"},
        "remind_day": {"type": "send_email", "subject": "明天 19:30 直播，别错过",
                       "body": "{name} 您好：明天 19:30 见。", "next": "wait_two_hours"},
        "wait_two_hours": {"type": "wait_until", "at": "2026-12-10T17:30:00+08:00", "next": "remind_hours"},
        "remind_hours": {"type": "send_sms", "text": "【LeadLoop】{name}，直播两小时后开始，入口已发到您的邮箱。",
                         "next": "wait_after"},
        "wait_after": {"type": "wait_until", "at": "2026-12-11T10:00:00+08:00", "next": "replay"},
        "replay": {"type": "send_email", "subject": "公开课回放和课件",
                   "body": "{name} 您好：回放和课件已准备好。", "next": "end"},
        "end": {"type": "end"},
    },
    "goals": [],
}
RENURTURE: dict[str, Any] = {
    "start": "wait_30",
    "steps": {
        "wait_30": {"type": "wait", "days": 30, "next": "send_report"},
        "send_report": {"type": "send_email", "subject": "2026 行业数字化报告（附同行案例）",
                        "body": "{name} 您好：\n\n附上今年的行业报告，{company} 的同行是这样做的……", "next": "wait_14"},
        "wait_14": {"type": "wait", "days": 14, "next": "check_engaged"},
        "check_engaged": {"type": "condition", "check": {"kind": "clicked"}, "yes": "notify", "no": "end"},
        "notify": {"type": "notify", "to": "owner", "text": "退回的线索 {name}（{company}）重新活跃，请再次评估",
                   "next": "end"},
        "end": {"type": "end"},
    },
    "goals": [{"kind": "stage_is", "stage": ["mql", "sal", "sql", "opportunity", "won"]}],
}

TEMPLATES: dict[str, dict[str, Any]] = {
    "wechat_recall": {"name": "微信粉丝召回（完善信息）", "trigger": {"type": "group_enter", "group": "新关注粉丝"},
                      "definition": WECHAT_RECALL, "reentry": "never"},
    "email_lifecycle": {"name": "新线索邮件培育", "trigger": {"type": "imported", "channel": "官网"},
                        "definition": EMAIL_LIFECYCLE, "reentry": "never"},
    "webinar_series": {"name": "直播系列课提醒", "trigger": {"type": "touchpoint", "kind": "webinar_registered"},
                       "definition": WEBINAR_SERIES, "reentry": "always"},
    "renurture": {"name": "退回线索再培育",
                  "trigger": {"type": "rejected", "reasons": ["no_budget", "not_now", "cannot_reach"]},
                  "definition": RENURTURE, "reentry": "after_days", "reentry_days": 90},
}


def template(key: str) -> dict[str, Any]:
    """A deep copy of a shipped template (editing the copy never changes the template)."""
    return copy.deepcopy(TEMPLATES[key])
