"""Synthetic customer journeys drawn from a known Markov chain, for the attribution benchmark and tests.

Every journey starts in a channel, moves between channels (staying in the same one sometimes, so repeated
touches occur) and ends in a conversion or nowhere. Vectorized over all journeys: a million journeys take a
few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CHANNEL_NAMES = ("官网", "微信", "直播", "展会", "邮件", "SEM", "转介绍", "白皮书", "线下活动", "社交媒体",
                 "合作伙伴", "短信")
T0 = pd.Timestamp("2026-01-01", tz="UTC")


@dataclass
class Synthetic:
    touchpoints: pd.DataFrame  # lead_id, channel, occurred_at
    conversions: pd.DataFrame  # lead_id, converted_at, value
    channels: list[str]


def synthetic_journeys(n_journeys: int, *, n_channels: int = 8, mean_touches: float = 10.0,
                       conversion_rate: float = 0.3, seed: int = 0) -> Synthetic:
    """``n_journeys`` journeys of about ``mean_touches`` touches; about ``conversion_rate`` of them convert."""
    rng = np.random.default_rng(seed)
    channels = [CHANNEL_NAMES[i] if i < len(CHANNEL_NAMES) else f"渠道{i}" for i in range(n_channels)]
    stop = 1.0 / mean_touches  # chance to end after each touch
    # Channels differ in how often the journey ends in a conversion when it ends there.
    convert_share = np.clip(rng.uniform(0.3, 1.7, n_channels) * conversion_rate, 0.02, 0.98)
    move = rng.dirichlet(np.ones(n_channels) * 0.7, size=n_channels)
    move = 0.75 * move + 0.25 * np.eye(n_channels)  # some repeated touches of the same channel
    start = rng.dirichlet(np.ones(n_channels))

    state = rng.choice(n_channels, size=n_journeys, p=start)
    clock = rng.uniform(0, 300, n_journeys)  # days after T0
    active = np.arange(n_journeys)
    lead_parts, channel_parts, time_parts = [], [], []
    ended_at = np.zeros(n_journeys)
    converted = np.zeros(n_journeys, dtype=bool)
    cumulative = np.cumsum(move, axis=1)
    while len(active):
        lead_parts.append(active)
        channel_parts.append(state)
        time_parts.append(clock)
        ends = rng.random(len(active)) < stop
        done = active[ends]
        ended_at[done] = clock[ends]
        converted[done] = rng.random(len(done)) < convert_share[state[ends]]
        keep = ~ends
        active, state, clock = active[keep], state[keep], clock[keep]
        draw = rng.random(len(active))[:, None]
        state = np.minimum((draw > cumulative[state]).sum(axis=1), n_channels - 1)
        clock = clock + rng.exponential(2.0, len(active))
    lead = np.concatenate(lead_parts)
    code = np.concatenate(channel_parts)
    days = np.concatenate(time_parts)
    touchpoints = pd.DataFrame({
        "lead_id": lead,
        "channel": pd.Categorical.from_codes(code, categories=channels),
        "occurred_at": T0 + pd.to_timedelta(days, unit="D"),
    })
    winners = np.flatnonzero(converted)
    conversions = pd.DataFrame({
        "lead_id": winners,
        "converted_at": T0 + pd.to_timedelta(ended_at[winners] + 0.5, unit="D"),
        "value": np.round(rng.lognormal(11, 0.8, len(winners)), -2),
    })
    return Synthetic(touchpoints=touchpoints, conversions=conversions, channels=channels)


def path_rows(data: Synthetic, sep: str = " > ") -> pd.DataFrame:
    """One row per journey as ChannelAttribution takes it: path string, conversion 0/1, null 0/1, value."""
    touches = data.touchpoints.sort_values(["lead_id", "occurred_at"], kind="stable")
    leads = touches["lead_id"].to_numpy()
    names = touches["channel"].astype(str).to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, leads[1:] != leads[:-1]])
    bounds = np.r_[starts, len(leads)]
    paths = pd.Series([sep.join(names[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
                      index=leads[starts])
    converted = pd.Series(0, index=paths.index)
    value = pd.Series(0.0, index=paths.index)
    winners = data.conversions.set_index("lead_id")
    converted.loc[winners.index] = 1
    value.loc[winners.index] = winners["value"]
    return pd.DataFrame({"path": paths.to_numpy(), "conversions": converted.to_numpy(),
                         "nulls": 1 - converted.to_numpy(), "value": value.to_numpy()})
