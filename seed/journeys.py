"""Touchpoints: a year of journeys, about ten touches a lead.

The first touch is the source (a form, a scan at the booth, a follow on WeChat …) at the moment the lead was
created. Then come newsletters with opens and clicks, page views, webinars (registered, then attended in a later
session), livestreams, events; leads that became MQLs show more — and more decisive — activity before the hand-off
(a pricing page, a demo request). Events land on real sessions of the campaigns, newsletters on their send days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seed.timeline import DAY, HOUR, MINUTE
from seed.world import World

KINDS = [
    "form_submit", "webinar_registered", "webinar_attended", "livestream_view", "tradeshow_scan",
    "whitepaper_download", "email_sent", "email_open", "email_click", "page_view", "pricing_view", "demo_request",
    "wechat_follow", "wechat_message", "referral", "sem_click", "event_attended", "imported", "registered",
]
K = {kind: code for code, kind in enumerate(KINDS)}

# Primary activity mix: (kind, weight for leads that stay early, weight for leads that move on).
MIX = [
    ("email_sent", 36, 28), ("page_view", 22, 22), ("whitepaper_download", 5, 7), ("webinar_registered", 5, 6),
    ("webinar_attended", 1, 3), ("livestream_view", 5, 6), ("pricing_view", 2, 6), ("demo_request", 0.4, 1.5),
    ("event_attended", 1.5, 3), ("tradeshow_scan", 1, 1.5), ("sem_click", 8, 6), ("form_submit", 4, 4),
    ("wechat_follow", 3, 2),
]
PUSH = [("pricing_view", 35), ("demo_request", 30), ("webinar_attended", 20), ("whitepaper_download", 15)]
SUPPORT = [("pricing_view", 25), ("webinar_attended", 25), ("whitepaper_download", 20), ("livestream_view", 15),
           ("event_attended", 15)]

PAGES = ["/", "/product/marketing-cloud", "/product/data-platform", "/product/service-desk", "/cases",
         "/cases/manufacturing", "/blog/lead-scoring", "/blog/mql-sla", "/about", "/solutions/retail"]
ASSETS = ["《2026 B2B 营销自动化白皮书》", "《制造业数字化营销指南》", "《线索评分实战手册》"]
KEYWORDS = ["营销自动化", "线索管理系统", "CDP 数据平台", "智能客服", "SCRM", "私域运营工具", "B2B 获客"]
_MINUTES = [{"minutes": m} for m in range(0, 181)]
_PAGE_PROPS = [{"url": p} for p in PAGES]
_PRICING = {"url": "/pricing"}
_ASSET_PROPS = [{"asset": a} for a in ASSETS]
_KEYWORD_PROPS = [{"keyword": k} for k in KEYWORDS]
_FORM = {"form": "免费试用"}
_DEMO = {"form": "预约演示"}
_EMPTY: dict = {}


def touches(lead: np.ndarray, t: np.ndarray, kind: np.ndarray | int, *, channel: np.ndarray | int = 0,
            campaign: np.ndarray | int = 0, props: object = None, batch: np.ndarray | int = 0) -> pd.DataFrame:
    """A block of touchpoints (channel/campaign 0 = decided later from the kind)."""
    n = len(lead)
    kinds = np.broadcast_to(np.asarray(kind), (n,)).astype(np.int64)
    if props is None:
        props_array = np.full(n, None, dtype=object)
    elif isinstance(props, np.ndarray):
        props_array = props
    else:
        props_array = np.empty(n, dtype=object)
        props_array[:] = [props] * n
    return pd.DataFrame({
        "lead": np.asarray(lead, dtype=np.int64), "t": np.asarray(t, dtype=np.int64), "kind": kinds,
        "channel_id": np.broadcast_to(np.asarray(channel), (n,)).astype(np.int64),
        "campaign_id": np.broadcast_to(np.asarray(campaign), (n,)).astype(np.int64),
        "props": props_array, "batch": np.broadcast_to(np.asarray(batch), (n,)).astype(np.int64),
    })


class _Sessions:
    """All sessions of one channel's campaigns, sorted, for snapping activity onto them."""

    def __init__(self, world: World, channel_kind: str, *, weekly_only: bool = False) -> None:
        campaigns = world.campaigns
        assert campaigns is not None
        starts, lengths, ids = [], [], []
        for campaign in campaigns.itertuples():
            if campaign.kind != channel_kind or (weekly_only and campaign.schedule != "weekly"):
                continue
            starts.append(campaign.session_starts)
            lengths.append(campaign.session_lengths)
            ids.append(np.full(len(campaign.session_starts), campaign.id))
        self.starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        order = np.argsort(self.starts, kind="stable")
        self.starts = self.starts[order]
        self.lengths = (np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64))[order]
        self.campaigns = (np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64))[order]

    def before(self, t: np.ndarray) -> np.ndarray:
        """Index of the last session that started at or before ``t`` (-1 if none)."""
        return np.searchsorted(self.starts, t, side="right") - 1

    def after(self, t: np.ndarray) -> np.ndarray:
        """Index of the first session that starts after ``t`` (len if none)."""
        return np.searchsorted(self.starts, t, side="right")


