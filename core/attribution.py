"""Multi-touch attribution: which channels (or campaigns) earn the credit for a conversion.

``attribute(touchpoints, conversions, model, **params)`` is the one entry point; every model works on the same
journeys, built once per call (``attribute_all`` builds them once for several models):

* ``touchpoints``: columns ``lead_id``, ``channel`` (or the column named by ``by``), ``occurred_at``.
* ``conversions``: columns ``lead_id``, ``converted_at``, ``value``; a lead absent from it did not convert.
  Optional columns ``lead_created_at`` and ``opportunity_created_at`` mark the W-shaped milestones.
* A conversion's journey is the lead's touches at or before ``converted_at`` (and, with ``lookback_days``, no
  older than that many days before it), in time order; touches at the same instant keep their input order.
* The result is indexed by channel with ``conversions`` (fractional credit) and ``value`` (credit × conversion
  value). Credits of every model add up to the number of conversions and to their total value: a conversion
  without any touch in its window is credited to the row ``UNATTRIBUTED``.

The models and where their definitions come from
------------------------------------------------
Rule-based models give each touch of a converting journey a weight; the weights of a journey add up to 1 and a
channel's credit is the sum of its touches' weights (a channel seen twice in three touches gets 2/3 under
``linear``). Sources: Google Analytics "Attribution model comparison" (first/last interaction, linear, time
decay with a 7-day half-life, position-based 40/20/40) and Marketo Measure (Bizible) "Attribution models"
(W-shaped: first touch, lead creation, opportunity creation).

* ``first_touch``: the first touch gets 1.
* ``last_touch``: the last touch at or before the conversion gets 1.
* ``linear``: each of the n touches gets 1/n.
* ``time_decay``: touch i gets 2^(−Δtᵢ / h), normalised over the journey, where Δtᵢ is the time from the touch
  to the conversion measured continuously (not in whole days) and h is ``half_life_days`` (default 7: a touch a
  week before the conversion counts half as much as one at the conversion).
* ``u_shaped`` (position-based): first touch 40 %, last touch 40 %, 20 % spread evenly over the touches in
  between. Coinciding positions add up and, when there is no touch in between, the position weights are scaled
  to sum to 1: one touch gets 100 %, two touches 50/50.
* ``w_shaped``: three milestones get 30 % each — the first touch, the lead-creation touch (the last touch at or
  before ``lead_created_at``; the first touch when no touch is that early or the column is absent) and the
  opportunity-creation touch (the last touch at or before ``opportunity_created_at``; for a conversion without
  an opportunity time, e.g. an MQL, the last touch before the conversion stands in). The other 10 % is spread
  evenly over the touches that are no milestone. Milestones that fall on the same touch add up (first touch =
  lead-creation touch → 60 %); when every touch is a milestone the milestone weights are scaled to sum to 1
  (one touch → 100 %; two touches with first = lead creation → 2/3 and 1/3; three distinct → 1/3 each).

Data-driven models:

* ``markov`` — first-order Markov chain with removal effects (Anderl, Becker, von Wangenheim & Schumann 2016,
  "Mapping the customer journey: lessons learned from graph-based online attribution modeling", IJRM 33(3);
  the model of the R/Python package ChannelAttribution). Each journey is a path
  (start) → c₁ → … → cₖ → (conversion), with repeated consecutive touches of one channel collapsed into one
  state; journeys of leads that did not convert end in (null). Transition probabilities are the observed
  transition counts normalised per state. The conversion probability p = P(start ⇒ conversion) and, for each
  channel c, the probability p₋c when c is removed (every transition into c goes to null) are computed
  exactly from the absorbing chain, not by simulation: with M = (I − Q)⁻¹ over the transient states,
  x = M·r (r = one-step conversion probabilities), p = x_start and
  p₋c = x_start − M[start, c]·x_c / M[c, c] (a rank-one update of I − Q: "converting without ever visiting c"
  = converting minus reaching c times converting from c). The removal effect is RE_c = 1 − p₋c / p and the
  credit is RE_c / Σ RE × conversions. Value uses the same chain with the reward of the step c → conversion
  being the mean value of the conversions whose last touch was c (ChannelAttribution's convention), so value
  credit = RE^value_c / Σ RE^value × total value.
* ``shapley`` — the Shapley value (Shapley 1953) of a cooperative game whose players are channels, with
  journeys reduced to their set of channels (order and repeats ignored). Coalition worth:
  v(S) = the conversions (or value) of converting journeys whose channel set is a subset of S — what the
  channels in S brought in without help from any other channel. v(∅) = 0 and v(all channels) = all touched
  conversions, so the values add up to the conversions exactly and are never negative. Its Harsanyi dividends
  are the conversions of each exact channel set, which gives the closed form φᵢ = Σ_{T ∋ i} conv(T) / |T|
  (Zhao et al. 2018, "Shapley value methods for attribution modeling in online advertising", the "simplified
  Shapley value"); ``shapley_by_enumeration`` computes the same values from the textbook formula over all
  2ⁿ coalitions and the tests check the two agree. Non-converting journeys do not enter this worth (the
  Markov model is the one that weighs them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import case, func, literal, or_, select
from sqlmodel import Session

from core.auth import Actor, lead_scope, require
from core.errors import ValidationError
from core.funnel import FUNNEL_STAGES, ReportFilter, filtered_leads, lead_conditions
from core.report_data import (
    DEFAULT_EXCLUDED_KINDS,
    ReportData,
    raw_time,
    read_frame,
)
from db.models import Campaign, Channel, Lead, Opportunity, StageChange, Touchpoint, User

RULE_MODELS: tuple[str, ...] = ("first_touch", "last_touch", "linear", "time_decay", "u_shaped", "w_shaped")
MODELS: tuple[str, ...] = (*RULE_MODELS, "markov", "shapley")
CONVERSIONS: tuple[str, ...] = ("mql", "sql", "opportunity", "won")
UNATTRIBUTED = "(none)"
DEFAULT_HALF_LIFE_DAYS = 7.0
_DAY = 86_400.0


class AttributionError(ValidationError):
    key = "attribution.bad_input"


# ---------------------------------------------------------------------------------------------------------------
# Journeys: the touches of each conversion, sorted, as flat numpy arrays
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Journeys:
    """Flat arrays over the touches of converting journeys (sorted by journey, then time) plus the null paths.

    ``labels[code]`` is the channel of a code. Arrays named ``t_*`` have one entry per touch, ``j_*`` one per
    converting journey that has at least one touch.
    """

    labels: np.ndarray
    t_journey: np.ndarray  # journey index of each touch (0..n_journeys-1), non-decreasing
    t_code: np.ndarray
    t_seconds: np.ndarray  # epoch seconds
    t_pos: np.ndarray  # position in its journey, 0-based
    t_len: np.ndarray  # length of its journey
    j_value: np.ndarray
    j_converted: np.ndarray  # epoch seconds of the conversion
    j_lead_created: np.ndarray  # epoch seconds, NaN when unknown
    j_opportunity_created: np.ndarray  # epoch seconds, NaN when unknown
    j_key: np.ndarray | None  # optional grouping key of each journey (e.g. the conversion month)
    null_journey: np.ndarray  # journeys of leads that did not convert (Markov), sorted like t_*
    null_code: np.ndarray
    untouched_conversions: float
    untouched_value: float
    untouched_keys: pd.Series | None  # grouping keys of conversions without touches (count, value per key)

    @property
    def n_channels(self) -> int:
        return len(self.labels)

    @property
    def n_journeys(self) -> int:
        return len(self.j_value)


def _epoch_seconds(values: pd.Series) -> np.ndarray:
    """Seconds since the epoch as float64 (NaN for missing); naive times are taken as UTC."""
    stamps = pd.to_datetime(values, utc=True)
    out = np.full(len(stamps), np.nan)
    mask = stamps.notna().to_numpy()
    if mask.any():
        ns = stamps[mask].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        out[mask] = ns.astype("int64") / 1e9
    return out


def _group_starts(sorted_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each run of equal values in a sorted array."""
    if len(sorted_ids) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    lengths = np.diff(np.r_[starts, len(sorted_ids)])
    return starts, lengths


