"""The duplicate-finding engine: any DataFrame in, scored candidate pairs out.

``find_duplicates(frame, fields)`` works on any record set whose index holds record ids; ``fields`` maps column
names to a kind (email, phone, person_name, company, text, exact, date — see ``core.dedup.kinds``):

1. **Prepare** each field once per distinct value (``core.normalize``): E.164 phones, normalized emails, pinyin
   name keys, company keys without legal suffixes and places, half-width lower-case text, ISO dates. A frame
   that already holds a derived key (``name_key`` beside ``name``, ``company_key`` beside ``company`` — the
   stored ``Lead`` columns) is used as it is, so a scan over stored leads does not recompute pinyin.
2. **Block**: records are compared only when they share a key — an exact value, or a cheap fuzzy key: the phone
   with one digit deleted (which catches every single-digit typo and swap), each half of an email's local part,
   the email local part alone, the pinyin name, the company key, the words of a text. Blocks too large to say
   anything (a common name, a big company) are split by combining their key with a name, company, phone-suffix
   or other key of the same records. Nobody is compared with everybody.
3. **Score** every candidate pair field by field, all pairs at once (rapidfuzz ``cpdist``). Points for and
   against add up, as in Fellegi–Sunter record linkage, and a logistic curve turns them into a score in 0..1.

A score reaches the automatic-merge band only when the pair agrees exactly on an identifier (an email, a phone
or an ``exact`` value held by no other record; held by three or four records, only when the names agree too)
and no field clearly contradicts it; evidence that is only fuzzy stops below that band and goes to review. That
is the rule a careful person applies: "same mobile, same name" is certain; "same name at what looks like the
same company, one digit off in the phone" deserves a look.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.dedup.fields import Field, TextWords, TypoKeys
from core.dedup.kinds import COMPARE, COMPLETE, KINDS, LEVELS, PREPARE

# The lead columns and their kinds: the default when ``fields`` is not given.
LEAD_FIELDS: dict[str, str] = {
    "name": "person_name",
    "email": "email",
    "phone": "phone",
    "wechat_id": "exact",
    "company": "company",
    "title": "text",
    "city": "text",
}
PAIR_COLUMNS = ["left", "right", "score", "reasons"]
MAX_BLOCK = 50  # records sharing one key; larger blocks are split with a second key or left out
_IDENTITY_KINDS = frozenset({"person_name", "company"})
_STRONG_KINDS = frozenset({"email", "phone", "person_name", "company", "exact"})

# Logistic curve from points to a score: score = 1 / (1 + exp(-(points - MIDPOINT) / SCALE)).
MIDPOINT = 5.5
SCALE = 1.2
# Without an exact identifier, or with a clear contradiction, points stop here (score ≈ 0.91).
FUZZY_CEILING = MIDPOINT + 2.8
CONTRADICTION = -3.0  # a field whose points are this low or lower blocks an automatic merge


def _resolve_fields(frame: pd.DataFrame, fields: Mapping[str, str] | None) -> dict[str, str]:
    chosen = {c: k for c, k in LEAD_FIELDS.items() if c in frame.columns} if fields is None else dict(fields)
    unknown = sorted({k for k in chosen.values() if k not in KINDS})
    if unknown:
        raise ValueError(f"Unknown field kind(s): {', '.join(unknown)}; use one of {', '.join(KINDS)}.")
    missing = [c for c in chosen if c not in frame.columns]
    if missing:
        raise KeyError(f"Column(s) not in the frame: {', '.join(missing)}.")
    if not chosen:
        raise ValueError("No field to compare: name at least one column and its kind.")
    return chosen


def prepare(frame: pd.DataFrame, fields: Mapping[str, str] | None = None) -> list[Field]:
    """What blocking needs, for every row of ``frame`` (positional)."""
    chosen = _resolve_fields(frame, fields)
    positional = frame.reset_index(drop=True)
    prepared = []
    for column, kind in chosen.items():
        f = Field(column, kind)
        PREPARE[kind](f, positional[column], positional)
        prepared.append(f)
    return prepared


def complete(prepared: list[Field], rows: np.ndarray) -> None:
    """The comparison features, for the rows (boolean mask) that appear in a candidate pair."""
    for f in prepared:
        if f.kind in COMPLETE:
            COMPLETE[f.kind](f, rows)


# ---------------------------------------------------------------------------------------------------------------
# Blocking
# ---------------------------------------------------------------------------------------------------------------
def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct int64 values (sorting beats hashing for the millions of pair codes)."""
    if not len(values):
        return values
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]]


