"""Checks of contact values that make a lead invalid (kept with its reason, never dropped)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
from disposable_email_domains import blocklist as _DISPOSABLE

# Numbers people type into forms when they do not want to be called: the textbook example, repeated digits,
# counting sequences.
FAKE_PHONES = frozenset({
    "+8613800138000", "+8613800000000", "+8613888888888", "+8613900000000",
    "+8612345678901", "+8612345678910", "+8618888888888", "+8613333333333",
})
_FAKE_PHONE_PATTERNS = (
    r"\+?\d*?(\d)\1{7,}",  # eight or more of one digit at the end: 1xx00000000, 11111111111
    r"\+861(?:23456789|234567890)\d*",
)
FAKE_EMAIL_LOCALS = frozenset({
    "test", "tester", "testing", "test1", "test123", "asdf", "asdfgh", "qwer", "qwerty", "abc", "abcd", "abc123",
    "aaa", "aaaa", "xxx", "xxxx", "123", "1234", "12345", "123456", "null", "none", "nobody", "noreply",
    "no-reply", "demo", "example", "fake", "sample", "user", "a", "aa",
})
FAKE_EMAIL_DOMAINS = frozenset({"example.com", "example.org", "example.net", "test.com", "test.cn", "abc.com",
                                "xxx.com", "email.com", "domain.com", "qq.co", "163.con", "126.con"})


def fake_phone(phones: pd.Series) -> pd.Series:
    """True where an E.164 number is a known fake or a pattern nobody really has."""
    values = phones.astype(object)
    present = values.notna()
    result = pd.Series(False, index=phones.index)
    if not present.any():
        return result
    text = values[present].astype(str)
    hit = text.isin(FAKE_PHONES)
    for pattern in _FAKE_PHONE_PATTERNS:
        hit |= text.str.fullmatch(pattern).fillna(False).astype(bool)
    result[present] = hit.to_numpy()
    return result


def _per_email(emails: pd.Series, func: Callable[[str], Any]) -> np.ndarray:
    """``func(address)`` once per distinct address, spread back over the rows (None where there is none)."""
    codes, uniques = pd.factorize(emails.to_numpy(dtype=object, na_value=None), use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [func(str(v)) for v in uniques]
    table[-1] = None
    return table[codes]


def _parts(text: str) -> tuple[str | None, str | None]:
    local, at, domain = text.rpartition("@")
    return (local, domain) if at else (None, None)


def email_parts(emails: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Local part and domain of each email (None where there is none); each distinct address split once."""
    pairs = _per_email(emails, _parts)
    local = pd.Series([p[0] if p is not None else None for p in pairs], index=emails.index, dtype=object)
    domain = pd.Series([p[1] if p is not None else None for p in pairs], index=emails.index, dtype=object)
    return local, domain


_FAKE_LOCAL = re.compile(r"test[._\-+]?\w{0,6}")


def _fake_local(local: str) -> bool:
    return local in FAKE_EMAIL_LOCALS or _FAKE_LOCAL.fullmatch(local) is not None


def email_flags(emails: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(fake, disposable) per address: a test-like local part or a fake domain; a throwaway-mail domain. Each
    distinct address is split once, each distinct local part looked at once, the domains matched as a set."""
    local, domain = email_parts(emails)
    fake = pd.Series(_per_email(local, _fake_local) == True, index=emails.index, dtype=bool)  # noqa: E712
    fake |= domain.isin(FAKE_EMAIL_DOMAINS).to_numpy()
    return fake, pd.Series(domain.isin(_DISPOSABLE).to_numpy(), index=emails.index, dtype=bool)


def blocklist_terms(entries: Iterable[object]) -> frozenset[str]:
    """The blocklist setting as lower-case terms: emails, domains (with or without "@"), phone digits, names."""
    terms: set[str] = set()
    for entry in entries or ():
        text = re.sub(r"\s+", "", str(entry)).lower()
        if not text:
            continue
        terms.add(text.lstrip("@"))
        digits = re.sub(r"\D", "", text)
        if len(digits) >= 7 and len(digits) >= len(text) - 4:
            terms.add(digits[-11:])
    return frozenset(terms)


def blocked(terms: frozenset[str], *, emails: pd.Series, phones: pd.Series, companies: pd.Series) -> pd.Series:
    """True where the email, its domain, the phone's last 11 digits or the company is on the blocklist."""
    result = pd.Series(False, index=emails.index)
    if not terms:
        return result
    _, domain = email_parts(emails)
    result |= emails.isin(terms) | domain.isin(terms)
    digits = phones.astype(object).where(phones.notna(), "").astype(str).str.replace(r"\D", "", regex=True).str[-11:]
    result |= digits.isin(terms) & phones.notna()
    company = companies.astype(object).where(companies.notna(), "").astype(str).str.replace(r"\s+", "", regex=True)
    result |= company.str.lower().isin(terms) & companies.notna()
    return result.astype(bool)
