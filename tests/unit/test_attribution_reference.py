"""The Markov model against an independent implementation: the ChannelAttribution package.

ChannelAttribution estimates removal effects by simulating the chain; ours solves it exactly. On the same
paths (repeated channels collapsed by both, non-converting journeys passed as ``var_null``) the credits agree
within 1 % of the total conversions (and of the total value), and the gap shrinks as the package simulates more.
"""

from __future__ import annotations

import ChannelAttribution  # pinned in requirements.txt (tests section)
import pandas as pd
import pytest

from bench.synthetic import path_rows, synthetic_journeys
from core.attribution import attribute, markov_paths


@pytest.fixture(scope="module")
def journeys():
    data = synthetic_journeys(20_000, n_channels=6, mean_touches=5, seed=3)
    return data, path_rows(data)


def _reference(rows: pd.DataFrame, **options) -> pd.DataFrame:
    result = ChannelAttribution.markov_model(rows, "path", "conversions", var_value="value", var_null="nulls",
                                             out_more=True, verbose=False, flg_pro=False, **options)
    credit = result["result"].set_index("channel_name")
    effects = result["removal_effects"].set_index("channel_name")
    return credit.join(effects)


def test_markov_credits_agree_with_channelattribution_within_one_percent(journeys):
    data, rows = journeys
    ours = attribute(data.touchpoints, data.conversions, "markov")
    theirs = _reference(rows)
    assert set(theirs.index) == set(data.channels)
    total, value = len(data.conversions), data.conversions["value"].sum()
    gap = (ours.loc[theirs.index, "conversions"] - theirs["total_conversions"]).abs()
    gap_value = (ours.loc[theirs.index, "value"] - theirs["total_conversion_value"]).abs()
    assert gap.max() < 0.01 * total, gap.to_dict()
    assert gap_value.max() < 0.01 * value, gap_value.to_dict()
    assert ours["conversions"].sum() == pytest.approx(total)


def test_removal_effects_agree_and_the_gap_shrinks_with_more_simulations(journeys):
    data, rows = journeys
    ours = markov_paths(rows, value="value")
    coarse = _reference(rows)
    fine = _reference(rows, nsim_start=1e6)
    gap_coarse = (ours.loc[coarse.index, "removal_effect"] - coarse["removal_effects_conversion"]).abs().max()
    gap_fine = (ours.loc[fine.index, "removal_effect"] - fine["removal_effects_conversion"]).abs().max()
    assert gap_coarse < 0.02
    assert gap_fine < gap_coarse
    # Path strings and touch tables give the same chain.
    from_touches = attribute(data.touchpoints, data.conversions, "markov")
    assert ours["conversions"].to_dict() == pytest.approx(from_touches["conversions"].to_dict())