def _key_frame(prepared: list[Field], focus: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row positions, key codes and field numbers of every blocking key; with ``focus``, only the keys that a
    focused row holds (a batch against the base)."""
    positions, keys, numbers = [], [], []
    offset = 0
    # Text words block only records that have nothing stronger (a product title, an address); in lead data
    # titles and cities are supporting evidence, and their words would only add chance pairs.
    text_words = not any(f.kind in _STRONG_KINDS for f in prepared)
    for number, f in enumerate(prepared):
        for _, values in f.keys:
            if isinstance(values, str):  # a per-row array already factorized for the comparisons
                codes = f.codes(values)
                width = len(f.a[f"{values}#uniques"])
                pos = np.flatnonzero(codes >= 0)
                codes = codes[pos]
            elif isinstance(values, TextWords) and not text_words:
                continue
            else:
                series = values.build(focus) if isinstance(values, (TypoKeys, TextWords)) else values
                series = series[series.notna()]
                if focus is not None and not series.empty:
                    # Only keys a focused row holds can pair it: drop the others before numbering them.
                    held = series[focus[series.index.to_numpy(dtype=np.int64)]]
                    series = series[series.isin(held.unique())]
                if series.empty:
                    continue
                factorized, uniques = pd.factorize(series)
                width = len(uniques)
                pair = _distinct(series.index.to_numpy(dtype=np.int64) * np.int64(width)
                                 + factorized.astype(np.int64))  # one key once per row
                pos, codes = pair // width, pair % width
            if focus is not None:
                wanted = np.zeros(width, dtype=bool)
                wanted[codes[focus[pos]]] = True
                keep = wanted[codes]
                pos, codes = pos[keep], codes[keep]
            positions.append(pos)
            keys.append(codes + offset)
            numbers.append(np.full(len(pos), number, dtype=np.int64))
            offset += width
    if not positions:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(positions), np.concatenate(keys), np.concatenate(numbers)


def _pairs_from_blocks(positions: np.ndarray, blocks: np.ndarray, focus: np.ndarray | None = None) -> np.ndarray:
    """All pairs (i < j) within each block, as int64 codes ``i << 32 | j``; with ``focus``, only the pairs that
    involve a focused row."""
    if len(positions) < 2:
        return np.zeros(0, dtype=np.int64)
    if focus is not None:
        members = pd.DataFrame({"block": blocks, "other": positions})
        focused = members[focus[positions]].rename(columns={"other": "row"})
        joined = focused.merge(members, on="block")
        left, right = joined["row"].to_numpy(dtype=np.int64), joined["other"].to_numpy(dtype=np.int64)
        low, high = np.minimum(left, right), np.maximum(left, right)
        keep = low != high
        return _distinct((low[keep] << 32) | high[keep])
    order = np.lexsort((positions, blocks))
    positions, blocks = positions[order], blocks[order]
    starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]])
    sizes = np.diff(np.r_[starts, len(blocks)])
    codes = []
    for size in np.unique(sizes[sizes >= 2]):
        members = positions[starts[sizes == size][:, None] + np.arange(size)[None, :]]
        first, second = np.triu_indices(size, 1)
        left, right = members[:, first].ravel(), members[:, second].ravel()
        low, high = np.minimum(left, right), np.maximum(left, right)
        keep = low != high
        codes.append((low[keep] << 32) | high[keep])
    return _distinct(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)


def _block_sizes(keys: np.ndarray) -> np.ndarray:
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    return np.bincount(keys)[keys]


def candidate_pairs(prepared: list[Field], focus: np.ndarray | None = None, max_block: int = MAX_BLOCK) -> np.ndarray:
    """Row-position pairs to compare, as int64 codes ``i << 32 | j`` (i < j)."""
    pos, key, field_numbers = _key_frame(prepared, focus)
    if not len(pos):
        return np.zeros(0, dtype=np.int64)
    sizes = _block_sizes(key)
    small = (sizes >= 2) & (sizes <= max_block)
    codes = [_pairs_from_blocks(pos[small], key[small], focus)]
    # Oversized blocks (a common name, a big company, a shared switchboard): combine the key with a coarse key
    # of another field of the same record, so 张伟 at 某某科技 still meets 张伟 at 某某科技 (and 张伟 with the same
    # phone suffix), but not every other 张伟. One side of the combination is a name or a company.
    # A text's oversized block (a city, a title) needs no splitting of its own: text × name and text × company
    # are the same pairs as the name's or the company's block split by the text.
    text_fields = np.array([f.kind == "text" for f in prepared], dtype=bool)
    big = (sizes > max_block) & ~text_fields[field_numbers]
    if big.any():
        big_pos, big_key, big_field = pos[big], key[big], field_numbers[big]
        parts_pos, parts_key = [], []
        for number, f in enumerate(prepared):
            if f.coarse is None:
                continue
            other = big_field != number
            if f.kind not in _IDENTITY_KINDS:
                other &= np.isin(big_field, [k for k, g in enumerate(prepared) if g.kind in _IDENTITY_KINDS])
            coarse_codes = f.codes(f.coarse)
            rows = big_pos[other]
            present = coarse_codes[rows] >= 0
            if not present.any():
                continue
            parts_pos.append(rows[present])
            span = np.int64(coarse_codes.max() + 1)
            parts_key.append((big_key[other][present] * np.int64(len(prepared)) + number) * span
                             + coarse_codes[rows][present])
        if parts_pos:
            combined_pos = np.concatenate(parts_pos)
            combined_key = pd.factorize(np.concatenate(parts_key))[0].astype(np.int64)
            combined_sizes = _block_sizes(combined_key)
            keep = (combined_sizes >= 2) & (combined_sizes <= max_block)
            codes.append(_pairs_from_blocks(combined_pos[keep], combined_key[keep], focus))
    pairs = _distinct(np.concatenate(codes))
    if focus is not None and len(pairs):
        pairs = pairs[focus[pairs >> 32] | focus[pairs & 0xFFFFFFFF]]
    return pairs


# ---------------------------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------------------------
def score_pairs(prepared: list[Field], left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Scores (0..1) and per-field levels for aligned arrays of row positions."""
    n = len(left)
    points = np.zeros(n)
    identifier = np.zeros(n, dtype=bool)
    shared = np.zeros(n, dtype=bool)
    name_agrees = np.zeros(n, dtype=bool)
    contradiction = np.zeros(n, dtype=bool)
    levels = []
    for f in prepared:
        result = COMPARE[f.kind](f, left, right)
        points += result.points
        identifier |= result.identifier
        shared |= result.shared_identifier
        name_agrees |= result.agrees
        contradiction |= result.points <= CONTRADICTION
        levels.append(result.level)
    # An identifier three or four records share (a family line, an office number) is certain only with the name.
    certain = (identifier | (shared & name_agrees)) & ~contradiction
    capped = np.where(certain, points, np.minimum(points, FUZZY_CEILING))
    scores = 1.0 / (1.0 + np.exp(-(capped - MIDPOINT) / SCALE))
    return np.round(scores, 4), levels


def _reasons(prepared: list[Field], levels: list[np.ndarray], rows: np.ndarray) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(len(rows))]
    for f, level in zip(prepared, levels, strict=True):
        names = LEVELS[f.kind]
        chosen = level[rows]
        for k in np.flatnonzero(chosen):
            out[k].append(f"{f.column}:{names[chosen[k]]}")
    return out