def _mix(world: World, n: int, column: int) -> np.ndarray:
    codes = np.array([K[k] for k, _, _ in MIX])
    return codes[world.weighted([row[column] for row in MIX], n)]


def build_touchpoints(world: World) -> None:
    leads, campaigns, channels = world.leads, world.campaigns, world.channels
    assert leads is not None and campaigns is not None and channels is not None
    rng = world.rng
    now = world.now
    n = len(leads)
    created = leads["created"].to_numpy(dtype=np.int64)
    valid = (leads["status"] == "valid").to_numpy()
    t_mql = leads["t_mql"].to_numpy(dtype=np.int64)
    t_mql2 = leads["t_mql2"].to_numpy(dtype=np.int64)
    stage = leads["stage"].to_numpy(dtype=object)
    has_email = leads["email"].notna().to_numpy()
    silent_fan = (leads["is_fan"] & ~leads["fan_registers"]).to_numpy()
    channel_id = dict(zip(channels["name"], channels["id"], strict=True))
    campaign_id = dict(zip(campaigns["name"], campaigns["id"], strict=True))
    blocks: list[pd.DataFrame] = []

    # -- the first touch: the source -------------------------------------------------------------------------------
    first_kind = leads["first_kind"].map(K).to_numpy(dtype=np.int64)
    first_props = props_for(first_kind, rng)
    blocks.append(touches(np.arange(n), created, first_kind, channel=leads["channel_id"].to_numpy(),
                          campaign=leads["campaign_id"].to_numpy(), props=first_props))

    # -- everyday activity -------------------------------------------------------------------------------------------
    engaged = t_mql > 0
    went_far = np.isin(stage, ["sql", "opportunity", "won", "lost"])
    rate = np.where(went_far, 15.0, np.where(engaged, 12.5, 7.0))
    rate = np.where(silent_fan, 2.0, rate)
    rate = np.where(valid, rate, 0.3)
    age_days = (now - created) / DAY
    rate = rate * np.minimum(1.0, (age_days + 5) / 90) ** 0.7
    end = np.full(n, now, dtype=np.int64)
    finished = np.isin(stage, ["disqualified"])
    end[finished] = np.minimum(leads["stage_changed_at"].to_numpy(dtype=np.int64)[finished] + 20 * DAY, now)
    end[~valid] = np.minimum(created[~valid] + 2 * DAY, now)
    count = rng.poisson(rate)
    lead = np.repeat(np.arange(n), count)
    start = created[lead] + 5 * MINUTE
    span = np.maximum(end[lead] - start, MINUTE)
    t = start + (rng.random(len(lead)) * span).astype(np.int64)
    # A third of an MQL's activity clusters in the weeks before the hand-off.
    near = engaged[lead] & (rng.random(len(lead)) < 0.33)
    lo = np.maximum(created[lead[near]] + 5 * MINUTE, t_mql[lead[near]] - 21 * DAY)
    t[near] = lo + (rng.random(int(near.sum())) * np.maximum(t_mql[lead[near]] - lo, MINUTE)).astype(np.int64)
    kind = np.where(engaged[lead], _mix(world, len(lead), 2), _mix(world, len(lead), 1))
    blocks.append(touches(lead, t, kind))

    # -- what pushed MQLs over the line ------------------------------------------------------------------------------
    for moment in (t_mql, t_mql2):
        members = np.flatnonzero((moment > 0) & (leads["first_kind"].to_numpy() != "demo_request"))
        push_codes = np.array([K[k] for k, _ in PUSH])
        blocks.append(touches(members, moment[members] - rng.integers(2 * MINUTE, 3 * HOUR, size=len(members)),
                              push_codes[world.weighted([w for _, w in PUSH], len(members))]))
        support = np.repeat(members, 2)
        lo = np.maximum(created[support] + 10 * MINUTE, moment[support] - 30 * DAY)
        t_support = lo + (rng.random(len(support)) * np.maximum(moment[support] - 3 * HOUR - lo, MINUTE)).astype(np.int64)
        support_codes = np.array([K[k] for k, _ in SUPPORT])
        blocks.append(touches(support, t_support, support_codes[world.weighted([w for _, w in SUPPORT], len(support))]))

    blocks.extend(world.extra_touchpoints)
    frame = pd.concat(blocks, ignore_index=True)
    frame = _snap_to_sessions(world, frame, created)
    frame = _follow_ups(world, frame, created, has_email)
    frame = _place(world, frame, channel_id, campaign_id, has_email)
    lead = frame["lead"].to_numpy()
    t = frame["t"].to_numpy()
    kind = frame["kind"].to_numpy()
    keep = np.flatnonzero((t >= created[lead]) & (t <= now))
    # Sort by (lead, time, kind) — stable, so the first of equal touches wins — and drop exact repeats.
    order = keep[np.lexsort((kind[keep], t[keep], lead[keep]))]
    lead, t, kind = lead[order], t[order], kind[order]
    repeat = np.zeros(len(order), dtype=bool)
    repeat[1:] = (lead[1:] == lead[:-1]) & (t[1:] == t[:-1]) & (kind[1:] == kind[:-1])
    order = order[~repeat]
    frame = frame.iloc[order].reset_index(drop=True)
    lead = frame["lead"].to_numpy()
    starts = np.flatnonzero(np.r_[True, lead[1:] != lead[:-1]])
    frame["seq"] = np.arange(len(lead)) - np.repeat(starts, np.diff(np.r_[starts, len(lead)]))
    frame["id"] = np.arange(1, len(frame) + 1)
    world.touchpoints = frame

    last = np.full(n, -1, dtype=np.int64)
    ends = np.r_[starts[1:], len(lead)] - 1
    last[lead[ends]] = frame["t"].to_numpy()[ends]  # sorted by time within a lead: the last row is the latest
    leads["last_activity_at"] = last


