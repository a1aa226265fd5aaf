"""Channels, campaigns with their sessions, tracking links and monthly costs."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from seed import catalog
from seed.timeline import DAY, HOUR, MINUTE
from seed.world import World

SITE = "https://demo.leadloop.cn"
ONGOING = 10**9  # last_day of a campaign without an end date


def day_to_date(day: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + int(day))


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _sessions(world: World, schedule: tuple, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(session start times, session lengths in seconds) of an event or weekly campaign."""
    tl = world.timeline
    today = tl.today
    first_hour, last_hour = catalog.SESSION_HOURS.get(kind, (9, 17))
    starts: list[int] = []
    lengths: list[int] = []
    if schedule[0] == "events":
        for offset, length in schedule[1]:
            for d in range(length):
                day = today + offset + d
                starts.append(int(tl.day_start(day)) + first_hour * HOUR)
                lengths.append(max(1, last_hour - first_hour) * HOUR)
    elif schedule[0] == "weekly":
        weekday, a, b = schedule[1], schedule[2], schedule[3]
        for day in range(today + a, today + b + 1):
            if tl.weekday(day) == weekday:
                starts.append(int(tl.day_start(day)) + first_hour * HOUR + 30 * MINUTE)
                lengths.append(max(1, last_hour - first_hour) * HOUR + HOUR)
    return np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64)


def build_channels_and_campaigns(world: World) -> None:
    tl = world.timeline
    today = tl.today
    channels = pd.DataFrame(catalog.CHANNELS)
    channels.insert(0, "id", np.arange(1, len(channels) + 1))
    world.channels = channels
    created = tl.start - 30 * DAY
    world.add("channel", {
        "id": channels["id"].to_numpy(),
        "name": channels["name"].tolist(),
        "kind": channels["kind"].tolist(),
        "description": channels["description"].tolist(),
        "import_mapping": [catalog.CHANNEL_IMPORT_MAPPINGS.get(n, {}) for n in channels["name"]],
        "active": True,
        "created_at": np.full(len(channels), created),
    })

    channel_id = dict(zip(channels["name"], channels["id"], strict=True))
    channel_kind = dict(zip(channels["name"], channels["kind"], strict=True))
    channel_convert = dict(zip(channels["name"], channels["convert"], strict=True))
    rows = []
    for index, spec in enumerate(catalog.CAMPAIGNS, start=1):
        schedule = spec["schedule"]
        kind = channel_kind[spec["channel"]]
        starts, lengths = _sessions(world, schedule, kind)
        if schedule[0] == "always":
            first_day, last_day = today - tl.days + 1, ONGOING
        elif schedule[0] == "period":
            first_day, last_day = today + schedule[1], today + schedule[2]
        elif schedule[0] == "weekly":
            first_day, last_day = today + schedule[2], today + schedule[3]
        else:
            days = [today + o for o, _ in schedule[1]] + [today + o + n - 1 for o, n in schedule[1]]
            first_day, last_day = min(days), max(days)
        past = starts <= tl.now - HOUR if len(starts) else starts.astype(bool)
        rows.append({
            "id": index,
            "name": spec["name"],
            "channel": spec["channel"],
            "channel_id": channel_id[spec["channel"]],
            "kind": kind,
            "code": spec["code"],
            "product_line": spec["product_line"],
            "utm_source": spec["utm"][0],
            "utm_medium": spec["utm"][1],
            "utm_campaign": spec["utm"][2],
            "first": spec["first"],
            "weight": spec["weight"],
            "convert": spec.get("convert", channel_convert[spec["channel"]]),
            "schedule": schedule[0],
            "first_day": first_day,
            "last_day": last_day,
            "session_starts": starts[past],
            "session_lengths": lengths[past],
            "future_sessions": int((~past).sum()) if len(starts) else 0,
        })
    campaigns = pd.DataFrame(rows)
    world.campaigns = campaigns

    world.add("campaign", {
        "id": campaigns["id"].to_numpy(),
        "name": campaigns["name"].tolist(),
        "channel_id": campaigns["channel_id"].to_numpy(),
        "utm_source": campaigns["utm_source"].tolist(),
        "utm_medium": campaigns["utm_medium"].tolist(),
        "utm_campaign": campaigns["utm_campaign"].tolist(),
        "tracking_code": campaigns["code"].tolist(),
        "product_line": campaigns["product_line"].tolist(),
        "start_date": [day_to_date(d) for d in campaigns["first_day"]],
        "end_date": [None if d == ONGOING else day_to_date(d) for d in campaigns["last_day"]],
        "budget": None,  # filled from the costs below
        "created_at": [int(tl.day_start(max(d, today - tl.days))) - 14 * DAY for d in campaigns["first_day"]],
    })
    _tracking_links(world)
    _costs(world)