def find_duplicates(
    frame: pd.DataFrame,
    fields: Mapping[str, str] | None = None,
    *,
    only: Iterable[Any] | None = None,
    min_score: float = 0.5,
    max_block: int = MAX_BLOCK,
) -> pd.DataFrame:
    """Candidate duplicate pairs in ``frame`` with their score and reasons, best first.

    ``frame``'s index holds the record ids; ``fields`` maps column names to kinds (default: the lead columns
    present in the frame, ``LEAD_FIELDS``). With ``only`` (record ids), only pairs involving at least one of
    those records are returned — a new import batch against the whole base. Pairs scoring below ``min_score``
    are left out. Columns: ``left``, ``right`` (record ids; ``left`` is the earlier row of the frame), ``score``
    (0..1) and ``reasons`` (``"column:level"`` codes such as ``"name:pinyin"`` or ``"phone:typo"``). The number
    of pairs compared is in ``result.attrs["candidate_pairs"]``.
    """
    if frame.index.has_duplicates:
        raise ValueError("The frame's index must hold unique record ids.")
    empty = pd.DataFrame({c: [] for c in PAIR_COLUMNS})
    empty.attrs["candidate_pairs"] = 0
    if len(frame) < 2:
        return empty
    prepared = prepare(frame, fields)
    focus = None
    if only is not None:
        focus = np.asarray(frame.index.isin(list(only)), dtype=bool)
        if not focus.any():
            return empty
    codes = candidate_pairs(prepared, focus, max_block)
    left, right = codes >> 32, codes & 0xFFFFFFFF
    rows = np.zeros(len(frame), dtype=bool)
    rows[left] = True
    rows[right] = True
    complete(prepared, rows)
    scores, levels = score_pairs(prepared, left, right)
    keep = np.flatnonzero(scores >= min_score)
    ids = frame.index.to_numpy()
    result = pd.DataFrame({"left": ids[left[keep]], "right": ids[right[keep]], "score": scores[keep],
                           "reasons": _reasons(prepared, levels, keep)})
    result = result.sort_values(["score", "left", "right"], ascending=[False, True, True], ignore_index=True)
    result.attrs["candidate_pairs"] = int(len(codes))
    return result