def _array(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


_MINUTES_ARRAY = _array(_MINUTES)
_PAGE_ARRAY = _array(_PAGE_PROPS)
_ASSET_ARRAY = _array(_ASSET_PROPS)
_KEYWORD_ARRAY = _array(_KEYWORD_PROPS)


def props_for(kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Properties by kind (shared dict objects, so they serialize once): minutes watched, page, asset, keyword."""
    kinds = np.asarray(kinds)
    out = np.empty(len(kinds), dtype=object)
    out[:] = [_EMPTY] * len(kinds)
    rows = np.flatnonzero(np.isin(kinds, [K["webinar_attended"], K["livestream_view"]]))
    out[rows] = _MINUTES_ARRAY[np.clip(rng.gamma(2.0, 18.0, len(rows)), 1, 180).astype(np.int64)]
    for code, table in ((K["page_view"], _PAGE_ARRAY), (K["whitepaper_download"], _ASSET_ARRAY),
                        (K["sem_click"], _KEYWORD_ARRAY)):
        rows = np.flatnonzero(kinds == code)
        out[rows] = table[rng.integers(len(table), size=len(rows))]
    for code, value in ((K["pricing_view"], _PRICING), (K["form_submit"], _FORM), (K["demo_request"], _DEMO)):
        rows = np.flatnonzero(kinds == code)
        out[rows] = _array([value] * len(rows))
    return out


def _snap_to_sessions(world: World, frame: pd.DataFrame, created: np.ndarray) -> pd.DataFrame:
    """Webinars, livestreams, tradeshows, events and newsletters happen when their sessions did."""
    rng = world.rng
    unsourced = (frame["campaign_id"] == 0).to_numpy()
    t = frame["t"].to_numpy().copy()
    kind = frame["kind"].to_numpy().copy()
    campaign = frame["campaign_id"].to_numpy().copy()
    lead = frame["lead"].to_numpy()
    rules = [
        ("webinar_attended", _Sessions(world, "livestream", weekly_only=True), HOUR),
        ("livestream_view", _Sessions(world, "livestream"), HOUR),
        ("tradeshow_scan", _Sessions(world, "tradeshow"), None),
        ("event_attended", _Sessions(world, "event"), None),
        ("email_sent", _Sessions(world, "email"), 5 * MINUTE),
    ]
    for name, sessions, spread in rules:
        rows = np.flatnonzero(unsourced & (kind == K[name]))
        if not len(rows) or not len(sessions.starts):
            kind[rows] = K["page_view"]
            continue
        j = sessions.before(t[rows])
        ok = j >= 0
        jj = np.where(ok, j, 0)
        width = sessions.lengths[jj] if spread is None else np.full(len(rows), spread)
        snapped = sessions.starts[jj] + (rng.random(len(rows)) * width).astype(np.int64)
        snapped = np.minimum(snapped, t[rows])
        ok &= snapped >= created[lead[rows]]
        t[rows[ok]] = snapped[ok]
        campaign[rows[ok]] = sessions.campaigns[jj[ok]]
        kind[rows[~ok]] = K["page_view"]
    frame = frame.assign(t=t, kind=kind, campaign_id=campaign)
    # Only one follow and one registration per person.
    once = frame["kind"].isin([K["wechat_follow"], K["registered"]]) & frame.duplicated(["lead", "kind"])
    frame.loc[once, "kind"] = K["page_view"]
    return frame


def _follow_ups(world: World, frame: pd.DataFrame, created: np.ndarray, has_email: np.ndarray) -> pd.DataFrame:
    """Opens and clicks after sends, attendance after registrations, registrations before attendance."""
    rng = world.rng
    now = world.now
    blocks = [frame]
    lead = frame["lead"].to_numpy()
    kind = frame["kind"].to_numpy()
    t = frame["t"].to_numpy()
    campaign = frame["campaign_id"].to_numpy()
    channel = frame["channel_id"].to_numpy()
    engaged = world.leads["t_mql"].to_numpy() > 0  # type: ignore[index]

    # Workflow emails (campaign -1) come with their own opens.
    sent = np.flatnonzero((kind == K["email_sent"]) & has_email[lead] & (campaign >= 0))
    opened = sent[rng.random(len(sent)) < np.where(engaged[lead[sent]], 0.45, 0.3)]
    t_open = t[opened] + np.minimum(rng.exponential(6 * HOUR, len(opened)), 3 * DAY).astype(np.int64) + MINUTE
    blocks.append(touches(lead[opened], t_open, K["email_open"], channel=channel[opened], campaign=campaign[opened]))
    clicked = rng.random(len(opened)) < 0.3
    blocks.append(touches(lead[opened[clicked]], t_open[clicked] + rng.integers(10, 20 * MINUTE, size=int(clicked.sum())),
                          K["email_click"], channel=channel[opened[clicked]], campaign=campaign[opened[clicked]]))

    series = _Sessions(world, "livestream", weekly_only=True)
    registered = np.flatnonzero(kind == K["webinar_registered"])
    if len(series.starts):
        j = series.after(t[registered])
        ok = (j < len(series.starts)) & (rng.random(len(registered)) < 0.45)
        jj = np.where(ok, j, 0)
        t_attend = series.starts[jj] + rng.integers(0, HOUR, size=len(registered))
        ok &= t_attend <= now
        rows = registered[ok]
        blocks.append(touches(lead[rows], t_attend[ok], K["webinar_attended"], campaign=series.campaigns[jj[ok]],
                              props=props_for(np.full(len(rows), K["webinar_attended"]), rng)))
        frame.loc[registered, "campaign_id"] = np.where(j < len(series.starts), series.campaigns[np.minimum(
            j, len(series.starts) - 1)], campaign[registered])
    attended = np.flatnonzero(kind == K["webinar_attended"])
    t_reg = t[attended] - rng.integers(HOUR, 6 * DAY, size=len(attended))
    ok = t_reg >= created[lead[attended]] + MINUTE
    blocks.append(touches(lead[attended[ok]], t_reg[ok], K["webinar_registered"], campaign=campaign[attended[ok]]))
    return pd.concat(blocks, ignore_index=True)


def _place(world: World, frame: pd.DataFrame, channel_id: dict[str, int], campaign_id: dict[str, int],
           has_email: np.ndarray) -> pd.DataFrame:
    """Channel and campaign for touches that do not have them yet; properties by kind."""
    rng = world.rng
    campaigns = world.campaigns
    assert campaigns is not None
    kind = frame["kind"].to_numpy().copy()
    lead = frame["lead"].to_numpy()
    # No email address, no emails.
    no_mail = np.isin(kind, [K["email_sent"], K["email_open"], K["email_click"]]) & ~has_email[lead]
    kind[no_mail] = K["page_view"]
    channel = frame["channel_id"].to_numpy().copy()
    campaign = frame["campaign_id"].to_numpy().copy()
    kind_channel = {
        "livestream": ["webinar_registered", "webinar_attended", "livestream_view"],
        "tradeshow": ["tradeshow_scan"], "event": ["event_attended"],
        "email": ["email_sent", "email_open", "email_click"],
        "website": ["page_view", "pricing_view", "form_submit", "whitepaper_download", "demo_request"],
        "wechat": ["wechat_follow", "registered", "wechat_message"], "sem": ["sem_click"],
        "referral": ["referral"],
    }
    channels = world.channels
    assert channels is not None
    by_kind = dict(zip(channels["kind"], channels["id"], strict=True))
    for channel_kind, kinds in kind_channel.items():
        rows = (channel == 0) & np.isin(kind, [K[k] for k in kinds])
        channel[rows] = by_kind[channel_kind]
    fixed = {"form_submit": "官网-免费试用", "whitepaper_download": "官网-白皮书下载", "demo_request": "官网-产品演示预约",
             "wechat_follow": "公众号-关注有礼"}
    for name, campaign_name in fixed.items():
        rows = (campaign == 0) & (kind == K[name])
        campaign[rows] = campaign_id[campaign_name]
    # Search clicks: one of the SEM campaigns running that day (the always-on brand campaign otherwise).
    sem = np.flatnonzero((campaign == 0) & (kind == K["sem_click"]))
    sem_campaigns = campaigns[campaigns["kind"] == "sem"].reset_index(drop=True)
    pick = rng.integers(len(sem_campaigns), size=len(sem))
    day = world.timeline.local_day(frame["t"].to_numpy()[sem])
    active = (day >= sem_campaigns["first_day"].to_numpy()[pick]) & (day <= sem_campaigns["last_day"].to_numpy()[pick])
    campaign[sem] = np.where(active, sem_campaigns["id"].to_numpy()[pick], sem_campaigns["id"].iat[0])
    props = frame["props"].to_numpy().copy()
    missing = np.flatnonzero(pd.isna(props))
    props[missing] = props_for(kind[missing], rng)
    return frame.assign(kind=kind, channel_id=channel, campaign_id=campaign, props=props)
