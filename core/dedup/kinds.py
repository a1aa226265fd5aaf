"""Field kinds of the duplicate engine: how each kind is prepared, blocked and compared.

Each kind turns a column into positional arrays once (per distinct value), offers blocking keys, and compares
aligned arrays of row positions ``i``/``j`` all at once: equality through integer codes, string similarity
through rapidfuzz ``cpdist`` (C++, no Python loop per pair). A comparison gives each pair a *level* (a reason
code such as ``typo``) and *points*: positive for agreement, negative for disagreement, 0 when a side is empty.
Agreement on a value many records share counts less — a switchboard number, a common name, a big company.

Preparation happens in two steps so that a batch checked against a large base only pays for what it compares:
``prepare`` computes what blocking needs for every row; ``complete`` adds the comparison features for the rows
that appear in at least one candidate pair.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from pypinyin import Style, lazy_pinyin
from rapidfuzz import distance, fuzz

from core import normalize
from core.dedup.fields import (
    ARROW,
    HAN,
    HAN_CLASS,
    NOT_WORD,
    Compared,
    Field,
    TextWords,
    TypoKeys,
    clean_text,
    counts_of,
    lengths_of,
    map_unique,
    objects,
    pairwise,
    share_penalty,
)

KINDS = ("email", "phone", "person_name", "company", "text", "exact", "date")

# Level 0 is always "missing" (a side has no value): no evidence either way.
LEVELS: dict[str, tuple[str, ...]] = {
    "email": ("missing", "exact", "typo", "same_local", "different"),
    "phone": ("missing", "exact", "typo", "different"),
    "person_name": ("missing", "exact", "pinyin", "typo", "initials", "similar", "different"),
    "company": ("missing", "exact", "variant", "abbreviation", "similar", "different"),
    "text": ("missing", "exact", "similar", "different"),
    "exact": ("missing", "exact", "typo", "different"),
    "date": ("missing", "exact", "typo", "different"),
}


# ---------------------------------------------------------------------------------------------------------------
# Email
# ---------------------------------------------------------------------------------------------------------------
_GENERIC_LOCAL_PARTS = frozenset(
    "info sales admin contact service support hr marketing office mail hello webmaster noreply no-reply team "
    "kefu job jobs bd market business postmaster enquiry enquiries help".split()
)


_PLAIN_EMAIL = r"[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}"
_E164 = r"\+\d{7,15}"


def _already(series: pd.Series, pattern: str) -> np.ndarray:
    """Rows whose text is already in normalized form (stored leads are), so normalizing them again is skipped."""
    texts = series.astype(ARROW) if series.dtype != ARROW else series
    return texts.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)


def _prepare_email(f: Field, series: pd.Series, frame: pd.DataFrame) -> None:
    raw = objects(series)
    value = raw.copy()
    plain = _already(pd.Series(raw, dtype=object).where(pd.notna(raw), None), _PLAIN_EMAIL)
    rest = pd.notna(raw) & ~plain
    if rest.any():
        value[rest] = objects(normalize.email_normalize(pd.Series(raw[rest], dtype=object)))
    value = np.array([v if isinstance(v, str) and "@" in v else None for v in value], dtype=object)
    codes, uniques = pd.factorize(value, use_na_sentinel=True)
    codes = codes.astype(np.int64)
    uniques = np.asarray(uniques, dtype=object)
    # Per distinct address: the mailbox name without "+tag", the domain, and the halves of the mailbox name
    # (a typo leaves one half intact) with the domain.
    n = len(uniques)
    local_u, domain_u = np.empty(n, dtype=object), np.empty(n, dtype=object)
    first_u, second_u = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
    for k, address in enumerate(uniques):
        local, _, domain = address.partition("@")
        local = local.split("+", 1)[0]
        local_u[k], domain_u[k] = local, domain
        if len(local) >= 6:
            half = len(local) // 2
            first_u[k], second_u[k] = f"{local[:half]}…@{domain}", f"…{local[half:]}@{domain}"
    key_u = np.array([x if len(x) >= 4 and x not in _GENERIC_LOCAL_PARTS else None for x in local_u], dtype=object)
    present = codes >= 0

    def spread(per_unique: np.ndarray) -> np.ndarray:
        out = np.full(len(codes), None, dtype=object)
        out[present] = per_unique[codes[present]]
        return out

    f.a.update(value=value, local_key=spread(key_u), domain=spread(domain_u))
    f.a["value#codes"], f.a["value#uniques"] = codes, uniques
    f.a["count"] = counts_of(codes)
    f.a["local_count"] = counts_of(f.codes("local_key"))
    keys = []
    for name, per_unique in (("first_half", first_u), ("second_half", second_u)):
        rows = np.flatnonzero(present)
        texts = per_unique[codes[rows]]
        has = pd.notna(texts)
        keys.append((name, pd.Series(texts[has], index=rows[has], dtype=object)))
    f.keys = [("value", "value"), ("local", "local_key"), *keys]
    f.coarse = None


def _complete_email(f: Field, rows: np.ndarray) -> None:
    length = np.zeros(len(rows), dtype=np.int64)
    length[rows] = lengths_of(f.a["value"][rows])
    f.a["length"] = length


def _compare_email(f: Field, i: np.ndarray, j: np.ndarray) -> Compared:
    out = Compared.empty(len(i))
    both = f.both("value", i, j)
    exact = f.equal("value", i, j)
    count = f.a["count"][i]
    out.set(exact, 1, np.maximum(10.0 - share_penalty(count, 1.5), 1.0))
    out.identifiers(exact, count)
    idx = np.flatnonzero(both & ~exact)
    if len(idx):
        dist = f.similarity("value", i[idx], j[idx], distance.OSA.distance)
        shortest = np.minimum(f.a["length"][i[idx]], f.a["length"][j[idx]])
        out.set_at(idx, (dist <= 1) | ((dist <= 2) & (shortest >= 12)), 2, 5.0)
        same_local = f.equal("local_key", i, j)
        out.set(same_local, 3, np.maximum(4.0 - share_penalty(f.a["local_count"][i], 1.0), 0.5))
        out.set(both & ~exact, 4, -0.75)  # people have a work and a private address
    return out


# ---------------------------------------------------------------------------------------------------------------
# Phone
# ---------------------------------------------------------------------------------------------------------------
def _phone_fallback(raw: Any) -> str | None:
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", str(raw)))
    return digits if len(digits) >= 6 else None


def _prepare_phone(f: Field, series: pd.Series, frame: pd.DataFrame) -> None:
    raw = objects(series)
    value = raw.copy()
    plain = _already(pd.Series(raw, dtype=object).where(pd.notna(raw), None), _E164)
    rest = pd.notna(raw) & ~plain
    if rest.any():
        value[rest] = objects(normalize.phone_e164(pd.Series(raw[rest], dtype=object)))
    invalid = pd.isna(value) & pd.notna(objects(series))
    if invalid.any():  # not a valid number, but its digits still identify someone
        value[invalid] = map_unique(objects(series), _phone_fallback, rows=invalid)[invalid]
    texts = pd.Series(value, dtype=ARROW)
    digits_series = texts.str.replace(r"^\+86", "", regex=True).str.lstrip("+")
    long_enough = (digits_series.str.len() >= 8).fillna(False).astype(bool)
    digits = objects(digits_series)
    last8 = objects(digits_series.str.slice(-8).where(long_enough))
    f.a.update(value=value, digits=digits, last8=last8)
    f.a["count"] = counts_of(f.codes("value"))
    f.keys = [("value", "value"), ("last8", "last8"), ("typo", TypoKeys(digits, 7))]
    f.a["suffix"] = objects(digits_series.str.slice(-4))
    f.coarse = "suffix"


def _compare_phone(f: Field, i: np.ndarray, j: np.ndarray) -> Compared:
    out = Compared.empty(len(i))
    both = f.both("value", i, j)
    # The same number, with or without an area code or country prefix.
    exact = f.equal("value", i, j) | (both & f.equal("last8", i, j))
    count = np.maximum(f.a["count"][i], f.a["count"][j])
    out.set(exact, 1, np.maximum(10.0 - share_penalty(count, 1.5), 1.0))
    out.identifiers(exact, count)
    idx = np.flatnonzero(both & ~exact)
    if len(idx):
        dist = f.similarity("digits", i[idx], j[idx], distance.OSA.distance)
        out.set_at(idx, dist <= 1, 2, 4.0)
        out.set(both & ~exact, 3, -0.75)  # a mobile and an office line, an old and a new number
    return out


# ---------------------------------------------------------------------------------------------------------------
# Person names
# ---------------------------------------------------------------------------------------------------------------
_COMPOUND_SURNAMES = frozenset(("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "夏侯",
                                "长孙", "宇文", "端木", "司徒", "澹台", "万俟", "单于", "轩辕", "呼延"))


@lru_cache(maxsize=65536)
def _char_pinyin(char: str) -> str:
    syllables = lazy_pinyin(char, style=Style.NORMAL, errors="ignore")
    return syllables[0] if syllables else ""


def _name_text(value: Any) -> str | None:
    text = clean_text(value)
    return None if text is None else (NOT_WORD.sub(" ", text).strip() or None)


def _unordered_key(text: str, key: str | None) -> str | None:
    """The name's parts in alphabetical order: for when the surname of a Latin-script name cannot be told
    ("Tian Yu" — 田宇 or 于天?). Chinese characters: the surname and the given name are the two parts."""
    han = "".join(HAN.findall(text))
    if han:
        if not key or len(han) < 2:
            return None
        cut = 2 if han[:2] in _COMPOUND_SURNAMES and len(han) > 2 else 1
        surname = "".join(_char_pinyin(c) for c in han[:cut])
        if not key.startswith(surname):  # a surname with a special reading (单 shan): the key knows better
            return None
        parts = [surname, key[len(surname) :]]
    else:
        ascii_text = text if text.isascii() else unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        parts = re.findall(r"[a-z]+", ascii_text)
    parts = [p for p in parts if p]
    return "|".join(sorted(parts)) if len(parts) >= 2 else None


def _prepare_person_name(f: Field, series: pd.Series, frame: pd.DataFrame) -> None:
    raw = objects(series)
    stored = f"{f.column}_key"
    if stored in frame.columns:  # the stored key (Lead.name_key): no pinyin to compute
        key = objects(frame[stored])
        missing = pd.isna(key) & pd.notna(raw)
        if missing.any():
            key[missing] = objects(normalize.name_key(pd.Series(raw[missing], dtype=object)))
    else:
        key = objects(normalize.name_key(series))
    key = np.array([k if k else None for k in key], dtype=object)
    f.a.update(raw=raw, key=key)
    f.a["count"] = counts_of(f.codes("key"))
    f.keys = [("key", "key")]
    f.coarse = "key"


def _complete_person_name(f: Field, rows: np.ndarray) -> None:
    n = len(rows)
    text = map_unique(f.a["raw"], _name_text, rows)
    key = f.a["key"]
    han = np.zeros(n, dtype=bool)
    unordered = np.full(n, None, dtype=object)
    initial = np.zeros(n, dtype=bool)
    seen: dict[tuple[str, Any], tuple[bool, str | None, bool]] = {}
    for k in np.flatnonzero(rows):
        t = text[k]
        if t is None:
            continue
        found = seen.get((t, key[k]))
        if found is None:
            is_han = bool(HAN.search(t))
            found = (is_han, _unordered_key(t, key[k]), not is_han and any(len(w) == 1 for w in t.split()))
            seen[(t, key[k])] = found
        han[k], unordered[k], initial[k] = found
    key_length = np.zeros(n, dtype=np.int64)
    key_length[rows] = lengths_of(key[rows])
    f.a.update(text=text, han=han, unordered=unordered, has_initial=initial, key_length=key_length)


def _compare_person_name(f: Field, i: np.ndarray, j: np.ndarray) -> Compared:
    out = Compared.empty(len(i))
    both = f.both("key", i, j)
    han_i, han_j = f.a["han"][i], f.a["han"][j]
    agree = np.maximum(5.5 - share_penalty(f.a["count"][i], 0.4), 2.0)
    same_key = f.equal("key", i, j) | f.equal("unordered", i, j)
    # Same characters, or the same Latin spelling in any order: exact. Same pinyin from Latin letters (张伟 /
    # Zhang Wei): nearly as good. Same pinyin, different characters (张伟 / 张玮): homophones are common.
    out.set(f.equal("text", i, j) | (same_key & ~han_i & ~han_j), 1, agree)
    out.set(same_key & ~(han_i & han_j), 2, agree - 0.3)
    out.set(same_key, 2, agree - 1.5)
    idx = np.flatnonzero(both & ~same_key)
    if len(idx):
        li, rj = i[idx], j[idx]
        osa = f.similarity("key", li, rj, distance.OSA.distance)
        jw = f.similarity("key", li, rj, distance.JaroWinkler.normalized_similarity)
        shortest = np.minimum(f.a["key_length"][li], f.a["key_length"][rj])
        typo = ((osa <= 1) & (shortest >= 4)) | ((osa <= 2) & (shortest >= 9)) | (jw >= 0.95)
        unordered_both = f.both("unordered", li, rj)
        if unordered_both.any():
            sub = np.flatnonzero(unordered_both)
            osa_u = f.similarity("unordered", li[sub], rj[sub], distance.OSA.distance)
            typo[sub] |= (osa_u <= 1) & (shortest[sub] >= 4)
        out.set_at(idx, typo, 3, 3.5)
        # "W. Zhang" / "Wei Zhang", "J Smith" / "John Smith".
        candidates = np.flatnonzero(~typo & (f.a["has_initial"][li] | f.a["has_initial"][rj]))
        if len(candidates):
            hit = np.array([_initials_match(f.a["text"][li[k]], f.a["text"][rj[k]]) for k in candidates], dtype=bool)
            out.set_at(idx[candidates], hit, 4, 3.0)
        out.set_at(idx, jw >= 0.88, 5, -1.5)
        out.set(both & ~same_key, 6, -4.5)
    out.agrees = (out.level >= 1) & (out.level <= 4)
    return out


def _initials_match(left: str | None, right: str | None) -> bool:
    if left is None or right is None:
        return False
    a, b = left.split(), right.split()
    if len(a) < 2 or len(b) < 2:
        return False
    short, long_ = (a, b) if sum(map(len, a)) <= sum(map(len, b)) else (b, a)
    rest = list(long_)
    for token in short:
        match = next((t for t in rest if (t == token if len(token) > 1 else t.startswith(token))), None)
        if match is None:
            return False
        rest.remove(match)
    return True


# ---------------------------------------------------------------------------------------------------------------
# Companies
# ---------------------------------------------------------------------------------------------------------------
_LEADING_PLACE = re.compile(
    "^(?:" + "|".join(sorted(set(normalize.PROVINCES) | set(normalize.CITIES), key=len, reverse=True)) + ")(?:市|省)?"
)
_ACRONYM_DROP = frozenset("co ltd limited inc corp corporation company group holdings llc plc gmbh the and of".split())


def _without_leading_place(key: str) -> str:
    """The key without a leading province or city even when little is left ("北京鑫通" → "鑫通"): the stored key
    keeps short names whole, right for blocking but it hides "北京鑫通" ≈ "鑫通软件"."""
    stripped = _LEADING_PLACE.sub("", key)
    return stripped if len(stripped) >= 2 else key


def _acronym(text: str) -> str | None:
    if HAN.search(text):
        return None
    tokens = [t for t in re.findall(r"[a-z0-9]+", text) if t not in _ACRONYM_DROP]
    return "".join(t[0] for t in tokens) if len(tokens) >= 2 else None


def _prepare_company(f: Field, series: pd.Series, frame: pd.DataFrame) -> None:
    raw = objects(series)
    stored = f"{f.column}_key"
    if stored in frame.columns:  # the stored key (Lead.company_key)
        key = objects(frame[stored])
        missing = pd.isna(key) & pd.notna(raw)
        if missing.any():
            key[missing] = objects(normalize.company_key(pd.Series(raw[missing], dtype=object)))
    else:
        key = objects(normalize.company_key(series))
    key = np.array([k if k else None for k in key], dtype=object)
    f.a.update(raw=raw, key=key)
    f.a["count"] = counts_of(f.codes("key"))
    f.keys = [("key", "key")]
    f.coarse = "key"


def _complete_company(f: Field, rows: np.ndarray) -> None:
    key = f.a["key"]
    loose = map_unique(key, _without_leading_place, rows)
    acronym = map_unique(map_unique(f.a["raw"], clean_text, rows), _acronym, rows)
    key_length = np.zeros(len(rows), dtype=np.int64)
    key_length[rows] = lengths_of(key[rows])
    f.a.update(loose=loose, acronym=acronym, key_length=key_length)


def _contains(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The shorter value lies inside the longer one (at least 2 Chinese or 4 Latin characters)."""
    out = np.zeros(len(left), dtype=bool)
    if not len(left):
        return out
    shortest = np.minimum(lengths_of(left), lengths_of(right))
    minimum = np.array([2 if HAN.search(x) else 4 for x in left], dtype=np.int64)
    check = np.flatnonzero(shortest >= minimum)
    if len(check):
        lcs = pairwise(distance.LCSseq.similarity, left[check], right[check])  # a cheap filter first
        possible = check[lcs >= shortest[check]]
        out[possible] = [(x in y) or (y in x) for x, y in zip(left[possible], right[possible], strict=True)]
    return out


