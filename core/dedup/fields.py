"""Building blocks of the duplicate engine: positional arrays, prepared fields, comparisons, blocking keys.

A ``Field`` holds one column's derived arrays, aligned with the frame's rows, with integer codes for equality
and a way to compute string similarities once per distinct pair of values. ``Compared`` is what a comparison
gives each pair: a level (a reason code), points, and whether an identifier agreed. The key builders make the
cheap fuzzy blocking keys: deletion neighbourhoods (one typo apart share a key), halves, text words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import process

HAN_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
HAN = re.compile(f"[{HAN_CLASS}]")
_SPACES = re.compile(r"\s+")
NOT_WORD = re.compile(f"[^\\w{HAN_CLASS}]+")
ARROW = "string[pyarrow]"


# ---------------------------------------------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------------------------------------------
def objects(series: pd.Series) -> np.ndarray:
    """The values as a numpy object array with None for every missing value (NaN, NA, NaT)."""
    if series.dtype != object:
        return series.to_numpy(dtype=object, na_value=None, copy=True)
    # Object columns (stored leads): one missing-value pass, and only the missing cells rewritten.
    values = series.to_numpy(dtype=object, copy=True)
    missing = pd.isna(values)
    if missing.any():
        values[missing] = None
    return values


def map_unique(values: np.ndarray, func: Callable[[Any], Any], rows: np.ndarray | None = None) -> np.ndarray:
    """``func`` once per distinct non-missing value (only in ``rows`` when given), spread back; None elsewhere."""
    out = np.full(len(values), None, dtype=object)
    present = pd.notna(values) if values.dtype == object else np.ones(len(values), dtype=bool)
    if rows is not None:
        present &= rows
    if present.any():
        kept = values[present]
        codes, uniques = pd.factorize(kept)
        mapped = np.empty(len(uniques), dtype=object)
        for k, value in enumerate(uniques):
            mapped[k] = func(value)
        out[present] = mapped[codes]
    return out


def codes_of(values: np.ndarray) -> np.ndarray:
    """Integer codes for equality tests (-1 where missing)."""
    return pd.factorize(values, use_na_sentinel=True)[0].astype(np.int64)


def counts_of(codes: np.ndarray) -> np.ndarray:
    """How many rows hold each row's value (0 where missing)."""
    out = np.zeros(len(codes))
    present = codes >= 0
    if present.any():
        out[present] = np.bincount(codes[present])[codes[present]]
    return out


def lengths_of(values: np.ndarray) -> np.ndarray:
    """Text lengths (0 where missing), measured once per distinct value (a number by its text)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lengths = np.fromiter((len(u) if type(u) is str else len(str(u)) for u in uniques), dtype=np.int64,
                          count=len(uniques))
    return np.where(codes >= 0, lengths[np.maximum(codes, 0)] if len(lengths) else 0, 0)


def share_penalty(counts: np.ndarray, weight: float) -> np.ndarray:
    """Points off an agreement on a value held by more rows than the two of the pair."""
    return weight * np.log2(np.maximum(counts, 2.0) / 2.0)


def pairwise(scorer: Callable[..., Any], left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``scorer`` over aligned pairs of strings, in C++ (rapidfuzz ``cpdist``)."""
    if len(left) == 0:
        return np.zeros(0)
    return np.asarray(process.cpdist(left, right, scorer=scorer, workers=1), dtype=np.float64)


def clean_text(value: Any) -> str | None:
    """Half-width, lower-case, whitespace collapsed."""
    text = value if isinstance(value, str) else str(value)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = _SPACES.sub(" ", text).strip().lower()
    return text or None


def deletion_keys(values: np.ndarray, *, min_length: int, rows: np.ndarray | None = None) -> pd.Series:
    """Each value and each value with one character deleted, as an exploded Series indexed by row: strings
    one edit (or one swap of neighbours) apart always share one of these keys; unrelated ones rarely do.
    With ``rows`` (boolean mask) only those rows get keys."""
    texts = pd.Series(values, dtype=ARROW)
    lengths = texts.str.len().fillna(0).to_numpy(dtype=np.int64)
    keep = lengths >= min_length
    if rows is not None:
        keep &= rows
    texts = texts[keep]
    if texts.empty:
        return pd.Series([], dtype=ARROW)
    parts = [texts]
    for k in range(int(lengths[keep].max())):
        cut = texts[lengths[keep] > k]
        parts.append(cut.str.slice(0, k) + cut.str.slice(k + 1))
    return pd.concat(parts)


