"""Message catalogs for 简体中文 and English.

Catalogs are gettext ``.po`` files under ``core/locales/<lang>/``; every ``.po`` file in a language folder is
loaded and merged, so each area of the product keeps its own file. ``msgid`` is a stable key such as
``nav.home``; ``msgstr`` is the text, with ``str.format`` placeholders (``{count}``).
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LANGUAGES: dict[str, str] = {"zh": "简体中文", "en": "English"}
DEFAULT_LANGUAGE = "zh"
_LOCALES_DIR = Path(__file__).parent / "locales"
_BABEL_LOCALE = {"zh": "zh_Hans_CN", "en": "en_US"}


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    """All messages of one language, merged from every ``.po`` file of that language."""
    messages: dict[str, str] = {}
    folder = _LOCALES_DIR / lang
    for po_file in sorted(folder.glob("*.po")):
        with po_file.open("rb") as handle:
            for message in read_po(handle, locale=_BABEL_LOCALE.get(lang, lang)):
                if message.id and isinstance(message.id, str):
                    messages[message.id] = message.string if isinstance(message.string, str) else ""
    return messages


def has_key(key: str) -> bool:
    return key in catalog(DEFAULT_LANGUAGE) or key in catalog("en")


def normalize_language(lang: str | None) -> str:
    """Map a browser or user language (``zh-CN``, ``en-US``, ``None``) to a supported one."""
    if not lang:
        return DEFAULT_LANGUAGE
    code = lang.replace("_", "-").split("-")[0].lower()
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def t(key: str, lang: str | None = None, /, **params: Any) -> str:
    """Translate ``key`` into ``lang``; an unknown key comes back as the key itself (tests catch that)."""
    lang = normalize_language(lang)
    text = catalog(lang).get(key) or catalog("en").get(key) or key
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def fmt_number(value: float | int | Decimal | None, lang: str | None = None, digits: int = 0) -> str:
    if value is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=_BABEL_LOCALE[normalize_language(lang)])


def fmt_money(value: float | int | Decimal | None, lang: str | None = None) -> str:
    """Money in yuan: ``¥12.5万`` for Chinese readers from 10,000 up, ``¥125,000`` in English."""
    if value is None:
        return "—"
    lang = normalize_language(lang)
    amount = float(value)
    if lang == "zh":
        if abs(amount) >= 100_000_000:
            return f"¥{fmt_number(amount / 100_000_000, lang, 2)}亿"
        if abs(amount) >= 10_000:
            return f"¥{fmt_number(amount / 10_000, lang, 1)}万"
        return f"¥{fmt_number(amount, lang)}"
    return f"¥{fmt_number(amount, lang)}"


def fmt_percent(value: float | None, lang: str | None = None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{fmt_number(value * 100, lang, digits)}%"


def fmt_date(value: date | datetime | None, lang: str | None = None) -> str:
    if value is None:
        return "—"
    locale = Locale.parse(_BABEL_LOCALE[normalize_language(lang)])
    if isinstance(value, datetime):
        return format_datetime(value, format="short", locale=locale)
    return format_date(value, format="medium", locale=locale)