def campaign_active_mask(world: World, campaign: pd.Series, days: np.ndarray) -> np.ndarray:
    return (days >= campaign["first_day"]) & (days <= campaign["last_day"])


def _tracking_links(world: World) -> None:
    campaigns = world.campaigns
    assert campaigns is not None
    codes, campaign_ids, employee_ids, urls, labels = [], [], [], [], []
    for campaign in campaigns.itertuples():
        query = f"utm_source={campaign.utm_source}&utm_medium={campaign.utm_medium}&utm_campaign={campaign.utm_campaign}"
        codes.append(campaign.code)
        campaign_ids.append(campaign.id)
        employee_ids.append(None)
        urls.append(f"{SITE}/r/{campaign.code}?{query}")
        labels.append(f"{campaign.name}（通用链接）")
        if campaign.kind in ("referral", "social", "tradeshow"):
            for user in catalog.USERS[1:]:
                code = f"{campaign.code}-{user['employee_code']}"
                codes.append(code)
                campaign_ids.append(campaign.id)
                employee_ids.append(catalog.USERS.index(user) + 1)
                urls.append(f"{SITE}/r/{code}?{query}&ref={user['employee_code']}")
                labels.append(f"{campaign.name} · {user['display_name']}")
    tl = world.timeline
    world.add("trackinglink", {
        "id": np.arange(1, len(codes) + 1),
        "code": codes,
        "campaign_id": campaign_ids,
        "employee_id": employee_ids,
        "target_url": urls,
        "label": labels,
        "created_at": np.full(len(codes), tl.start - 14 * DAY),
    })
    world.tracking_links = pd.DataFrame({"campaign_id": campaign_ids, "employee_id": employee_ids, "code": codes})


def _month_starts(world: World) -> list[date]:
    current = world.timeline.local_date(world.now).replace(day=1)
    months = []
    for back in range(11, -1, -1):
        year, month = current.year, current.month - back
        while month <= 0:
            month += 12
            year -= 1
        months.append(date(year, month, 1))
    return months


def _costs(world: World) -> None:
    campaigns, channels = world.campaigns, world.channels
    assert campaigns is not None and channels is not None
    rng = world.rng
    tl = world.timeline
    cost_range = dict(zip(channels["id"], channels["cost"], strict=True))
    months = _month_starts(world)
    month_days = [(m - date(1970, 1, 1)).days for m in months] + [tl.today + 1]
    rows: list[tuple[int, int, date, float, str]] = []
    budgets: dict[int, float] = {}
    for campaign in campaigns.itertuples():
        low, high = cost_range[campaign.channel_id]
        last = min(campaign.last_day, tl.today)
        for i, month in enumerate(months):
            first_day, next_day = month_days[i], month_days[i + 1]
            if campaign.schedule == "events":
                event_days = tl.local_day(campaign.session_starts) if len(campaign.session_starts) else []
                in_month = [d for d in np.atleast_1d(event_days) if first_day <= d < next_day]
                if not in_month:
                    continue
                amount = rng.uniform(low, high) * (0.5 + 0.25 * len(set(in_month)))
                note = "展位、搭建与差旅" if campaign.kind == "tradeshow" else "场地、嘉宾与物料"
            else:
                if next_day <= campaign.first_day or first_day > last:
                    continue
                share = (min(next_day, last + 1) - max(first_day, campaign.first_day)) / (next_day - first_day)
                amount = rng.uniform(low, high) * share * (campaign.weight / 4)
                note = {"sem": "搜索推广消耗", "referral": "推荐奖励", "email": "EDM 发送服务",
                        "livestream": "直播平台与投流", "social": "奖品与裂变工具"}.get(campaign.kind, "内容与投放")
            amount = float(round(amount / 100) * 100)
            if amount <= 0:
                continue
            rows.append((campaign.channel_id, campaign.id, month, amount, note))
            budgets[campaign.id] = budgets.get(campaign.id, 0.0) + amount
    world.add("channelcost", {
        "id": np.arange(1, len(rows) + 1),
        "channel_id": [r[0] for r in rows],
        "campaign_id": [r[1] for r in rows],
        "month": [r[2] for r in rows],
        "amount": [r[3] for r in rows],
        "note": [r[4] for r in rows],
    })
    world.tables["campaign"]["budget"] = [
        float(round(budgets.get(int(cid), 0.0) * 1.1 / 1000) * 1000) or None for cid in campaigns["id"]
    ]