def compare_records(frame: pd.DataFrame, left: Any, right: Any,
                    fields: Mapping[str, str] | None = None) -> tuple[float, list[str]]:
    """Score and reasons of one given pair of records (both ids in ``frame``'s index), blocked or not.

    Shares of values (a common name) are counted within ``frame``; pass the whole record set for the same
    figure ``find_duplicates`` gives."""
    prepared = prepare(frame, fields)
    positions = frame.index.get_indexer([left, right])
    rows = np.zeros(len(frame), dtype=bool)
    rows[positions] = True
    complete(prepared, rows)
    scores, levels = score_pairs(prepared, positions[:1], positions[1:])
    return float(scores[0]), _reasons(prepared, levels, np.array([0]))[0]


def clusters(pairs: pd.DataFrame, threshold: float) -> pd.Series:
    """Cluster ids of the records linked, directly or through others, by pairs scoring at least ``threshold``.

    A Series indexed by record id whose value is the cluster id: the smallest record id of the cluster. Records
    in no such pair are not listed."""
    strong = pairs.loc[pairs["score"] >= threshold, ["left", "right"]] if len(pairs) else None
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    if strong is not None:
        for a, b in zip(strong["left"].tolist(), strong["right"].tolist(), strict=True):
            parent.setdefault(a, a)
            parent.setdefault(b, b)
            ra, rb = find(a), find(b)
            if ra != rb:
                low, high = sorted((ra, rb), key=_sort_key)
                parent[high] = low
    members = sorted(parent, key=_sort_key)
    return pd.Series([find(m) for m in members], index=pd.Index(members, dtype=object if not members else None),
                     name="cluster", dtype=object if not members else None)


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def score_to_points(score: float) -> float:
    """The points behind a score (the inverse of the logistic curve)."""
    score = min(max(score, 1e-9), 1 - 1e-9)
    return MIDPOINT + SCALE * math.log(score / (1 - score))