def _contained(f: Field, name: str, li: np.ndarray, rj: np.ndarray) -> np.ndarray:
    return f.on_distinct(name, li, rj, _contains)


def _abbreviates(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """上海交通大学 / 上海交大: the shorter Chinese name's characters in order in the longer one, starting alike."""
    out = np.zeros(len(left), dtype=bool)
    if not len(left):
        return out
    shortest = np.minimum(lengths_of(left), lengths_of(right))
    lcs = pairwise(distance.LCSseq.similarity, left, right)
    check = np.flatnonzero((lcs >= shortest) & (shortest >= 2))
    out[check] = [x[0] == y[0] and bool(HAN.match(x)) and bool(HAN.match(y))
                  for x, y in zip(left[check], right[check], strict=True)]
    return out


def _compare_company(f: Field, i: np.ndarray, j: np.ndarray) -> Compared:
    out = Compared.empty(len(i))
    both = f.both("key", i, j)
    exact = f.equal("key", i, j)
    out.set(exact, 1, np.maximum(3.5 - share_penalty(f.a["count"][i], 0.3), 1.5))
    idx = np.flatnonzero(both & ~exact)
    if len(idx):
        li, rj = i[idx], j[idx]
        ratio = f.similarity("key", li, rj, fuzz.ratio)
        variant = (ratio >= 90) | _contained(f, "key", li, rj) | _contained(f, "loose", li, rj)
        out.set_at(idx, variant, 2, 2.5)
        abbreviation = f.on_distinct("key", li, rj, _abbreviates)
        la, ra = f.a["acronym"][li], f.a["acronym"][rj]
        left, right = f.a["key"][li], f.a["key"][rj]
        shortest = np.minimum(f.a["key_length"][li], f.a["key_length"][rj])
        abbreviation |= ((left == ra) | (right == la)) & (shortest >= 2)
        out.set_at(idx, abbreviation, 3, 2.0)
        out.set_at(idx, ratio >= 75, 4, 0.8)
        out.set(both & ~exact, 5, -1.0)  # people change jobs; groups have several companies
    return out


# ---------------------------------------------------------------------------------------------------------------
# Text, exact values, dates
# ---------------------------------------------------------------------------------------------------------------
_WORD = re.compile(f"[a-z0-9]+|[{HAN_CLASS}]+")


def _text_tokens(text: str) -> list[str] | None:
    """Words of a text: Latin/digit runs, and character pairs of Chinese runs (Chinese has no spaces)."""
    tokens: set[str] = set()
    for run in _WORD.findall(text):
        if HAN.match(run):
            tokens.update(run[k : k + 2] for k in range(max(1, len(run) - 1)))
        elif len(run) >= 2 or run.isdigit():
            tokens.add(run)
    return sorted(tokens) or None


def _prepare_text(f: Field, series: pd.Series, frame: pd.DataFrame) -> None:
    value = map_unique(objects(series), clean_text)
    f.a["value"] = value
    f.a["count"] = counts_of(f.codes("value"))
    # The words of a text are keys too (words many rows share make oversized blocks and drop out there).
    # Words of a text are keys too (words many rows share make oversized blocks and drop out there) — unless
    # the record has stronger keys (see engine.prepare), where a text is supporting evidence only.
    f.keys = [("value", "value"), ("word", TextWords(f, _text_tokens))]
    f.coarse = "value"


def _compare_text(f: Field, i: np.ndarray, j: np.ndarray) -> Compared:
    out = Compared.empty(len(i))
    both = f.both("value", i, j)
    exact = f.equal("value", i, j)
    out.set(exact, 1, np.clip(2.5 - share_penalty(f.a["count"][i], 0.5), 0.3, 2.5))
    idx = np.flatnonzero(both & ~exact)
    if len(idx):
        li, rj = i[idx], j[idx]
        ratio = f.similarity("value", li, rj, fuzz.token_set_ratio)
        out.set_at(idx, (ratio >= 85) | _contained(f, "value", li, rj), 2, 1.0)
        out.set(both & ~exact, 3, -0.5)
    return out


def _exact_value(value: Any) -> str | None:
    return NOT_WORD.sub("", clean_text(value) or "") or None


def _exact_values(series: pd.Series) -> np.ndarray:
    """``_exact_value`` for a column: plain ASCII cells in one vectorized pass, the rest one by one."""
    raw = objects(series)
    texts = pd.Series(raw, dtype=object).where(pd.notna(raw), None).astype(str).astype(ARROW)
    texts = texts.where(pd.notna(raw))
    plain = texts.str.isascii().fillna(False).to_numpy(dtype=bool)
    value = objects(texts.str.lower().str.replace(r"[^0-9a-z_]+", "", regex=True))
    if (~plain & pd.notna(raw)).any():
        value[~plain] = map_unique(raw, _exact_value, ~plain)[~plain]
    return np.array([v if v else None for v in value], dtype=object)


def _prepare_exact(f: Field, series: pd.Series, frame: pd.DataFrame) -> None:
    value = _exact_values(series)
    f.a["value"] = value
    f.a["count"] = counts_of(f.codes("value"))
    f.keys = [("value", "value"), ("typo", TypoKeys(value, 6))]
    f.coarse = "value"


def _complete_exact(f: Field, rows: np.ndarray) -> None:
    length = np.zeros(len(rows), dtype=np.int64)
    length[rows] = lengths_of(f.a["value"][rows])
    f.a["value_length"] = length


def _compare_exact(f: Field, i: np.ndarray, j: np.ndarray) -> Compared:
    out = Compared.empty(len(i))
    both = f.both("value", i, j)
    exact = f.equal("value", i, j)
    count = f.a["count"][i]
    out.set(exact, 1, np.maximum(10.0 - share_penalty(count, 1.5), 0.3))
    out.identifiers(exact, count)
    idx = np.flatnonzero(both & ~exact)
    if len(idx):
        li, rj = i[idx], j[idx]
        dist = f.similarity("value", li, rj, distance.OSA.distance)
        shortest = np.minimum(f.a["value_length"][li], f.a["value_length"][rj])
        out.set_at(idx, (dist <= 1) & (shortest >= 6), 2, 2.5)
        out.set(both & ~exact, 3, -1.5)
    return out


def _iso_date(value: Any) -> str | None:
    if hasattr(value, "year") and hasattr(value, "month"):
        try:
            return pd.Timestamp(value).strftime("%Y%m%d")
        except (ValueError, TypeError):
            return None
    text = clean_text(value)
    if text is None:
        return None
    if re.fullmatch(r"\d{8}", text):  # 19870412, as many files write it
        return text
    try:
        stamp = pd.to_datetime(text, errors="coerce", format="mixed")
    except (ValueError, TypeError):
        return None
    return None if stamp is None or pd.isna(stamp) else stamp.strftime("%Y%m%d")


def _prepare_date(f: Field, series: pd.Series, frame: pd.DataFrame) -> None:
    value = map_unique(objects(series), _iso_date)
    f.a["value"] = value
    f.a["count"] = counts_of(f.codes("value"))
    f.keys = [("value", "value")]
    f.coarse = "value"


def _complete_date(f: Field, rows: np.ndarray) -> None:
    digits = np.array([0 if v is None else int(v) for v in f.a["value"]], dtype=np.int64)
    f.a.update(year=digits // 10000, month=digits // 100 % 100, day=digits % 100)


def _compare_date(f: Field, i: np.ndarray, j: np.ndarray) -> Compared:
    out = Compared.empty(len(i))
    both = f.both("value", i, j)
    exact = f.equal("value", i, j)
    out.set(exact, 1, np.maximum(4.0 - share_penalty(f.a["count"][i], 0.5), 1.0))
    idx = np.flatnonzero(both & ~exact)
    if len(idx):
        li, rj = i[idx], j[idx]
        dist = f.similarity("value", li, rj, distance.OSA.distance)
        y, m, d = f.a["year"], f.a["month"], f.a["day"]
        swapped = (y[li] == y[rj]) & (m[li] == d[rj]) & (d[li] == m[rj])  # 04/12 read as 12/04
        out.set_at(idx, (dist <= 1) | swapped, 2, 1.5)
        out.set(both & ~exact, 3, -2.5)
    return out


PREPARE: dict[str, Callable[[Field, pd.Series, pd.DataFrame], None]] = {
    "email": _prepare_email, "phone": _prepare_phone, "person_name": _prepare_person_name,
    "company": _prepare_company, "text": _prepare_text, "exact": _prepare_exact, "date": _prepare_date,
}
COMPLETE: dict[str, Callable[[Field, np.ndarray], None]] = {
    "email": _complete_email, "person_name": _complete_person_name, "company": _complete_company,
    "exact": _complete_exact, "date": _complete_date,
}
COMPARE: dict[str, Callable[[Field, np.ndarray, np.ndarray], Compared]] = {
    "email": _compare_email, "phone": _compare_phone, "person_name": _compare_person_name,
    "company": _compare_company, "text": _compare_text, "exact": _compare_exact, "date": _compare_date,
}

__all__ = ["COMPARE", "COMPLETE", "KINDS", "LEVELS", "PREPARE"]
