"""Attribution models on hand-computed journeys, the sums every model keeps, and the exact Markov chain."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pandas as pd
import pytest

from core.attribution import (
    MODELS,
    UNATTRIBUTED,
    AttributionError,
    attribute,
    attribute_all,
    attribute_by_key,
    build_journeys,
    channel_sets,
    markov_paths,
    shapley_by_enumeration,
)

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2026-03-01 08:00", tz="UTC")


def frames(journeys: dict[int, list[tuple[str, float]]], conversions: dict[int, tuple[float, float]], **extra):
    """touches: lead → [(channel, day)], conversions: lead → (day, value)."""
    touches = pd.DataFrame(
        [{"lead_id": lead, "channel": channel, "occurred_at": T0 + day * DAY}
         for lead, steps in journeys.items() for channel, day in steps]
    )
    conv = pd.DataFrame(
        [{"lead_id": lead, "converted_at": T0 + day * DAY, "value": value} for lead, (day, value) in
         conversions.items()]
    )
    for column, values in extra.items():
        conv[column] = [T0 + values[lead] * DAY if values.get(lead) is not None else pd.NaT
                        for lead in conversions]
    return touches, conv


# Lead 1: 微信, 官网, 微信 then converts (100). Lead 2: 官网, 展会, converts (50). Lead 3: 展会, never converts.
# Lead 5 converts (7) without any touch; lead 6's only touch comes after its conversion (2).
HAND = frames(
    {1: [("微信", 0), ("官网", 4), ("微信", 7)], 2: [("官网", 0), ("展会", 1)], 3: [("展会", 2)],
     6: [("官网", 9)]},
    {1: (7, 100.0), 2: (2, 50.0), 5: (9, 7.0), 6: (8, 2.0)},
)


def credits(result: pd.DataFrame, column: str = "conversions") -> dict[str, float]:
    return {k: round(float(v), 9) for k, v in result[column].items() if v}


def approx(expected: dict[str, float | F]) -> dict[str, float]:
    return {k: round(float(v), 9) for k, v in expected.items()}


@pytest.mark.parametrize(("model", "expected"), [
    ("first_touch", {"微信": 1, "官网": 1}),
    ("last_touch", {"微信": 1, "展会": 1}),
    ("linear", {"微信": F(2, 3), "官网": F(1, 3) + F(1, 2), "展会": F(1, 2)}),
    ("u_shaped", {"微信": F(4, 5), "官网": F(1, 5) + F(1, 2), "展会": F(1, 2)}),
    # No milestone columns: lead creation = first touch, opportunity creation = the last touch.
    # Lead 1: first+lead 60 % on 微信, last 30 % on 微信, 10 % on the one other touch (官网).
    # Lead 2: two touches, both milestones: 0.6 / 0.3 scaled to 2/3, 1/3.
    ("w_shaped", {"微信": F(9, 10), "官网": F(1, 10) + F(2, 3), "展会": F(1, 3)}),
    ("shapley", {"微信": F(1, 2), "官网": F(1, 2) + F(1, 2), "展会": F(1, 2)}),
])
def test_rule_based_models_on_hand_computed_journeys(model, expected):
    touches, conversions = HAND
    result = attribute(touches, conversions, model)
    assert credits(result) == approx(expected | {UNATTRIBUTED: 2})
    assert result["conversions"].sum() == pytest.approx(4)
    assert result["value"].sum() == pytest.approx(159)


def test_values_follow_each_journeys_weights():
    touches, conversions = HAND
    result = attribute(touches, conversions, "linear")
    assert credits(result, "value") == approx({"微信": F(200, 3), "官网": F(100, 3) + 25, "展会": 25,
                                              UNATTRIBUTED: 9})


def test_time_decay_uses_a_continuous_half_life_of_seven_days_by_default():
    touches, conversions = HAND
    result = attribute(touches, conversions, "time_decay")
    # Lead 1: ages 7, 3 and 0 days → 2^-1, 2^(-3/7), 1. Lead 2: ages 2 and 1 days.
    w1 = np.array([0.5, 2 ** (-3 / 7), 1.0])
    w2 = np.array([2 ** (-2 / 7), 2 ** (-1 / 7)])
    expected = {"微信": (w1[0] + w1[2]) / w1.sum(), "官网": w1[1] / w1.sum() + w2[0] / w2.sum(),
                "展会": w2[1] / w2.sum()}
    assert credits(result) == approx(expected | {UNATTRIBUTED: 2})
    # A touch half a day old weighs 2^(-0.5/7), not 1 (no rounding to whole days).
    touches, conversions = frames({1: [("a", 0), ("b", 6.5)]}, {1: (7, 1.0)})
    result = attribute(touches, conversions, "time_decay", half_life_days=1)
    assert result.loc["a", "conversions"] == pytest.approx(2 ** -7 / (2 ** -7 + 2 ** -0.5))


def test_linear_credits_every_touch_so_a_channel_seen_twice_in_three_gets_two_thirds():
    touches, conversions = frames({1: [("a", 0), ("b", 1), ("a", 2)]}, {1: (3, 30.0)})
    result = attribute(touches, conversions, "linear")
    assert result.loc["a", "conversions"] == pytest.approx(2 / 3)
    assert result.loc["a", "value"] == pytest.approx(20)


@pytest.mark.parametrize(("n", "expected"), [
    (1, [1.0]), (2, [0.5, 0.5]), (3, [0.4, 0.2, 0.4]), (4, [0.4, 0.1, 0.1, 0.4]),
])
def test_u_shaped_positions(n, expected):
    channels = [f"c{i}" for i in range(n)]
    touches, conversions = frames({1: [(c, i) for i, c in enumerate(channels)]}, {1: (n, 1.0)})
    result = attribute(touches, conversions, "u_shaped")
    assert [round(result.loc[c, "conversions"], 9) for c in channels] == [round(x, 9) for x in expected]


@pytest.mark.parametrize(("lead_day", "opp_day", "expected"), [
    # Milestones on touches 0, 1 and 3; the 10 % split over touches 2 and 4.
    (1.5, 3.5, [0.3, 0.3, 0.05, 0.3, 0.05]),
    # Lead created before any touch: the first touch is also the lead-creation touch (30 + 30 %).
    (-1, 3.5, [0.6, 0.1 / 3, 0.1 / 3, 0.3, 0.1 / 3]),
    # All three milestones on the first touch.
    (-1, 0.5, [0.9, 0.025, 0.025, 0.025, 0.025]),
    # No opportunity time (an MQL): the last touch stands in for the opportunity milestone.
    (2.5, None, [0.3, 0.05, 0.3, 0.05, 0.3]),
])
def test_w_shaped_milestones(lead_day, opp_day, expected):
    channels = ["a", "b", "c", "d", "e"]
    touches, conversions = frames({1: [(c, i) for i, c in enumerate(channels)]}, {1: (5, 10.0)},
                                  lead_created_at={1: lead_day}, opportunity_created_at={1: opp_day})
    result = attribute(touches, conversions, "w_shaped")
    assert [round(result.loc[c, "conversions"], 9) for c in channels] == [round(x, 9) for x in expected]
    assert result["value"].sum() == pytest.approx(10)


def test_w_shaped_when_every_touch_is_a_milestone_scales_to_one():
    touches, conversions = frames({1: [("a", 0), ("b", 1), ("c", 2)]}, {1: (3, 1.0)},
                                  lead_created_at={1: 1}, opportunity_created_at={1: 2})
    assert credits(attribute(touches, conversions, "w_shaped")) == approx({"a": F(1, 3), "b": F(1, 3),
                                                                          "c": F(1, 3)})
    touches, conversions = frames({1: [("a", 0)]}, {1: (3, 1.0)})
    assert credits(attribute(touches, conversions, "w_shaped")) == {"a": 1.0}


def test_markov_removal_effects_are_exact_on_a_hand_solved_chain():
    """The chain of HAND: start→{微信, 官网, 展会} 1/3 each; 微信→官网 ½, →conversion ½; 官网→微信 ½, →展会 ½;
    展会→conversion ½, →null ½. P(conversion) = 2/3; removing 微信 leaves 1/4, 官网 1/3, 展会 1/3, so the
    removal effects are 5/8, 1/2, 1/2 and 2 touched conversions are split 5:4:4."""
    touches, conversions = HAND
    result = attribute(touches, conversions, "markov")
    assert credits(result) == approx({"微信": F(10, 13), "官网": F(8, 13), "展会": F(8, 13), UNATTRIBUTED: 2})
    assert result.attrs["removal_effects"] == pytest.approx({"微信": 5 / 8, "官网": 0.5, "展会": 0.5})
    # Value: the step into conversion earns the mean value entered from that channel (微信 100, 展会 50);
    # removal effects on value 3/4, 1/2, 1/3 split the 150 touched value.
    share = np.array([3 / 4, 1 / 2, 1 / 3]) / (3 / 4 + 1 / 2 + 1 / 3) * 150
    assert credits(result, "value") == approx({"微信": share[0], "官网": share[1], "展会": share[2],
                                              UNATTRIBUTED: 9})


def test_markov_collapses_repeated_consecutive_channels():
    repeated = frames({1: [("a", 0), ("a", 1), ("b", 2), ("b", 3)], 2: [("b", 0)]}, {1: (4, 1.0)})
    single = frames({1: [("a", 0), ("b", 2)], 2: [("b", 0)]}, {1: (4, 1.0)})
    assert credits(attribute(*repeated, "markov")) == credits(attribute(*single, "markov"))


def test_only_touches_up_to_the_conversion_and_inside_the_lookback_count():
    touches, conversions = frames({1: [("old", 0), ("mid", 20), ("new", 29), ("after", 31)]}, {1: (30, 1.0)})
    assert credits(attribute(touches, conversions, "first_touch")) == {"old": 1.0}
    assert credits(attribute(touches, conversions, "last_touch")) == {"new": 1.0}
    assert credits(attribute(touches, conversions, "first_touch", lookback_days=15)) == {"mid": 1.0}
    assert credits(attribute(touches, conversions, "first_touch", lookback_days=5)) == {"new": 1.0}
    assert credits(attribute(touches, conversions, "first_touch", lookback_days=0.5)) == {UNATTRIBUTED: 1.0}


def test_ties_in_time_keep_the_input_order():
    touches, conversions = frames({1: [("b", 1), ("a", 1)]}, {1: (2, 1.0)})
    assert credits(attribute(touches, conversions, "first_touch")) == {"b": 1.0}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_model_credits_exactly_the_conversions_and_their_value(seed):
    rng = np.random.default_rng(seed)
    n_leads, n_touches = 400, 3000
    touches = pd.DataFrame({
        "lead_id": rng.integers(0, n_leads, n_touches),
        "channel": rng.choice(list("abcdefg"), n_touches),
        "occurred_at": T0 + pd.to_timedelta(rng.uniform(0, 120, n_touches), unit="D"),
    })
    converted = rng.choice(n_leads + 50, 150, replace=False)  # some converters have no touches at all
    conversions = pd.DataFrame({
        "lead_id": converted,
        "converted_at": T0 + pd.to_timedelta(rng.uniform(0, 130, len(converted)), unit="D"),
        "value": rng.choice([0.0, 1000.0, 25_000.0], len(converted)),
        "lead_created_at": T0 + pd.to_timedelta(rng.uniform(0, 60, len(converted)), unit="D"),
        "opportunity_created_at": T0 + pd.to_timedelta(rng.uniform(30, 130, len(converted)), unit="D"),
    })
    table = attribute_all(touches, conversions, MODELS, lookback_days=60)
    for model, credit in table.groupby("model"):
        assert credit["conversions"].sum() == pytest.approx(len(conversions)), model
        assert credit["value"].sum() == pytest.approx(conversions["value"].sum()), model
        assert (credit["conversions"] >= -1e-12).all(), model
        single = attribute(touches, conversions, model, lookback_days=60)
        assert single["conversions"].to_dict() == pytest.approx(
            credit.set_index("channel")["conversions"].to_dict()), model


def test_split_by_month_adds_up_to_the_whole():
    touches, conversions = HAND
    conversions = conversions.assign(month=["2026-03", "2026-03", "2026-04", "2026-04"])
    for model in MODELS:
        split = attribute_by_key(touches, conversions, model, key="month")
        whole = attribute(touches, conversions, model)
        summed = split.groupby("channel")[["conversions", "value"]].sum()
        assert summed["conversions"].to_dict() == pytest.approx(whole["conversions"][whole["conversions"] != 0]
                                                               .to_dict()), model
        assert split.groupby("month")["conversions"].sum().to_dict() == pytest.approx({"2026-03": 2,
                                                                                        "2026-04": 2})


def test_campaigns_can_be_credited_instead_of_channels():
    touches, conversions = frames({1: [("a", 0), ("b", 1)]}, {1: (2, 1.0)})
    touches["campaign"] = ["a / 春季", "b / —"]
    result = attribute(touches, conversions, "linear", by="campaign")
    assert result.index.name == "campaign"
    assert credits(result) == {"a / 春季": 0.5, "b / —": 0.5}


def test_shapley_closed_form_equals_the_textbook_formula_over_all_coalitions():
    rng = np.random.default_rng(11)
    n = 3000
    touches = pd.DataFrame({
        "lead_id": rng.integers(0, 600, n),
        "channel": rng.choice([f"ch{i}" for i in range(7)], n, p=[.3, .2, .15, .15, .1, .05, .05]),
        "occurred_at": T0 + pd.to_timedelta(rng.uniform(0, 50, n), unit="D"),
    })
    conversions = pd.DataFrame({"lead_id": np.arange(0, 600, 3), "converted_at": T0 + 60 * DAY,
                                "value": rng.uniform(0, 1000, 200)})
    journeys = build_journeys(touches, conversions)
    enumerated = shapley_by_enumeration(channel_sets(journeys), journeys.n_channels)
    enumerated_value = shapley_by_enumeration(channel_sets(journeys), journeys.n_channels, "value")
    closed = attribute(touches, conversions, "shapley")
    assert closed.loc[list(journeys.labels), "conversions"].to_numpy() == pytest.approx(enumerated)
    assert closed.loc[list(journeys.labels), "value"].to_numpy() == pytest.approx(enumerated_value)


def test_markov_from_path_strings_matches_markov_from_touches():
    touches, conversions = HAND
    paths = pd.DataFrame({"path": ["微信 > 官网 > 微信", "官网 > 展会", "展会"], "conversions": [1, 1, 0],
                          "nulls": [0, 0, 1], "value": [100.0, 50.0, 0.0]})
    from_paths = markov_paths(paths, value="value")
    from_touches = attribute(touches, conversions, "markov").drop(index=UNATTRIBUTED)
    assert from_paths["conversions"].to_dict() == pytest.approx(from_touches["conversions"].to_dict())
    assert from_paths["value"].to_dict() == pytest.approx(from_touches["value"].to_dict())


def test_unknown_models_and_missing_columns_are_explained():
    touches, conversions = HAND
    with pytest.raises(AttributionError) as caught:
        attribute(touches, conversions, "last_click")
    assert "last_click" in caught.value.localized("en")
    with pytest.raises(AttributionError) as caught:
        attribute(touches.drop(columns="occurred_at"), conversions, "linear")
    assert "occurred_at" in caught.value.localized("zh")
    with pytest.raises(AttributionError):
        attribute(touches, conversions, "time_decay", half_life_days=0)
    with pytest.raises(AttributionError):
        attribute(touches, conversions, "linear", halflife=3)


def test_no_conversions_gives_an_empty_credit():
    touches, conversions = HAND
    result = attribute(touches, conversions.iloc[0:0], "markov")
    assert result["conversions"].sum() == 0