def _check_columns(frame: pd.DataFrame, needed: Iterable[str], what: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise AttributionError(f"{what} lacks the columns {', '.join(missing)}.", key="attribution.missing_columns",
                               what=what, columns=", ".join(missing))


def build_journeys(
    touchpoints: pd.DataFrame,
    conversions: pd.DataFrame,
    *,
    by: str = "channel",
    lookback_days: float | None = None,
    key: str | None = None,
) -> Journeys:
    """Cut each lead's touches into the journey of each of its conversions; the rest become null paths."""
    _check_columns(touchpoints, ["lead_id", by, "occurred_at"], "touchpoints")
    _check_columns(conversions, ["lead_id", "converted_at"], "conversions")
    if key is not None:
        _check_columns(conversions, [key], "conversions")
    touches = touchpoints[touchpoints[by].notna()]
    codes, labels = pd.factorize(touches[by], sort=True)
    labels = np.asarray(labels, dtype=object)
    tp_lead = touches["lead_id"].to_numpy(dtype=np.int64)
    tp_seconds = _epoch_seconds(touches["occurred_at"])
    tp_order = np.arange(len(touches), dtype=np.int64)

    n_conv = len(conversions)
    c_lead = conversions["lead_id"].to_numpy(dtype=np.int64)
    c_seconds = _epoch_seconds(conversions["converted_at"])
    c_value = (conversions["value"].fillna(0).to_numpy(dtype=float) if "value" in conversions
               else np.zeros(n_conv))
    c_lead_created = (_epoch_seconds(conversions["lead_created_at"]) if "lead_created_at" in conversions
                      else np.full(n_conv, np.nan))
    c_opp_created = (_epoch_seconds(conversions["opportunity_created_at"])
                     if "opportunity_created_at" in conversions else np.full(n_conv, np.nan))
    c_key = conversions[key].to_numpy() if key is not None else None

    # Pair every touch with every conversion of its lead (usually one): conversions sorted by lead, then a
    # searchsorted range per touch — no pandas merge, so a million touches stay cheap.
    conv_order = np.argsort(c_lead, kind="stable")
    sorted_leads = c_lead[conv_order]
    left = np.searchsorted(sorted_leads, tp_lead, side="left")
    right = np.searchsorted(sorted_leads, tp_lead, side="right")
    matches = right - left
    converting = matches > 0
    if matches.max(initial=0) <= 1:
        touch_idx = np.flatnonzero(converting)
        journey = conv_order[left[touch_idx]]
    else:
        touch_idx = np.repeat(np.arange(len(tp_lead)), matches)
        offsets = np.arange(len(touch_idx)) - np.repeat(np.cumsum(matches) - matches, matches)
        journey = conv_order[np.repeat(left, matches) + offsets]
    seconds = tp_seconds[touch_idx]
    window_end = c_seconds[journey]
    keep = seconds <= window_end
    if lookback_days is not None:
        keep &= seconds >= window_end - float(lookback_days) * _DAY
    touch_idx, journey, seconds = touch_idx[keep], journey[keep], seconds[keep]
    order = np.lexsort((tp_order[touch_idx], seconds, journey))
    touch_idx, journey, seconds = touch_idx[order], journey[order], seconds[order]

    # Renumber journeys that have touches 0..n-1; conversions without touches are counted apart.
    touched = np.zeros(n_conv, dtype=bool)
    touched[journey] = True
    renumber = np.cumsum(touched) - 1
    t_journey = renumber[journey]
    starts, lengths = _group_starts(t_journey)
    t_pos = np.arange(len(t_journey)) - np.repeat(starts, lengths)
    t_len = np.repeat(lengths, lengths)
    untouched = ~touched
    untouched_keys = None
    if c_key is not None:
        untouched_keys = pd.DataFrame({"key": c_key[untouched], "value": c_value[untouched]})

    # Null paths: touches of leads without any conversion, lookback counted back from their last touch.
    null_idx = np.flatnonzero(~converting)
    null_lead = tp_lead[null_idx]
    null_seconds = tp_seconds[null_idx]
    order = np.lexsort((tp_order[null_idx], null_seconds, null_lead))
    null_idx, null_lead, null_seconds = null_idx[order], null_lead[order], null_seconds[order]
    if lookback_days is not None and len(null_idx):
        n_starts, n_lengths = _group_starts(null_lead)
        last = np.repeat(null_seconds[n_starts + n_lengths - 1], n_lengths)
        keep = null_seconds >= last - float(lookback_days) * _DAY
        null_idx, null_lead = null_idx[keep], null_lead[keep]
    return Journeys(
        labels=labels,
        t_journey=t_journey,
        t_code=codes[touch_idx].astype(np.int64),
        t_seconds=seconds,
        t_pos=t_pos,
        t_len=t_len,
        j_value=c_value[touched],
        j_converted=c_seconds[touched],
        j_lead_created=c_lead_created[touched],
        j_opportunity_created=c_opp_created[touched],
        j_key=c_key[touched] if c_key is not None else None,
        null_journey=null_lead,
        null_code=codes[null_idx].astype(np.int64),
        untouched_conversions=float(untouched.sum()),
        untouched_value=float(c_value[untouched].sum()),
        untouched_keys=untouched_keys,
    )


# ---------------------------------------------------------------------------------------------------------------
# Rule-based models: one weight per touch, summing to 1 per journey
# ---------------------------------------------------------------------------------------------------------------
def _weights_first(j: Journeys, **_: Any) -> np.ndarray:
    return (j.t_pos == 0).astype(float)


def _weights_last(j: Journeys, **_: Any) -> np.ndarray:
    return (j.t_pos == j.t_len - 1).astype(float)


def _weights_linear(j: Journeys, **_: Any) -> np.ndarray:
    return 1.0 / j.t_len


def _weights_time_decay(j: Journeys, *, half_life_days: float = DEFAULT_HALF_LIFE_DAYS, **_: Any) -> np.ndarray:
    if not half_life_days or half_life_days <= 0:
        raise AttributionError("The half-life must be more than zero days.", key="attribution.half_life_invalid")
    age_days = (j.j_converted[j.t_journey] - j.t_seconds) / _DAY
    # Relative to the newest touch of each journey, so exp2 never underflows for very old touches.
    newest = np.full(j.n_journeys, -np.inf)
    np.maximum.at(newest, j.t_journey, -age_days)
    raw = np.exp2((-age_days - newest[j.t_journey]) / float(half_life_days))
    totals = np.bincount(j.t_journey, weights=raw, minlength=j.n_journeys)
    return raw / totals[j.t_journey]


def _spread(j: Journeys, milestones: list[tuple[np.ndarray, float]], rest: float) -> np.ndarray:
    """Milestone weights (adding up where milestones coincide) plus ``rest`` spread over the other touches.

    ``milestones`` holds, per milestone, the position of its touch in the journey (one entry per touch) and its
    weight. When a journey has no other touch, its milestone weights are scaled to sum to 1.
    """
    weight = np.zeros(len(j.t_pos))
    is_milestone = np.zeros(len(j.t_pos), dtype=bool)
    for where, share in milestones:
        hit = j.t_pos == where
        weight += share * hit
        is_milestone |= hit
    milestone_total = sum(share for _, share in milestones)
    n_milestones = np.bincount(j.t_journey, weights=is_milestone.astype(float), minlength=j.n_journeys)
    others = (j.t_len - n_milestones[j.t_journey]).astype(float)
    other_share = np.where(others > 0, rest / np.maximum(others, 1.0), 0.0)
    scale = np.where(others > 0, 1.0, 1.0 / milestone_total)
    return np.where(is_milestone, weight * scale, other_share)


def _weights_u_shaped(j: Journeys, **_: Any) -> np.ndarray:
    return _spread(j, [(np.zeros_like(j.t_pos), 0.4), (j.t_len - 1, 0.4)], 0.2)


def _last_position_at_or_before(j: Journeys, limit: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Per touch: the position (in its journey) of the journey's last touch at or before ``limit`` (per journey);
    ``fallback`` (per journey) where the limit is unknown or earlier than every touch."""
    at_or_before = (j.t_seconds <= limit[j.t_journey]).astype(float)
    count = np.bincount(j.t_journey, weights=at_or_before, minlength=j.n_journeys)
    position = np.where(np.isnan(limit) | (count == 0), fallback, count - 1).astype(np.int64)
    return position[j.t_journey]


def _weights_w_shaped(j: Journeys, **_: Any) -> np.ndarray:
    lengths = np.bincount(j.t_journey, minlength=j.n_journeys)
    lead_touch = _last_position_at_or_before(j, j.j_lead_created, np.zeros(j.n_journeys))
    opportunity_touch = _last_position_at_or_before(j, j.j_opportunity_created, lengths - 1)
    return _spread(j, [(np.zeros_like(j.t_pos), 0.3), (lead_touch, 0.3), (opportunity_touch, 0.3)], 0.1)


_RULE_WEIGHTS: dict[str, Callable[..., np.ndarray]] = {
    "first_touch": _weights_first,
    "last_touch": _weights_last,
    "linear": _weights_linear,
    "time_decay": _weights_time_decay,
    "u_shaped": _weights_u_shaped,
    "w_shaped": _weights_w_shaped,
}


def touch_weights(journeys: Journeys, model: str, **params: Any) -> np.ndarray:
    """The weight of each touch under a rule-based model (or Shapley: each distinct channel of a journey)."""
    if model in _RULE_WEIGHTS:
        return _RULE_WEIGHTS[model](journeys, **params)
    if model == "shapley":
        return _weights_shapley(journeys)
    raise AttributionError(f"Unknown attribution model: {model}.", key="attribution.unknown_model", model=model)


# ---------------------------------------------------------------------------------------------------------------
# Shapley over channel sets
# ---------------------------------------------------------------------------------------------------------------
def _weights_shapley(j: Journeys) -> np.ndarray:
    """Closed form of the Shapley value for v(S) = conversions of journeys whose channel set ⊆ S.

    Each journey's conversion is split equally among its distinct channels; expressed as touch weights, the
    first touch of each distinct channel in a journey carries 1/|channels| and repeats carry 0.
    """
    n = len(j.t_code)
    if n == 0:
        return np.zeros(0)
    pair = j.t_journey * j.n_channels + j.t_code
    order = np.argsort(pair, kind="stable")
    first_of_pair = np.zeros(n, dtype=bool)
    sorted_pair = pair[order]
    first_of_pair[order] = np.r_[True, sorted_pair[1:] != sorted_pair[:-1]]
    distinct = np.bincount(j.t_journey, weights=first_of_pair.astype(float), minlength=j.n_journeys)
    return first_of_pair / distinct[j.t_journey]


def channel_sets(journeys: Journeys) -> pd.DataFrame:
    """Converting journeys reduced to channel sets: a bitmask per set with its conversions and value."""
    if journeys.n_channels > 62:
        raise AttributionError("Too many channels for coalition enumeration.", key="attribution.too_many_players",
                               n=journeys.n_channels)
    bits = np.left_shift(np.int64(1), journeys.t_code.astype(np.int64))
    masks = np.zeros(journeys.n_journeys, dtype=np.int64)
    np.bitwise_or.at(masks, journeys.t_journey, bits)
    frame = pd.DataFrame({"mask": masks, "conversions": 1.0, "value": journeys.j_value})
    return frame.groupby("mask", as_index=False).sum()


def shapley_by_enumeration(sets: pd.DataFrame, n_players: int, column: str = "conversions") -> np.ndarray:
    """Shapley values from the textbook formula over all 2ⁿ coalitions (used to check the closed form).

    φᵢ = Σ_{S ⊆ N∖{i}} |S|!(n−|S|−1)!/n! · (v(S ∪ {i}) − v(S)), with v(S) = Σ of ``column`` over the sets ⊆ S,
    computed for every S at once by a subset-sum (zeta) transform: O(n·2ⁿ).
    """
    if n_players > 24:
        raise AttributionError("Too many channels for coalition enumeration.", key="attribution.too_many_players",
                               n=n_players)
    size = 1 << n_players
    worth = np.zeros(size)
    np.add.at(worth, sets["mask"].to_numpy(dtype=np.int64), sets[column].to_numpy(dtype=float))
    for i in range(n_players):  # zeta transform: worth[S] = Σ_{T ⊆ S} dividend[T]
        worth = worth.reshape(-1, 2, 1 << i)
        worth[:, 1, :] += worth[:, 0, :]
        worth = worth.reshape(size)
    masks = np.arange(size, dtype=np.int64)
    popcount = np.zeros(size, dtype=np.int64)
    for i in range(n_players):
        popcount += (masks >> i) & 1
    coefficient = np.array([math.factorial(s) * math.factorial(n_players - s - 1) / math.factorial(n_players)
                            for s in range(n_players)])
    values = np.zeros(n_players)
    for i in range(n_players):
        without = masks[(masks >> i) & 1 == 0]
        values[i] = float(np.sum(coefficient[popcount[without]] * (worth[without | (1 << i)] - worth[without])))
    return values


# ---------------------------------------------------------------------------------------------------------------
# Markov chain with exact removal effects
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class MarkovResult:
    labels: np.ndarray
    transition: np.ndarray  # (K+3)×(K+3): start, channels…, conversion, null
    conversion_probability: float
    removal_effects: np.ndarray  # RE per channel on conversions
    removal_effects_value: np.ndarray  # RE per channel on value

    def transition_frame(self) -> pd.DataFrame:
        names = ["(start)", *[str(x) for x in self.labels], "(conversion)", "(null)"]
        return pd.DataFrame(self.transition, index=names, columns=names)


def _collapsed_transitions(journey: np.ndarray, code: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse repeated consecutive channels; return (from, to) pairs between channels and the first/last codes.

    Returns ``pairs_from, pairs_to`` (within journeys), and for each journey (in order) its first and last code.
    """
    if len(journey) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros((0, 2), dtype=np.int64)
    same_journey = np.r_[False, journey[1:] == journey[:-1]]
    keep = ~(same_journey & np.r_[False, code[1:] == code[:-1]])
    journey, code = journey[keep], code[keep]
    same_journey = np.r_[False, journey[1:] == journey[:-1]]
    inner = np.flatnonzero(same_journey)
    starts, lengths = _group_starts(journey)
    ends = np.column_stack([code[starts], code[starts + lengths - 1]])
    return code[inner - 1], code[inner], ends


def markov_chain(
    *,
    n_channels: int,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    first: np.ndarray,
    last: np.ndarray,
    conversions: np.ndarray,
    nulls: np.ndarray,
    values: np.ndarray,
    labels: np.ndarray,
) -> MarkovResult:
    """Exact first-order chain from weighted collapsed paths.

    ``pairs`` = (from, to, weight) of channel→channel steps; per path: ``first`` and ``last`` channel code, its
    ``conversions`` (paths ending in conversion), ``nulls`` (ending in null) and the ``values`` of its conversions.
    """
    k = n_channels
    start, conv, null = 0, k + 1, k + 2
    n_states = k + 3
    counts = np.zeros(n_states * n_states)
    pf, pt, pw = pairs
    if len(pf):
        counts += np.bincount((pf + 1) * n_states + (pt + 1), weights=pw, minlength=n_states * n_states)
    weight = conversions + nulls
    counts += np.bincount(start * n_states + (first + 1), weights=weight, minlength=n_states * n_states)
    counts += np.bincount((last + 1) * n_states + conv, weights=conversions, minlength=n_states * n_states)
    counts += np.bincount((last + 1) * n_states + null, weights=nulls, minlength=n_states * n_states)
    counts = counts.reshape(n_states, n_states)
    totals = counts.sum(axis=1, keepdims=True)
    transition = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)

    # Mean value of the conversions entered from each channel: the reward of the step c → conversion.
    conv_from = np.bincount(last, weights=conversions, minlength=k)
    value_from = np.bincount(last, weights=values, minlength=k)
    mean_value = np.divide(value_from, conv_from, out=np.zeros(k), where=conv_from > 0)

    transient = k + 1  # start and the channels
    q = transition[:transient, :transient]
    reward = transition[:transient, conv]
    reward_value = reward * np.r_[0.0, mean_value]
    fundamental = np.linalg.inv(np.eye(transient) - q)
    x = fundamental @ reward
    x_value = fundamental @ reward_value
    p, p_value = x[0], x_value[0]
    reach = fundamental[0, 1:] / np.diag(fundamental)[1:]  # P(start ⇒ ever visit c)
    with np.errstate(divide="ignore", invalid="ignore"):
        removal = np.where(p > 0, reach * x[1:] / p, 0.0)
        removal_value = np.where(p_value > 0, reach * x_value[1:] / p_value, 0.0)
    return MarkovResult(labels=labels, transition=transition, conversion_probability=float(p),
                        removal_effects=np.clip(removal, 0.0, 1.0), removal_effects_value=np.clip(removal_value, 0.0, 1.0))


def _markov_from_journeys(j: Journeys) -> MarkovResult:
    cf, ct, c_ends = _collapsed_transitions(j.t_journey, j.t_code)
    nf, nt, n_ends = _collapsed_transitions(j.null_journey, j.null_code)
    pairs = (np.r_[cf, nf], np.r_[ct, nt], np.ones(len(cf) + len(nf)))
    n_conv, n_null = len(c_ends), len(n_ends)
    return markov_chain(
        n_channels=j.n_channels, pairs=pairs,
        first=np.r_[c_ends[:, 0], n_ends[:, 0]].astype(np.int64),
        last=np.r_[c_ends[:, 1], n_ends[:, 1]].astype(np.int64),
        conversions=np.r_[np.ones(n_conv), np.zeros(n_null)],
        nulls=np.r_[np.zeros(n_conv), np.ones(n_null)],
        values=np.r_[j.j_value, np.zeros(n_null)],
        labels=j.labels,
    )


def _shares(effects: np.ndarray) -> np.ndarray:
    total = effects.sum()
    return effects / total if total > 0 else np.zeros_like(effects)


def markov_paths(
    paths: pd.DataFrame,
    *,
    path: str = "path",
    conversions: str = "conversions",
    nulls: str | None = "nulls",
    value: str | None = None,
    sep: str = ">",
) -> pd.DataFrame:
    """The Markov model from path strings (``"微信 > 官网 > 展会"``), one row per path or per journey.

    The same input ChannelAttribution's ``markov_model`` takes; identical path strings are grouped first, so
    a million rows cost little more than their distinct paths. Returns credits indexed by channel plus the
    removal effects.
    """
    _check_columns(paths, [path, conversions], "paths")
    columns = [conversions, *([nulls] if nulls else []), *([value] if value else [])]
    # Identical paths are grouped first (integer codes, then sums by code): a million journeys cost little more
    # than their distinct paths.
    path_codes, distinct = pd.factorize(paths[path], sort=False)
    sums = {c: np.bincount(path_codes, weights=paths[c].to_numpy(dtype=float), minlength=len(distinct))
            for c in columns}
    # Split, trim and encode the channel names in Arrow (C++), not per token in Python.
    try:  # Arrow-backed strings pass through without a copy
        arrow = pa.array(distinct).cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        arrow = pa.array(np.asarray(distinct, dtype=object).astype(str), type=pa.string())
    parts = pc.split_pattern(arrow, pattern=sep)
    tokens_per_path = pc.list_value_length(parts).to_numpy(zero_copy_only=False).astype(np.int64)
    encoded = pc.utf8_trim_whitespace(pc.list_flatten(parts)).dictionary_encode()
    names = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    order = np.argsort(names, kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    codes = rank[encoded.indices.to_numpy(zero_copy_only=False)]
    labels = names[order]
    strings = distinct
    journey = np.repeat(np.arange(len(strings)), tokens_per_path)
    conv = sums[conversions]
    null = sums[nulls] if nulls else np.zeros(len(strings))
    val = sums[value] if value else np.zeros(len(strings))
    pf, pt, ends = _collapsed_transitions(journey, codes)
    # Each step of a path is weighted by how many journeys took that path.
    weight_per_path = conv + null
    same = np.r_[False, journey[1:] == journey[:-1]]
    keep = ~(same & np.r_[False, codes[1:] == codes[:-1]])
    kept_journey = journey[keep]
    step_weight = weight_per_path[kept_journey[np.flatnonzero(np.r_[False, kept_journey[1:] == kept_journey[:-1]])]]
    result = markov_chain(n_channels=len(labels), pairs=(pf, pt, step_weight), first=ends[:, 0], last=ends[:, 1],
                          conversions=conv, nulls=null, values=val, labels=labels)
    frame = pd.DataFrame({
        "conversions": _shares(result.removal_effects) * conv.sum(),
        "value": _shares(result.removal_effects_value) * val.sum(),
        "removal_effect": result.removal_effects,
        "removal_effect_value": result.removal_effects_value,
    }, index=pd.Index(labels, name="channel"))
    return frame


# ---------------------------------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------------------------------
def _credit_frame(journeys: Journeys, conv: np.ndarray, value: np.ndarray, by: str) -> pd.DataFrame:
    frame = pd.DataFrame({"conversions": conv, "value": value}, index=pd.Index(journeys.labels, name=by))
    if journeys.untouched_conversions:
        frame.loc[UNATTRIBUTED] = [journeys.untouched_conversions, journeys.untouched_value]
    return frame


def _model_credit(journeys: Journeys, model: str, by: str, **params: Any) -> pd.DataFrame:
    k = journeys.n_channels
    if model == "markov":
        result = _markov_from_journeys(journeys)
        touched = float(journeys.n_journeys)
        conv = _shares(result.removal_effects) * touched
        value = _shares(result.removal_effects_value) * float(journeys.j_value.sum())
        frame = _credit_frame(journeys, conv, value, by)
        frame.attrs["removal_effects"] = dict(zip(journeys.labels, result.removal_effects, strict=True))
        return frame
    weights = touch_weights(journeys, model, **params)
    conv = np.bincount(journeys.t_code, weights=weights, minlength=k)
    value = np.bincount(journeys.t_code, weights=weights * journeys.j_value[journeys.t_journey], minlength=k)
    return _credit_frame(journeys, conv, value, by)


def _params_for(params: Mapping[str, Any]) -> dict[str, Any]:
    known = {"half_life_days"}
    unknown = set(params) - known
    if unknown:
        raise AttributionError(f"Unknown parameter: {', '.join(sorted(unknown))}.",
                               key="attribution.unknown_parameter", name=", ".join(sorted(unknown)))
    return dict(params)


def attribute(
    touchpoints: pd.DataFrame,
    conversions: pd.DataFrame,
    model: str,
    *,
    by: str = "channel",
    lookback_days: float | None = None,
    **params: Any,
) -> pd.DataFrame:
    """Credit of each channel for ``conversions`` under ``model`` (see the module docstring).

    Returns a DataFrame indexed by channel (the values of column ``by``) with ``conversions`` and ``value``.
    ``lookback_days`` limits each journey to touches that many days before its conversion; ``half_life_days``
    tunes ``time_decay``.
    """
    if model not in MODELS:
        raise AttributionError(f"Unknown attribution model: {model}.", key="attribution.unknown_model", model=model)
    journeys = build_journeys(touchpoints, conversions, by=by, lookback_days=lookback_days)
    return _model_credit(journeys, model, by, **_params_for(params))


def attribute_all(
    touchpoints: pd.DataFrame,
    conversions: pd.DataFrame,
    models: Iterable[str] = MODELS,
    *,
    by: str = "channel",
    lookback_days: float | None = None,
    **params: Any,
) -> pd.DataFrame:
    """Several models side by side on journeys built once: a long frame (model, channel, conversions, value)."""
    models = list(models)
    for model in models:
        if model not in MODELS:
            raise AttributionError(f"Unknown attribution model: {model}.", key="attribution.unknown_model",
                                   model=model)
    params = _params_for(params)
    journeys = build_journeys(touchpoints, conversions, by=by, lookback_days=lookback_days)
    parts = []
    for model in models:
        credit = _model_credit(journeys, model, by, **params).reset_index()
        credit.insert(0, "model", model)
        parts.append(credit)
    if not parts:
        return pd.DataFrame(columns=["model", by, "conversions", "value"])
    return pd.concat(parts, ignore_index=True)


def attribute_by_key(
    touchpoints: pd.DataFrame,
    conversions: pd.DataFrame,
    model: str,
    *,
    key: str,
    by: str = "channel",
    lookback_days: float | None = None,
    **params: Any,
) -> pd.DataFrame:
    """Credits split by a column of ``conversions`` (e.g. the conversion month): columns key, by, conversions,
    value.

    Rule-based models and Shapley credit each journey on its own, so the split is exact. The Markov chain is
    estimated once on all journeys (a month alone is too thin for a chain); each key's touched conversions and
    value are split by the chain's removal-effect shares among the channels that appear in that key's journeys.
    """
    if model not in MODELS:
        raise AttributionError(f"Unknown attribution model: {model}.", key="attribution.unknown_model", model=model)
    params = _params_for(params)
    j = build_journeys(touchpoints, conversions, by=by, lookback_days=lookback_days, key=key)
    assert j.j_key is not None
    key_codes, key_labels = pd.factorize(pd.Series(j.j_key), sort=True)
    n_keys, k = len(key_labels), j.n_channels
    if model == "markov":
        result = _markov_from_journeys(j)
        present = np.zeros((n_keys, k))
        if len(j.t_code):
            np.add.at(present, (key_codes[j.t_journey], j.t_code), 1.0)
        present = present > 0
        per_key_conv = np.bincount(key_codes, minlength=n_keys).astype(float)
        per_key_value = np.bincount(key_codes, weights=j.j_value, minlength=n_keys)
        conv_matrix = present * result.removal_effects[None, :]
        value_matrix = present * result.removal_effects_value[None, :]
        conv_sum = conv_matrix.sum(axis=1, keepdims=True)
        value_sum = value_matrix.sum(axis=1, keepdims=True)
        conv_matrix = np.divide(conv_matrix, conv_sum, out=np.zeros_like(conv_matrix), where=conv_sum > 0)
        value_matrix = np.divide(value_matrix, value_sum, out=np.zeros_like(value_matrix), where=value_sum > 0)
        conv_matrix *= per_key_conv[:, None]
        value_matrix *= per_key_value[:, None]
    else:
        weights = touch_weights(j, model, **params)
        cell = key_codes[j.t_journey] * k + j.t_code
        conv_matrix = np.bincount(cell, weights=weights, minlength=n_keys * k).reshape(n_keys, k)
        value_matrix = np.bincount(cell, weights=weights * j.j_value[j.t_journey],
                                   minlength=n_keys * k).reshape(n_keys, k)
    frame = pd.DataFrame({
        key: np.repeat(np.asarray(key_labels, dtype=object), k),
        by: np.tile(j.labels, n_keys),
        "conversions": conv_matrix.ravel(),
        "value": value_matrix.ravel(),
    })
    if j.untouched_keys is not None and len(j.untouched_keys):
        extra = j.untouched_keys.groupby("key", as_index=False).agg(conversions=("value", "size"),
                                                                    value=("value", "sum"))
        extra = extra.rename(columns={"key": key})
        extra[by] = UNATTRIBUTED
        frame = pd.concat([frame, extra[[key, by, "conversions", "value"]]], ignore_index=True)
    return frame[(frame["conversions"] != 0) | (frame["value"] != 0)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------------
# Loading journeys from the database: one statement for the touches, one for the conversions
# ---------------------------------------------------------------------------------------------------------------
def conversion_stages(conversion: str) -> list[str]:
    """The funnel steps whose arrival counts as ``conversion`` (a forward skip past it counts, as in the funnel)."""
    if conversion not in CONVERSIONS:
        raise AttributionError(f"Unknown conversion: {conversion}.", key="attribution.unknown_conversion",
                               conversion=conversion)
    return list(FUNNEL_STAGES[FUNNEL_STAGES.index(conversion):])


def touches_from(data: ReportData, filters: ReportFilter = ReportFilter(), *, cohort: bool = False) -> pd.DataFrame:
    """The touches of the leads ``filters`` keep by owner and region; the month range ends them (period view)
    or, with ``cohort``, chooses the leads by creation month."""
    leads = filtered_leads(data, filters, cohort=cohort, source=False)
    touches = data.touches
    keep = touches["lead_id"].isin(leads["id"]).to_numpy()
    _, end = filters.months()
    if end is not None and not cohort:
        keep = keep & (touches["occurred_at"] < pd.Timestamp(end)).to_numpy()
    return touches[keep]


def conversions_from(data: ReportData, conversion: str = "won", filters: ReportFilter = ReportFilter(), *,
                     cohort: bool = False) -> pd.DataFrame:
    """The conversions of the leads ``filters`` keep by owner and region (see ``load_conversions``)."""
    stages = conversion_stages(conversion)
    leads = filtered_leads(data, filters, cohort=cohort, source=False)
    changes = data.changes
    reached = changes.loc[changes["to_stage"].isin(stages).to_numpy(), ["lead_id", "at"]].groupby("lead_id")["at"].min()
    converted_at = reached.reindex(leads["id"].to_numpy())
    # A lead whose current stage is past the step without a StageChange for it was created there.
    created_there = converted_at.isna().to_numpy() & leads["stage"].isin(stages).to_numpy()
    converted_at = converted_at.where(~created_there, pd.Series(leads["created_at"].to_numpy(),
                                                                index=converted_at.index))
    keep = converted_at.notna().to_numpy()
    _, end = filters.months()
    if end is not None and not cohort:
        keep = keep & (converted_at < pd.Timestamp(end)).fillna(False).to_numpy()
    chosen = leads[keep]
    opportunities = data.opportunities[data.opportunities["lead_id"].isin(chosen["id"]).to_numpy()]
    if conversion == "won":
        amounts = opportunities["amount"].where(opportunities["stage"] == "won", 0.0)
    elif conversion == "opportunity":
        amounts = opportunities["amount"]
    else:
        amounts = opportunities["amount"] * 0.0
    value = amounts.groupby(opportunities["lead_id"]).sum()
    first_opportunity = opportunities.groupby("lead_id")["created_at"].min()
    ids = chosen["id"].to_numpy()
    return pd.DataFrame({
        "lead_id": ids,
        "converted_at": pd.to_datetime(converted_at[keep].to_numpy(), utc=True),
        "value": value.reindex(ids).fillna(0.0).to_numpy(dtype=float),
        "lead_created_at": pd.to_datetime(chosen["created_at"].to_numpy(), utc=True),
        "opportunity_created_at": pd.to_datetime(first_opportunity.reindex(ids).to_numpy(), utc=True),
    })


def load_touchpoints(
    *,
    session: Session,
    actor: Actor,
    filters: ReportFilter = ReportFilter(),
    cohort: bool = False,
    exclude_kinds: Iterable[str] = DEFAULT_EXCLUDED_KINDS,
) -> pd.DataFrame:
    """The touches of the filtered leads, in one statement (plus two tiny name look-ups).

    Columns ``lead_id``, ``channel``, ``campaign`` (``"渠道 / 活动"``; ``"渠道 / —"`` without a campaign),
    ``channel_id``, ``campaign_id``, ``occurred_at``. Touches without a channel cannot be credited and are left
    out, as are the kinds in ``exclude_kinds`` (an email we sent is not something the lead did). Owner and
    region filters choose the leads; the month range ends the touches (period view) or, with ``cohort``,
    chooses the leads by creation month. ``period_inputs`` then cuts the journeys of a period. The same rows
    as ``touches_from`` over ``load_report_data`` (the Reports page's in-memory path); a test checks it.
    """
    require(actor, "reports")
    _, end = filters.months()
    conditions = [*lead_conditions(actor, filters, source=False, cohort=cohort), Touchpoint.channel_id.is_not(None)]
    if excluded := list(exclude_kinds):
        conditions.append(Touchpoint.kind.not_in(excluded))
    if end is not None and not cohort:
        conditions.append(Touchpoint.occurred_at < end)
    touches = read_frame(
        session,
        select(Touchpoint.lead_id, Touchpoint.channel_id, Touchpoint.campaign_id, raw_time(Touchpoint.occurred_at))
        .join(Lead, Lead.id == Touchpoint.lead_id).where(*conditions).order_by(Touchpoint.id),
        ["lead_id", "channel_id", "campaign_id", "occurred_at"], times=("occurred_at",),
        ints=("lead_id", "channel_id"),
    )
    touches["campaign_id"] = pd.to_numeric(touches["campaign_id"], errors="coerce").astype("Int64")
    names = ReportData(
        leads=pd.DataFrame(), changes=pd.DataFrame(), opportunities=pd.DataFrame(), touches=touches,
        channels=dict(session.execute(select(Channel.id, Channel.name)).all()),
        campaigns={cid: (name, channel_id) for cid, name, channel_id in
                   session.execute(select(Campaign.id, Campaign.name, Campaign.channel_id)).all()},
    )
    names.label_touches()
    return names.touches


def period_inputs(
    touches: pd.DataFrame, conversions: pd.DataFrame, filters: ReportFilter, lookback_days: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The journeys of the filter's period from everything loaded up to its end.

    Conversions before the period are not the period's; neither are those leads' later touches (they are no
    path "to null"), so both go. Touches older than the period's start minus the lookback cannot be in any of
    the period's journeys and go too (this bounds the non-converting paths the same way).
    """
    start, _ = filters.months()
    if start is None:
        return touches, conversions
    start_ts = pd.Timestamp(start)
    before = (conversions["converted_at"] < start_ts).to_numpy()
    keep = ~touches["lead_id"].isin(conversions.loc[before, "lead_id"]).to_numpy()
    if lookback_days is not None:
        keep &= (touches["occurred_at"] >= start_ts - pd.Timedelta(days=float(lookback_days))).to_numpy()
    return touches[keep], conversions[~before]


def load_conversions(
    *,
    session: Session,
    actor: Actor,
    conversion: str = "won",
    filters: ReportFilter = ReportFilter(),
    cohort: bool = False,
) -> pd.DataFrame:
    """The filtered leads' conversions, in one statement.

    ``converted_at`` is the first arrival at the conversion step or beyond (the funnel's convention); ``value``
    is the amount of the lead's won opportunities for ``won``, of all its opportunities for ``opportunity``,
    and 0 for MQL and SQL. ``lead_created_at`` and ``opportunity_created_at`` (its first opportunity) are the
    W-shaped milestones. Period view: every conversion before the end of the month range (``period_inputs``
    keeps the period's and drops the earlier ones); cohort view: all conversions of the leads created in it.
    The same rows as ``conversions_from`` over ``load_report_data``; a test checks it.
    """
    require(actor, "reports")
    stages = conversion_stages(conversion)
    _, end = filters.months()
    reached = (
        select(StageChange.lead_id, func.min(StageChange.at).label("at"))
        .where(StageChange.to_stage.in_(stages))
        .group_by(StageChange.lead_id)
        .subquery()
    )
    amount = Opportunity.amount
    if conversion == "won":
        amount = case((Opportunity.stage == "won", Opportunity.amount), else_=0)
    opportunities = (
        select(Opportunity.lead_id, func.sum(amount).label("value"), func.min(Opportunity.created_at).label("first"))
        .group_by(Opportunity.lead_id)
        .subquery()
    )
    # A lead whose current stage is past the step without a StageChange for it was created there.
    converted_at = func.coalesce(reached.c.at, Lead.created_at)
    value = func.coalesce(opportunities.c.value, 0) if conversion in ("won", "opportunity") else literal(0.0)
    conditions = [*lead_conditions(actor, filters, source=False, cohort=cohort),
                  or_(reached.c.at.is_not(None), Lead.stage.in_(stages))]
    if end is not None and not cohort:
        conditions.append(converted_at < end)
    frame = read_frame(
        session,
        select(Lead.id, raw_time(converted_at), value, raw_time(Lead.created_at), raw_time(opportunities.c.first))
        .join(reached, reached.c.lead_id == Lead.id, isouter=True)
        .join(opportunities, opportunities.c.lead_id == Lead.id, isouter=True)
        .where(*conditions)
        .order_by(Lead.id),
        ["lead_id", "converted_at", "value", "lead_created_at", "opportunity_created_at"],
        times=("converted_at", "lead_created_at", "opportunity_created_at"), ints=("lead_id",),
    )
    frame["value"] = frame["value"].astype(float)
    return frame


@dataclass
class JourneyData:
    """What attribution reads from the database for one conversion and filter: load once, cut many ways."""

    touchpoints: pd.DataFrame
    conversions: pd.DataFrame
    conversion: str
    filters: ReportFilter
    cohort: bool = False

    def inputs(self, lookback_days: float | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self.cohort:
            return self.touchpoints, self.conversions
        return period_inputs(self.touchpoints, self.conversions, self.filters, lookback_days)


def journey_data_from(data: ReportData, filters: ReportFilter = ReportFilter(), conversion: str = "won", *,
                      cohort: bool = False) -> JourneyData:
    return JourneyData(touchpoints=touches_from(data, filters, cohort=cohort),
                       conversions=conversions_from(data, conversion, filters, cohort=cohort),
                       conversion=conversion, filters=filters, cohort=cohort)


def load_journey_data(*, session: Session, actor: Actor, filters: ReportFilter = ReportFilter(),
                      conversion: str = "won", cohort: bool = False) -> JourneyData:
    """Touches and conversions of the filtered leads: one statement each."""
    return JourneyData(
        touchpoints=load_touchpoints(session=session, actor=actor, filters=filters, cohort=cohort),
        conversions=load_conversions(session=session, actor=actor, conversion=conversion, filters=filters,
                                     cohort=cohort),
        conversion=conversion, filters=filters, cohort=cohort)


def attribution_report(
    *,
    session: Session | None = None,
    actor: Actor | None = None,
    filters: ReportFilter = ReportFilter(),
    conversion: str = "won",
    lookback_days: float | None = 90,
    models: Iterable[str] = MODELS,
    level: str = "channel",
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    data: JourneyData | None = None,
) -> pd.DataFrame:
    """Every model side by side for the filtered period: long frame (model, <level>, conversions, value).

    Loads its journeys unless ``data`` (from ``load_journey_data``) is given. The credits are computed over all
    journeys of the period; the channel/campaign filter only chooses which rows are returned, so a channel's
    share does not change when others are hidden.
    """
    if level not in ("channel", "campaign"):
        raise AttributionError(f"Unknown level: {level}.", key="attribution.unknown_level", level=level)
    if data is None:
        assert session is not None and actor is not None
        data = load_journey_data(session=session, actor=actor, filters=filters, conversion=conversion)
    touches, conversions = data.inputs(lookback_days)
    result = attribute_all(touches, conversions, models, by=level, lookback_days=lookback_days,
                           half_life_days=half_life_days)
    return keep_shown(result, level, filters, data.touchpoints)


def keep_shown(frame: pd.DataFrame, level: str, filters: ReportFilter, touches: pd.DataFrame,
               column: str | None = None) -> pd.DataFrame:
    """Rows of the channels (or campaign labels) the filter selects; all rows when it selects none."""
    if not filters.channel_ids and not filters.campaign_ids:
        return frame.reset_index(drop=True)
    column = column or level
    pairs = touches[["channel_id", "campaign_id", "channel", "campaign"]].drop_duplicates()
    if level == "channel":
        chosen = pairs["channel_id"].isin(filters.channel_ids) | pairs["campaign_id"].isin(filters.campaign_ids)
        names = set(pairs.loc[chosen, "channel"].astype(str))
    else:
        chosen = (pairs["campaign_id"].isin(filters.campaign_ids) if filters.campaign_ids
                  else pairs["channel_id"].isin(filters.channel_ids))
        names = set(pairs.loc[chosen, "campaign"].astype(str))
    return frame[frame[column].astype(str).isin(names)].reset_index(drop=True)


def attribution_leads(
    *,
    session: Session,
    actor: Actor,
    filters: ReportFilter = ReportFilter(),
    conversion: str = "won",
    lookback_days: float | None = 90,
    channel: str,
    level: str = "channel",
    limit: int = 100,
    data: JourneyData | None = None,
) -> tuple[pd.DataFrame, int]:
    """The converted leads whose journey (within the lookback) includes ``channel`` — the leads behind a credit —
    newest conversion first; for ``UNATTRIBUTED``, those without any touch in their window."""
    if data is None:
        data = load_journey_data(session=session, actor=actor, filters=filters, conversion=conversion)
    touches, conversions = data.inputs(lookback_days)
    candidates = touches if channel == UNATTRIBUTED else touches[touches[level].astype(str) == channel]
    joined = candidates[["lead_id", "occurred_at"]].merge(conversions[["lead_id", "converted_at"]], on="lead_id")
    in_window = joined["occurred_at"] <= joined["converted_at"]
    if lookback_days is not None:
        in_window &= joined["occurred_at"] >= joined["converted_at"] - pd.Timedelta(days=float(lookback_days))
    ids = set(joined.loc[in_window, "lead_id"])
    matched = conversions[~conversions["lead_id"].isin(ids) if channel == UNATTRIBUTED
                          else conversions["lead_id"].isin(ids)]
    matched = matched.sort_values("converted_at", ascending=False)
    page_ids = [int(i) for i in matched["lead_id"].head(limit)]
    details = read_frame(
        session,
        select(Lead.id, Lead.name, Lead.company, Lead.province, User.display_name, Channel.name, Lead.stage)
        .join(User, User.id == Lead.owner_id, isouter=True)
        .join(Channel, Channel.id == Lead.source_channel_id, isouter=True)
        .where(Lead.id.in_(page_ids), lead_scope(actor)),
        ["lead_id", "name", "company", "province", "owner", "source_channel", "stage"],
    )
    page = matched.head(limit)[["lead_id", "converted_at", "value"]].merge(details, on="lead_id", how="inner")
    return page.rename(columns={"lead_id": "id"}).reset_index(drop=True), len(matched)