def halves(values: np.ndarray, *, min_length: int) -> tuple[pd.Series, pd.Series]:
    """The first and the second half of each value (one of them survives a single typo), by row."""
    texts = pd.Series(values, dtype=ARROW)
    lengths = texts.str.len().fillna(0).to_numpy(dtype=np.int64)
    firsts, seconds = [], []
    for length in np.unique(lengths[lengths >= min_length]):
        group = texts[lengths == length]
        firsts.append(group.str.slice(0, int(length) // 2))
        seconds.append(group.str.slice(int(length) // 2))
    if not firsts:
        return pd.Series([], dtype=ARROW), pd.Series([], dtype=ARROW)
    return pd.concat(firsts), pd.concat(seconds)


def digit_deletion_keys(values: np.ndarray, *, min_length: int) -> pd.Series | None:
    """``deletion_keys`` of digit strings (phones) as integers, or None when some value is not a digit string of
    at most 18 digits. Each string is read as the number ``1`` followed by its digits, so leading zeros count,
    and deleting the digit ``j`` places from the right is arithmetic on the whole array: the millions of keys of
    a large import are built, compared and numbered as integers, many times faster than as strings."""
    texts = pd.Series(values, dtype=ARROW)
    present = texts.notna().to_numpy(dtype=bool)
    if not present.any():
        return None
    if not texts[present].str.fullmatch(r"[0-9]{1,18}").all():
        return None
    lengths = texts.str.len().fillna(0).to_numpy(dtype=np.int64)
    rows = np.flatnonzero(lengths >= min_length)
    if not len(rows):
        return pd.Series([], dtype=np.int64)
    width = lengths[rows]
    numbers = texts.iloc[rows].astype(np.int64).to_numpy() + np.power(10, width, dtype=np.int64)
    positions, keys = [rows], [numbers]
    for j in range(int(width.max())):
        place = np.int64(10) ** j
        longer = width > j
        kept = numbers[longer]
        keys.append(kept // (place * 10) * place + kept % place)
        positions.append(rows[longer])
    return pd.Series(np.concatenate(keys), index=np.concatenate(positions))


@dataclass
class TypoKeys:
    """Deferred deletion keys: for a whole scan every row gets them; for a batch against a base only the rows
    that keep the first or the last part of some batch value (one typo leaves one of them intact) do, so a
    batch of 1,000 does not pay for 100,000 rows' keys. Digit strings get every row's keys as integers, which
    costs less than any selection."""

    values: np.ndarray
    min_length: int

    def build(self, focus: np.ndarray | None) -> pd.Series:
        numeric = digit_deletion_keys(self.values, min_length=self.min_length)
        if numeric is not None:
            return numeric
        if focus is None:
            return deletion_keys(self.values, min_length=self.min_length)
        texts = pd.Series(self.values, dtype=ARROW)
        lengths = texts.str.len().fillna(0).to_numpy(dtype=np.int64)
        batch = focus & (lengths >= self.min_length)
        if not batch.any():
            return pd.Series([], dtype=ARROW)
        part = max(2, (int(lengths[batch].min()) - 1) // 2)
        near = np.isin(lengths, np.unique(np.concatenate([lengths[batch] + d for d in (-1, 0, 1)])))
        rows = focus.copy()
        for piece in (texts.str.slice(0, part), texts.str.slice(-part)):
            wanted = piece[batch].unique()
            rows |= near & piece.isin(wanted).fillna(False).to_numpy(dtype=bool)
        return deletion_keys(self.values, min_length=self.min_length, rows=rows)


@dataclass
class TextWords:
    """Deferred word keys of a text field, built only when the frame has no stronger field to block on."""

    field: Field
    tokenize: Callable[[str], list[str] | None]

    def build(self, focus: np.ndarray | None) -> pd.Series:
        return tokens_by_row(self.field, self.tokenize)


# ---------------------------------------------------------------------------------------------------------------
# Prepared field
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Field:
    """One column's derived arrays, positional (aligned with the frame's rows)."""

    column: str
    kind: str
    a: dict[str, np.ndarray] = field(default_factory=dict)
    # Blocking keys: (name, the name of a per-row array of ``a``, an exploded Series indexed by row, or
    # ``TypoKeys``).
    keys: list[tuple[str, Any]] = field(default_factory=list)
    coarse: str | None = None  # the array combined with another field's oversized block

    def codes(self, name: str) -> np.ndarray:
        cached = self.a.get(f"{name}#codes")
        if cached is None:
            codes, uniques = pd.factorize(self.a[name], use_na_sentinel=True)
            cached = codes.astype(np.int64)
            self.a[f"{name}#codes"] = cached
            self.a[f"{name}#uniques"] = np.asarray(uniques, dtype=object)
        return cached

    def on_distinct(self, name: str, i: np.ndarray, j: np.ndarray,
                    func: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
        """``func(left_values, right_values)`` computed once per distinct pair of values and spread back over
        the pairs (both sides present): a title or a big company repeats across thousands of pairs."""
        codes = self.codes(name)
        uniques = self.a[f"{name}#uniques"]
        ci, cj = codes[i], codes[j]
        combined = ci * np.int64(len(uniques) + 1) + cj
        first, distinct = pd.factorize(combined)
        distinct = np.asarray(distinct, dtype=np.int64)
        left = uniques[distinct // (len(uniques) + 1)]
        right = uniques[distinct % (len(uniques) + 1)]
        return np.asarray(func(left, right))[first]

    def similarity(self, name: str, i: np.ndarray, j: np.ndarray, scorer: Callable[..., Any]) -> np.ndarray:
        return self.on_distinct(name, i, j, lambda x, y: pairwise(scorer, x, y))

    def equal(self, name: str, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        codes = self.codes(name)
        return (codes[i] == codes[j]) & (codes[i] >= 0)

    def both(self, name: str, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        codes = self.codes(name)
        return (codes[i] >= 0) & (codes[j] >= 0)


@dataclass
class Compared:
    points: np.ndarray
    level: np.ndarray  # index into LEVELS[kind]
    identifier: np.ndarray  # exact agreement on an identifier held by this pair only
    shared_identifier: np.ndarray  # exact agreement on an identifier held by three or four rows
    agrees: np.ndarray  # a name that agrees (makes a shared identifier certain)

    @classmethod
    def empty(cls, n: int) -> Compared:
        return cls(np.zeros(n), np.zeros(n, dtype=np.int8), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool),
                   np.zeros(n, dtype=bool))

    def set(self, mask: np.ndarray, level: int, points: np.ndarray | float) -> None:
        """Give ``level`` to the pairs in ``mask`` that have no level yet (the first rule that matches wins)."""
        free = mask & (self.level == 0)
        if free.any():
            self.level[free] = level
            self.points[free] = points[free] if isinstance(points, np.ndarray) else points

    def set_at(self, idx: np.ndarray, hit: np.ndarray, level: int, points: float) -> None:
        """``set`` for the sub-array ``idx`` of pairs where ``hit`` holds."""
        mask = np.zeros(len(self.level), dtype=bool)
        mask[idx[hit]] = True
        self.set(mask, level, points)

    def identifiers(self, exact: np.ndarray, count: np.ndarray) -> None:
        self.identifier |= exact & (count <= 2)
        self.shared_identifier |= exact & (count > 2) & (count <= 4)


def tokens_by_row(f: Field, tokenize: Callable[[str], list[str] | None]) -> pd.Series:
    """The tokens of each row's value, tokenized once per distinct value, as an exploded Series by row."""
    codes = f.codes("value")
    uniques = f.a["value#uniques"]
    owner, tokens = [], []
    for code, value in enumerate(uniques):
        for token in tokenize(value) or ():
            owner.append(code)
            tokens.append(token)
    if not tokens:
        return pd.Series([], dtype=object)
    table = pd.DataFrame({"code": owner, "token": tokens})
    rows = pd.DataFrame({"code": codes, "pos": np.arange(len(codes))})
    joined = rows[codes >= 0].merge(table, on="code")
    return pd.Series(joined["token"].to_numpy(dtype=object), index=joined["pos"].to_numpy())


def _explode(lists: Any) -> pd.Series:
    series = pd.Series(list(lists), dtype=object).explode()
    return series[series.notna()]
