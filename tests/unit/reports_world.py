"""A small database whose funnel, attribution and ROI figures are worked out by hand in the tests.

Leads (all 2026, times at 12:00 UTC = 20:00 in Shanghai, so months are the same in both):
  L1 官网, rep1, 上海: new→MQL 01-10→SAL 01-12→SQL 01-20→opportunity 02-01→won 03-01 (deal 100,000 won,
     created 02-01); touches 官网 01-05, 微信 01-09, 展会/2026 工博会 02-20.
  L2 展会/2026 工博会, rep2, 北京: new→SQL 01-20 (skips MQL and SAL)→opportunity 02-10→lost 03-10 (deal 50,000
     lost); touch 展会 01-15.
  L3 微信/春季直播, rep1, 上海: new→MQL 02-05→recycled 02-10→MQL 03-01→SAL 03-02; touches 微信 02-03, 官网 02-28.
  L4 官网, no owner, 广东: still new; touch 官网 02-10.
  L5 no source, 上海: imported directly as an SQL on 03-01 (no StageChange); no touches.
  L6 官网, invalid: MQL 01-10 — never counted.
  L7 微信, rep2, 北京: new→MQL 01-25→disqualified 01-30; touch 微信 01-20 and an email we sent (not counted).
Costs: 官网 Jan 10,000 and Feb 10,000; 展会 campaign 2026 工博会 Jan 30,000 and 展会 as a whole Feb 5,000;
  微信 campaign 春季直播 Feb 8,000 and 微信 as a whole Mar 2,000.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlmodel import Session

from db.models import Campaign, Channel, ChannelCost, Lead, Opportunity, StageChange, Touchpoint, User


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, 0, tzinfo=UTC)


@dataclass
class World:
    channels: dict[str, int]
    campaigns: dict[str, int]
    users: dict[str, int]
    leads: dict[str, int]


def build(session: Session) -> World:
    channels = {name: Channel(name=name, kind=kind) for name, kind in
                (("官网", "website"), ("展会", "tradeshow"), ("微信", "wechat"))}
    session.add_all(channels.values())
    session.flush()
    campaigns = {
        "2026 工博会": Campaign(name="2026 工博会", channel_id=channels["展会"].id),
        "春季直播": Campaign(name="春季直播", channel_id=channels["微信"].id),
    }
    users = {name: User(username=name, display_name=name, role="sales") for name in ("rep1", "rep2")}
    session.add_all([*campaigns.values(), *users.values()])
    session.flush()
    ch = {k: v.id for k, v in channels.items()}
    ca = {k: v.id for k, v in campaigns.items()}
    us = {k: v.id for k, v in users.items()}

    def lead(name: str, created: datetime, channel: str | None, campaign: str | None, owner: str | None,
             province: str, stage: str, status: str = "valid") -> Lead:
        row = Lead(name=name, created_at=created, updated_at=created, source_channel_id=ch.get(channel or ""),
                   source_campaign_id=ca.get(campaign or ""), owner_id=us.get(owner or ""), province=province,
                   stage=stage, status=status)
        session.add(row)
        return row

    leads = {
        "L1": lead("张伟", at(1, 5), "官网", None, "rep1", "上海", "won"),
        "L2": lead("王芳", at(1, 15), "展会", "2026 工博会", "rep2", "北京", "lost"),
        "L3": lead("李娜", at(2, 3), "微信", "春季直播", "rep1", "上海", "sal"),
        "L4": lead("刘洋", at(2, 10), "官网", None, None, "广东", "new"),
        "L5": lead("陈静", at(3, 1), None, None, None, "上海", "sql"),
        "L6": lead("杨磊", at(1, 8), "官网", None, None, "上海", "mql", status="invalid"),
        "L7": lead("赵敏", at(1, 20), "微信", None, "rep2", "北京", "disqualified"),
    }
    session.flush()
    ids = {k: v.id for k, v in leads.items()}
    moves = {
        "L1": [("new", "mql", at(1, 10)), ("mql", "sal", at(1, 12)), ("sal", "sql", at(1, 20)),
               ("sql", "opportunity", at(2, 1)), ("opportunity", "won", at(3, 1))],
        "L2": [("new", "sql", at(1, 20)), ("sql", "opportunity", at(2, 10)), ("opportunity", "lost", at(3, 10))],
        "L3": [("new", "mql", at(2, 5)), ("mql", "recycled", at(2, 10)), ("recycled", "mql", at(3, 1)),
               ("mql", "sal", at(3, 2))],
        "L6": [("new", "mql", at(1, 10))],
        "L7": [("new", "mql", at(1, 25)), ("mql", "disqualified", at(1, 30))],
    }
    for key, steps in moves.items():
        for from_stage, to_stage, when in steps:
            session.add(StageChange(lead_id=ids[key], from_stage=from_stage, to_stage=to_stage, at=when))
    session.add(Opportunity(lead_id=ids["L1"], amount=100_000, stage="won", created_at=at(2, 1), closed_at=at(3, 1)))
    session.add(Opportunity(lead_id=ids["L2"], amount=50_000, stage="lost", created_at=at(2, 10),
                            closed_at=at(3, 10)))
    touches = [
        ("L1", "官网", None, at(1, 5), "form_submit"), ("L1", "微信", None, at(1, 9), "wechat_follow"),
        ("L1", "展会", "2026 工博会", at(2, 20), "tradeshow_scan"),
        ("L2", "展会", "2026 工博会", at(1, 15), "tradeshow_scan"),
        ("L3", "微信", "春季直播", at(2, 3), "livestream_view"), ("L3", "官网", None, at(2, 28), "page_view"),
        ("L4", "官网", None, at(2, 10), "form_submit"),
        ("L6", "官网", None, at(1, 8), "form_submit"),
        ("L7", "微信", None, at(1, 20), "wechat_follow"), ("L7", "微信", None, at(1, 22), "email_sent"),
    ]
    for n, (key, channel, campaign, when, kind) in enumerate(touches):
        session.add(Touchpoint(lead_id=ids[key], kind=kind, channel_id=ch[channel], campaign_id=ca.get(campaign or ""),
                               occurred_at=when, natural_key=f"t{n}"))
    costs = [("官网", None, 1, 10_000), ("官网", None, 2, 10_000), ("展会", "2026 工博会", 1, 30_000),
             ("展会", None, 2, 5_000), ("微信", "春季直播", 2, 8_000), ("微信", None, 3, 2_000)]
    for channel, campaign, month, amount in costs:
        session.add(ChannelCost(channel_id=ch[channel], campaign_id=ca.get(campaign or ""), month=date(2026, month, 1),
                                amount=amount))
    session.commit()
    return World(channels=ch, campaigns=ca, users=us, leads=ids)
