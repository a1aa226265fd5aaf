"""Normalization of lead fields: one place for phone, email, name and company keys.

Every function takes a pandas Series and returns a Series aligned on the same index (``None`` where there is no
usable value); passing a plain scalar returns a scalar, for the form and the edit dialog. The importer, the
dedup scan and the demo seed all go through ``lead_keys``, so a lead imported from a file, typed in a form or
seeded gets the same keys and the same search text.

Speed: files of 100k rows are normal, so each function works on the *unique* values of its input (real files
repeat companies, domains and even people), uses vectorized regular expressions for the common shapes and calls
the slower libraries (``phonenumbers``, ``email-validator``, ``pypinyin``) only for what is left.

Nothing here touches the database or Streamlit; the functions are pure and idempotent
(``f(f(x)) == f(x)``), which the unit tests check with Hypothesis.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, overload

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from email_validator import EmailNotValidError, validate_email
from pypinyin import Style, lazy_pinyin

__all__ = [
    "company_key",
    "email_normalize",
    "email_valid",
    "halfwidth",
    "lead_keys",
    "name_initials",
    "name_key",
    "phone_digits",
    "phone_e164",
    "search_text",
    "search_text_frame",
]

SEARCH_TEXT_MAX = 1024  # Lead.search_text is VARCHAR(1024)

_WHITESPACE = re.compile(r"\s+")


# ---------------------------------------------------------------------------------------------------------------
# Plumbing: scalars or Series, work on unique values only
# ---------------------------------------------------------------------------------------------------------------
def _map_unique(series: pd.Series, func: Callable[[Any], Any]) -> pd.Series:
    """``func`` applied once per distinct non-missing value, spread back over the Series (object dtype)."""
    values = series.to_numpy(dtype=object, na_value=None)
    codes, uniques = _factorize(values)
    if not len(uniques):
        return pd.Series(np.full(len(values), None, dtype=object), index=series.index, dtype=object)
    return pd.Series(_spread([func(v) for v in uniques], codes), index=series.index, dtype=object)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of ``values`` (-1 where missing) and their distinct values, in order of appearance."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, np.asarray(uniques, dtype=object)


def _spread(results: list[Any], codes: np.ndarray) -> np.ndarray:
    """Per-distinct-value ``results`` back onto every row (``None`` where the code is -1)."""
    table = np.empty(len(results) + 1, dtype=object)
    table[:-1] = results  # element-wise: results may be tuples or lists
    table[-1] = None
    return table[codes]


def _as_series(value: Any) -> tuple[pd.Series, bool]:
    if isinstance(value, pd.Series):
        return value, False
    if isinstance(value, (list, tuple, np.ndarray, pd.Index)):
        return pd.Series(list(value), dtype=object), False
    return pd.Series([value], dtype=object), True


def _scalar_or_series(result: pd.Series, scalar: bool) -> Any:
    if not scalar:
        return result
    value = result.iloc[0]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return value


def _text(value: Any) -> str:
    """A raw cell as text: NFKC (full-width → half-width), whitespace collapsed, stripped."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a number column read as float: 13800138000.0
    text = value if isinstance(value, str) else str(value)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------------------------
# Half-width text
# ---------------------------------------------------------------------------------------------------------------
@overload
def halfwidth(s: pd.Series) -> pd.Series: ...
@overload
def halfwidth(s: Any) -> str | None: ...
def halfwidth(s: Any) -> Any:
    """Full-width letters, digits and punctuation → half-width (NFKC), whitespace collapsed and stripped.

    Chinese input methods produce "１３８", "ＡＢＣ", "＠" and ideographic spaces; NFKC folds them to their ASCII
    forms so that every later comparison sees one spelling. Blank text becomes ``None`` (no value)."""
    series, scalar = _as_series(s)
    return _scalar_or_series(_map_unique_text(series, lambda text: text or None), scalar)


def _map_unique_text(series: pd.Series, func: Callable[[str], Any]) -> pd.Series:
    """``func(_text(value))`` once per distinct value — ``_text`` inlined for the common case of text cells, as
    this runs over every column of every imported file."""
    values = series.to_numpy(dtype=object, na_value=None)
    codes, uniques = _factorize(values)
    nfkc = unicodedata.normalize
    results = [
        func(" ".join((v if v.isascii() else nfkc("NFKC", v)).split())) if type(v) is str else func(_text(v))
        for v in uniques
    ]
    return pd.Series(_spread(results, codes), index=series.index, dtype=object)


# ---------------------------------------------------------------------------------------------------------------
# Phones
# ---------------------------------------------------------------------------------------------------------------
# Chinese mobile prefixes that phonenumbers accepts for every subscriber number (checked by a unit test against
# the installed metadata); 161x and 174x are only partly allocated and take the slow path.
_CN_MOBILE = r"1(?:3\d|4[57]|5[0-35-9]|6[2567]|7[0-35-8]|8\d|9[0-35-9])\d{8}"
# Landlines of the two-digit area codes (北京 010, 广州 020, 上海 021, 天津 022, 重庆 023, 沈阳 024, 南京 025,
# 武汉 027, 成都 028, 西安 029): the national number as in phonenumbers' fixed-line pattern for China.
_CN_BIG_CITY_LANDLINE = (
    r"(?:10(?:[02-79]\d\d|[18](?:0[1-9]|[1-9]\d))|2(?:[02-57-9]\d{3}|1(?:[18](?:0[1-9]|[1-9]\d)|[2-79]\d\d)))\d{5}"
)
# (digits without "+", digits after "+", length of the national number)
_CN_FAST_PATHS = (
    (rf"(?:0086|86)?{_CN_MOBILE}", rf"86{_CN_MOBILE}", 11),
    (rf"(?:(?:0086|86)0?|0){_CN_BIG_CITY_LANDLINE}", rf"860?{_CN_BIG_CITY_LANDLINE}", 10),
)
_ARROW_STRING = pd.StringDtype("pyarrow")
_SCIENTIFIC = r"[+-]?\d+(?:\.\d+)?[eE]\+?\d+"
_TRAILING_ZERO_DECIMAL = r"^(\d+)\.0+$"
_NON_DIGIT = re.compile(r"\D")


def _raw_phone_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a number column read as float: 13800138000.0
    return str(value)


def _scientific_to_integer(text: str) -> str:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite() or not 0 <= number.adjusted() < 20:  # no phone has 20 digits
        return text
    return str(int(number)) if number == number.to_integral_value() else text


def _parse_phone(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phones_e164(raw: list[str], region: str) -> list[str | None]:
    """E.164 for distinct phone texts: vectorized regular expressions (Arrow strings, RE2) for Chinese mobiles
    and big-city landlines, phonenumbers for the rest (each distinct number once)."""
    texts = pd.Series(raw, dtype=_ARROW_STRING)
    # Full-width digits and ideographic spaces: only the rows that have them pay for NFKC.
    wide = ~texts.str.isascii().fillna(True).astype(bool)
    if wide.any():
        texts[wide] = texts[wide].str.normalize("NFKC")
    texts = texts.str.strip()
    # Spreadsheet damage: 1.38001380E+10 and 13800138000.0 are the number 13800138000.
    scientific = texts.str.fullmatch(_SCIENTIFIC).fillna(False).astype(bool)
    if scientific.any():
        texts[scientific] = [_scientific_to_integer(t) for t in texts[scientific]]
    texts = texts.str.replace(_TRAILING_ZERO_DECIMAL, r"\1", regex=True)
    plus = texts.str.startswith("+").fillna(False).astype(bool)
    digits = texts.str.replace(r"\D", "", regex=True)
    out = np.full(len(texts), None, dtype=object)
    fast = pd.Series(False, index=texts.index)
    if region.upper() == "CN":
        for bare, prefixed, length in _CN_FAST_PATHS:
            match = (~plus & digits.str.fullmatch(bare).fillna(False).astype(bool)) | (
                plus & digits.str.fullmatch(prefixed).fillna(False).astype(bool)
            )
            match &= ~fast
            if match.any():
                out[match.to_numpy()] = ("+86" + digits[match].str[-length:]).to_numpy(dtype=object)
                fast |= match
    rest = ~fast & (digits.str.len() > 0).fillna(False).astype(bool)
    if rest.any():
        # "021-6212 3456" and "(021)62123456" are one number: parse "+"-or-not plus digits, once.
        canonical = plus[rest].map({True: "+", False: ""}).astype(object) + digits[rest].astype(object)
        parsed = {c: _parse_phone(c, region) for c in pd.unique(canonical.to_numpy(dtype=object))}
        out[rest.to_numpy()] = [parsed[c] for c in canonical]
    return out.tolist()


@overload
def phone_e164(s: pd.Series, region: str = "CN") -> pd.Series: ...
@overload
def phone_e164(s: Any, region: str = "CN") -> str | None: ...
def phone_e164(s: Any, region: str = "CN") -> Any:
    """Phone numbers in E.164 (``+8613800138000``), or ``None`` when the text is not a valid number.

    Handles what channels send: spaces and dashes, ``+86``/``86``/``0086`` prefixes, brackets around area codes,
    full-width digits, and the Excel damage (``13800138000.0``, ``1.38001380E+10``). Numbers without a country
    code are read in ``region`` (China by default). The common Chinese mobile shapes go through vectorized
    regular expressions; only landlines and foreign numbers are parsed by ``phonenumbers`` — each distinct
    number once."""
    series, scalar = _as_series(s)
    values = series.to_numpy(dtype=object, na_value=None)
    codes, uniques = _factorize(values)
    parsed = _phones_e164([_raw_phone_text(v) for v in uniques], region) if len(uniques) else []
    result = pd.Series(_spread(parsed, codes), index=series.index, dtype=object)
    return _scalar_or_series(result, scalar)


@overload
def phone_digits(s: pd.Series) -> pd.Series: ...
@overload
def phone_digits(s: Any) -> str | None: ...
def phone_digits(s: Any) -> Any:
    """The digits people type to find a phone: the national number for +86, the full number otherwise."""
    series, scalar = _as_series(s)
    codes, uniques = _factorize(series.to_numpy(dtype=object, na_value=None))
    digits = [(e164[3:] or None) if e164.startswith("+86") else (_NON_DIGIT.sub("", e164) or None)
              for e164 in map(str, uniques)]
    return _scalar_or_series(pd.Series(_spread(digits, codes), index=series.index, dtype=object), scalar)


# ---------------------------------------------------------------------------------------------------------------
# Emails
# ---------------------------------------------------------------------------------------------------------------
def _email_text(value: Any) -> str | None:
    text = _text(value)
    while True:  # "<mailto:X@Y.COM>" needs two rounds; stop at the fixed point
        before = text
        text = unicodedata.normalize("NFKC", text.replace("。", ".").lower())  # "qq。com" from a Chinese keyboard
        text = _WHITESPACE.sub("", text).strip("<>\"'")
        if text.startswith("mailto:"):
            text = text[len("mailto:") :]
        if text == before:
            return text or None


@overload
def email_normalize(s: pd.Series) -> pd.Series: ...
@overload
def email_normalize(s: Any) -> str | None: ...
def email_normalize(s: Any) -> Any:
    """Emails lower-cased, half-width, without spaces, ``mailto:`` or angle brackets; ``None`` when empty.

    Lower-casing the local part is not strictly RFC-correct, but no Chinese or international mail provider
    treats case as significant, and one spelling per address is what dedup needs."""
    series, scalar = _as_series(s)
    values = series.to_numpy(dtype=object, na_value=None)
    codes, uniques = _factorize(values)
    results: list[Any] = [None] * len(uniques)
    texts = [position for position, v in enumerate(uniques) if type(v) is str]
    clean = np.zeros(len(uniques), dtype=bool)
    if texts:
        # Most addresses are printable ASCII without spaces, quotes or brackets: for them the rounds below only
        # lower-case, which Arrow does for all of them at once.
        arrow = pd.Series(uniques[texts], dtype=_ARROW_STRING)
        lowered = arrow.str.lower()
        quick = (arrow.str.fullmatch(_PLAIN_ASCII_EMAIL).fillna(False).astype(bool)
                 & ~lowered.str.startswith("mailto:").fillna(False).astype(bool)).to_numpy()
        lowered_values = lowered.to_numpy(dtype=object)
        for position, is_quick, low in zip(texts, quick, lowered_values, strict=True):
            if is_quick:
                results[position] = low
                clean[position] = True
    for position in np.flatnonzero(~clean):
        results[position] = _email_text(uniques[position])
    return _scalar_or_series(pd.Series(_spread(results, codes), index=series.index, dtype=object), scalar)


# Printable ASCII without spaces, quotes or angle brackets.
_PLAIN_ASCII_EMAIL = r"[\x21\x23-\x26\x28-\x3b\x3d\x3f-\x7e]+"


def _email_ok(value: str | None) -> bool:
    if not value:
        return False
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


# A conservative subset of what email-validator accepts: dot-separated atoms of common characters, LDH domain
# labels, an alphabetic top-level domain. Matches are valid without the library (a unit test checks agreement);
# anything else — quoted parts, IDNA, odd characters — is decided by email-validator itself.
_EMAIL_FAST = (
    r"[a-z0-9_+\-]+(?:\.[a-z0-9_+\-]+)*@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}"
)
_SPECIAL_USE_TLDS = r".*\.(?:arpa|invalid|local|localhost|onion|test)"


@overload
def email_valid(s: pd.Series, *, normalized: bool = False) -> pd.Series: ...
@overload
def email_valid(s: Any, *, normalized: bool = False) -> bool: ...
def email_valid(s: Any, *, normalized: bool = False) -> Any:
    """True where the (normalized) email is syntactically valid, by ``email-validator`` without DNS lookups:
    imports must work offline and quickly; deliverability is the mail server's business.

    ``normalized=True``: the values come from ``email_normalize`` already (it is idempotent, so this only saves
    doing it twice)."""
    series, scalar = _as_series(s)
    normalized_values = series if normalized else email_normalize(series)
    codes, uniques = _factorize(normalized_values.to_numpy(dtype=object, na_value=None))
    ok = np.zeros(len(uniques), dtype=bool)
    if len(uniques):
        texts = pd.Series(uniques, dtype=_ARROW_STRING)
        local_length = texts.str.find("@")
        fast = (
            texts.str.fullmatch(_EMAIL_FAST).fillna(False).astype(bool)
            & ~texts.str.fullmatch(_SPECIAL_USE_TLDS).fillna(False).astype(bool)
            & ~texts.str.contains("--", regex=False).fillna(False).astype(bool)
            & (local_length <= 64).fillna(False).astype(bool)
            & (texts.str.len() <= 254).fillna(False).astype(bool)
        ).to_numpy()
        ok = np.array([True if quick else _email_ok(value) for value, quick in zip(uniques, fast, strict=True)],
                      dtype=bool)
    verdict = np.append(ok, False)[codes]  # code -1 (no email) takes the last entry: not valid
    result = pd.Series(verdict, index=series.index, dtype=bool)
    return _scalar_or_series(result, scalar)


# ---------------------------------------------------------------------------------------------------------------
# Person names
# ---------------------------------------------------------------------------------------------------------------
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RE = re.compile(f"[{_HAN}]")
_NAME_PARTS = re.compile(f"[{_HAN}]+|[^{_HAN}]+")
_LATIN_TOKEN = re.compile(r"[a-z]+")
_HONORIFIC_HAN = re.compile(r"(先生|女士|小姐)$")
_PLAIN_HAN_NAME = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]+")  # no compatibility ideographs: NFKC keeps these
_HONORIFIC_LATIN = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof", "sir", "madam"})

# Surnames whose reading differs from the character's most common reading (单 is "shan", not "dan").
_SURNAME_READINGS: dict[str, list[str]] = {
    "尉迟": ["yu", "chi"], "万俟": ["mo", "qi"], "长孙": ["zhang", "sun"], "单于": ["chan", "yu"],
    "单": ["shan"], "解": ["xie"], "仇": ["qiu"], "朴": ["piao"], "区": ["ou"], "查": ["zha"], "曾": ["zeng"],
    "盖": ["ge"], "乐": ["yue"], "缪": ["miao"], "翟": ["zhai"], "覃": ["qin"], "秘": ["bi"], "种": ["chong"],
    "员": ["yun"], "召": ["shao"], "都": ["du"], "祭": ["zhai"], "阚": ["kan"], "黑": ["he"], "卜": ["bu"],
    "藏": ["zang"], "薄": ["bo"], "重": ["chong"], "折": ["she"], "句": ["gou"], "隗": ["wei"],
}
_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "夏侯",
                      "长孙", "宇文", "端木", "司徒", "澹台", "万俟", "单于", "轩辕", "呼延")

# Common Chinese surnames in pinyin, most frequent first. For a Latin-script name the token found here is taken
# as the surname and put first, so "Wei Zhang", "Zhang Wei" and 张伟 share the key "zhangwei". When two tokens
# are both surnames ("Wang Li" / "Li Wang"), the more frequent one wins: right for 王丽, wrong for 李旺 — a
# known limit; dedup does not rely on names alone.
_SURNAME_RANK: dict[str, int] = {}
for _rank, _surname in enumerate(
    (
        "wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he gao lin luo zheng liang xie "
        "song tang han feng deng cao peng zeng xiao tian dong yuan pan yu jiang cai du ye cheng su wei lv ding "
        "ren shen yao lu cui zhong tan fan jin shi liao jia xia fu fang bai zou meng xiong qin qiu yin xue yan "
        "duan lei hou long tao gu mao hao gong shao wan qian dai mo kong xiang ouyang sima zhuge shangguan situ "
        "murong"
    ).split()
):
    _SURNAME_RANK.setdefault(_surname, _rank)


@lru_cache(maxsize=65536)
def _char_pinyin(char: str) -> str:
    syllable = lazy_pinyin(char, style=Style.NORMAL, errors="ignore")
    return syllable[0] if syllable else ""


def _han_syllables(run: str, *, first: bool) -> list[str]:
    """Toneless pinyin of a run of Han characters; the run that starts the name gets surname readings."""
    syllables: list[str] = []
    rest = run
    if first:
        for length in (2, 1):
            readings = _SURNAME_READINGS.get(run[:length])
            if readings and len(run) > length:
                syllables.extend(readings)
                rest = run[length:]
                break
    syllables.extend(_char_pinyin(c) for c in rest)
    return [s for s in syllables if s]


def _latin_tokens(text: str) -> list[str]:
    """Lower-case ASCII letter runs; accents folded (José → jose), other scripts dropped."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _LATIN_TOKEN.findall(text)


def _name_tokens(value: Any) -> list[str]:
    """The name as ordered lower-case ASCII tokens (pinyin syllables for Han characters), surname first."""
    text = _text(value).lower()
    if not text:
        return []
    if _HAN_RE.search(text):
        honorific = _HONORIFIC_HAN.search(text)
        if honorific and honorific.start() > 0:
            text = text[: honorific.start()]
        tokens: list[str] = []
        for part in _NAME_PARTS.findall(text):
            if _HAN_RE.match(part):
                tokens.extend(_han_syllables(part, first=not tokens))
            else:
                tokens.extend(_latin_tokens(part))
        return tokens
    tokens = [t for t in _latin_tokens(text) if t not in _HONORIFIC_LATIN]
    if len(tokens) < 2:
        return tokens
    surnames = [(rank, i) for i, t in enumerate(tokens) if (rank := _SURNAME_RANK.get(t)) is not None]
    if surnames:
        _, at = min(surnames)
        return [tokens[at], *tokens[:at], *tokens[at + 1 :]]
    return sorted(tokens)


def _name_key(value: Any) -> str | None:
    return "".join(_name_tokens(value)) or None


def _name_initials(value: Any) -> str | None:
    return "".join(t[0] for t in _name_tokens(value)) or None


@overload
def name_key(s: pd.Series) -> pd.Series: ...
@overload
def name_key(s: Any) -> str | None: ...
def name_key(s: Any) -> Any:
    """A matching key for a person's name: lower-case ASCII letters, no separators.

    - Chinese: toneless pinyin in written order, surname readings for polyphonic surnames
      (张伟 → ``zhangwei``, 单田芳 → ``shantianfang``, 欧阳娜娜 → ``ouyangnana``).
    - Latin script: letters only, accents folded. When one token is a common Chinese surname in pinyin it goes
      first and the rest keep their order ("Wei Zhang" and "Zhang Wei" → ``zhangwei``, same as 张伟); otherwise
      the tokens are sorted ("John Smith" and "Smith, John" → ``johnsmith``).
    - Honorifics (先生/女士/小姐, Mr/Ms/Dr) are dropped; digits and other scripts are ignored.
    """
    series, scalar = _as_series(s)
    return _scalar_or_series(_map_unique(series, _name_key), scalar)


@overload
def name_initials(s: pd.Series) -> pd.Series: ...
@overload
def name_initials(s: Any) -> str | None: ...
def name_initials(s: Any) -> Any:
    """Pinyin initials in the same order as ``name_key`` (张伟 → ``zw``, "Wei Zhang" → ``zw``): what people type
    in a search box when they do not want to switch input methods."""
    series, scalar = _as_series(s)
    return _scalar_or_series(_map_unique(series, _name_initials), scalar)


# ---------------------------------------------------------------------------------------------------------------
# Companies
# ---------------------------------------------------------------------------------------------------------------
PROVINCES = (
    "北京 天津 上海 重庆 河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南 广东 海南 四川 "
    "贵州 云南 陕西 甘肃 青海 台湾 内蒙古 广西 西藏 宁夏 新疆 香港 澳门"
).split()
CITIES = (
    "深圳 广州 杭州 南京 苏州 宁波 无锡 成都 武汉 西安 长沙 郑州 济南 青岛 大连 沈阳 厦门 福州 合肥 昆明 南昌 "
    "东莞 佛山 珠海 常州 温州 绍兴 嘉兴 石家庄 太原 哈尔滨 长春 南宁 贵阳 兰州 乌鲁木齐 呼和浩特 海口 三亚 "
    "烟台 徐州 南通 扬州 泉州 中山 惠州 台州 金华 洛阳 唐山 保定 廊坊 芜湖 宜昌 襄阳 绵阳 潍坊 临沂 镇江 湖州"
).split()
_PLACES = sorted(set(PROVINCES) | set(CITIES), key=len, reverse=True)
_PLACE_ALT = "|".join(_PLACES)
_PLACE_SUFFIX = "(?:市|省|自治区|特别行政区)?"
_PLACE_ONLY = re.compile(f"(?:{_PLACE_ALT}){_PLACE_SUFFIX}|中国|china|prc")
_LEADING_PLACE = re.compile(f"^(?:{_PLACE_ALT}){_PLACE_SUFFIX}")
_BRANCH_SUFFIX = re.compile(f"(?:{_PLACE_ALT})?{_PLACE_SUFFIX}(?:分公司|办事处|代表处)$")
_BRANCH_ENDINGS = ("分公司", "办事处", "代表处")
_PLACE_FIRST_CHARS = frozenset(p[0] for p in _PLACES)
_EN_PLACES = frozenset(
    "shanghai beijing shenzhen guangzhou hangzhou nanjing suzhou chengdu wuhan tianjin chongqing xiamen qingdao "
    "dalian ningbo wuxi xian changsha hefei jinan shenyang fuzhou kunming dongguan foshan zhuhai hongkong "
    "china".split()
)
# Longest first; stripped from the end again and again ("…集团股份有限公司" → "…").
_LEGAL_SUFFIXES = sorted(
    (
        "股份有限公司 有限责任公司 集团有限公司 集团股份有限公司 有限公司 股份公司 集团公司 总公司 公司 集团 股份 有限"
    ).split(),
    key=len,
    reverse=True,
)
_LEGAL_SUFFIX_ENDINGS = tuple(_LEGAL_SUFFIXES)
_EN_SUFFIXES = frozenset(
    "co ltd limited inc incorporated llc corp corporation company gmbh plc pte llp lp sa ag bv group holdings".split()
)
# Place-qualified institutions: the city is part of who they are (上海银行 ≠ 北京银行, 上海市第一人民医院).
_INSTITUTION_END = re.compile(
    r"(医院|卫生院|大学|学院|学校|中学|小学|幼儿园|银行|分行|支行|政府|局|委员会|研究院|研究所|图书馆|博物馆|电视台|"
    r"机场|海关|法院|检察院|中心)$"
)
_BRACKETED = re.compile(r"[(\[{【〔「『《<]([^()\[\]{}【】〔〕「」『』《》<>]*)[)\]}】〕」』》>]")
_BRACKET_CHARS = re.compile(r"[()\[\]{}【】〔〕「」『』《》<>]")
_NOT_KEY_CHAR = re.compile(f"[^0-9a-z{_HAN}]+")
_MIN_AFTER_PLACE = 3  # "上海云杉科技" → "云杉科技", but "上海电气" stays: two characters are too little to match on
_MIN_AFTER_SUFFIX = 2


def _strip_places_and_suffixes(key: str) -> str:
    """Chinese legal suffixes and leading places off a compact key, until nothing changes (idempotent)."""
    while True:
        before = key
        branch = _BRANCH_SUFFIX.search(key) if key.endswith(_BRANCH_ENDINGS) else None
        if branch and len(key) - len(branch.group(0)) >= _MIN_AFTER_SUFFIX:
            key = key[: branch.start()]
        for suffix in _LEGAL_SUFFIXES if key.endswith(_LEGAL_SUFFIX_ENDINGS) else ():
            if key.endswith(suffix) and len(key) - len(suffix) >= _MIN_AFTER_SUFFIX:
                key = key[: -len(suffix)]
                break
        place = _LEADING_PLACE.match(key) if key[:1] in _PLACE_FIRST_CHARS else None
        if place:
            rest = key[place.end() :]
            if len(rest) >= _MIN_AFTER_PLACE and not _INSTITUTION_END.search(rest):
                key = rest
        if key == before:
            return key


def _company_key(value: Any) -> str | None:
    text = _text(value).lower()

    def bracket(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        compact = inner.replace(" ", "")
        return " " if _PLACE_ONLY.fullmatch(compact) or compact in _EN_PLACES else f" {inner} "

    if _BRACKET_CHARS.search(text):
        text = _BRACKETED.sub(bracket, text)
        text = _BRACKET_CHARS.sub(" ", text)
    # Latin-script names: legal-form tokens off the end, a leading city off the front.
    tokens = [t for t in _NOT_KEY_CHAR.split(text) if t]
    while len(tokens) > 1 and tokens[-1] in _EN_SUFFIXES:
        tokens.pop()
    if len(tokens) > 2 and tokens[0] in _EN_PLACES:
        tokens.pop(0)
    key = _NOT_KEY_CHAR.sub("", "".join(tokens))
    key = _strip_places_and_suffixes(key)
    return key or None


@overload
def company_key(s: pd.Series) -> pd.Series: ...
@overload
def company_key(s: Any) -> str | None: ...
def company_key(s: Any) -> Any:
    """A matching key for a company: the distinctive part of its name.

    Half-width and lower-case; brackets dropped (a bracketed place such as "(上海)" or "(中国)" goes entirely);
    legal forms removed from the end (有限责任公司, 股份有限公司, 有限公司, 集团, 公司, Co., Ltd., Inc., LLC, Corp.,
    GmbH …); a leading province or city removed (上海, 北京市, 广东省, "Shanghai …"), unless fewer than three
    characters would remain or the rest names a place-bound institution (上海银行, 上海市第一人民医院 keep theirs);
    "…上海分公司" branch suffixes removed. So 上海某某科技有限公司 and 某某科技(上海)有限公司 both become 某某科技.

    Generic words such as 科技, 技术, 信息, 软件 are *kept*: without them 云杉科技 and 云杉物流 — two companies of
    the same group, often both in one file — would collide, while the variants people actually write differ in
    suffixes and places, not in these words. Fuzzy similarity (rapidfuzz in dedup) covers the rest."""
    series, scalar = _as_series(s)
    return _scalar_or_series(_map_unique(series, _company_key), scalar)


# ---------------------------------------------------------------------------------------------------------------
# Search text and the derived lead columns
# ---------------------------------------------------------------------------------------------------------------
def _lower_text(series: pd.Series) -> pd.Series:
    return _map_unique_text(series, lambda text: text.lower() or None)


def _join_parts(parts: list[pd.Series]) -> pd.Series:
    """Row-wise: the parts' tokens, each once, in order, space-separated, cut at 1024 characters.

    Most rows are simple — each part one token (a Chinese name, its key, initials, digits, an email) and no two
    alike — and are joined by Arrow in one pass; the others go through the general rule token by token."""
    columns = [p.to_numpy(dtype=object, na_value=None) for p in parts]
    n = len(columns[0]) if columns else 0
    simple = pa.array(np.ones(n, dtype=bool))
    texts = []
    for values in columns:
        try:
            text = pa.array(values, type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all text: the general rule for every row
            simple = pa.array(np.zeros(n, dtype=bool))
            break
        text = pc.if_else(pc.greater(pc.utf8_length(text), 0), text, None)  # "" counts as nothing
        simple = pc.and_(simple, pc.invert(pc.fill_null(pc.match_substring_regex(text, _ANY_SPACE), False)))
        texts.append(text)
    else:
        for first in range(len(texts)):
            for second in range(first + 1, len(texts)):
                same = pc.fill_null(pc.equal(texts[first], texts[second]), False)
                simple = pc.and_(simple, pc.invert(same))
    simple_rows = simple.to_numpy(zero_copy_only=False)
    out = np.empty(n, dtype=object)
    if texts and simple_rows.any():
        # Missing parts as "" and the doubled spaces they leave collapsed (no part of a simple row has a space).
        joined = pc.binary_join_element_wise(*texts, " ", null_handling="replace", null_replacement="")
        joined = pc.utf8_trim(pc.replace_substring_regex(joined, "  +", " "), " ").to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(simple_rows)
        out[rows] = [v if len(v) <= SEARCH_TEXT_MAX else v[:SEARCH_TEXT_MAX].rstrip() for v in joined[rows]]
    simple = simple_rows
    for row in np.flatnonzero(~simple):
        values = [c[row] for c in columns]
        out[row] = " ".join(dict.fromkeys(" ".join([v for v in values if v]).split()))[:SEARCH_TEXT_MAX].rstrip()
    return pd.Series(out, index=parts[0].index, dtype=object)


# What ``str.split()`` splits on (Unicode whitespace), as one character class for Arrow's regular expressions.
_ANY_SPACE = "[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def _name_key_and_initials(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Both name columns from one pass over the distinct names."""

    def both(value: Any) -> tuple[str | None, str | None]:
        if type(value) is str and _PLAIN_HAN_NAME.fullmatch(value):
            # The common Chinese name: Han characters only, nothing for NFKC, case or spacing to change.
            honorific = _HONORIFIC_HAN.search(value)
            tokens = _han_syllables(value[: honorific.start()] if honorific and honorific.start() > 0 else value,
                                    first=True)
        else:
            tokens = _name_tokens(value)
        return ("".join(tokens) or None, "".join(t[0] for t in tokens) or None)

    values = series.to_numpy(dtype=object, na_value=None)
    codes, uniques = _factorize(values)
    pairs = [both(v) for v in uniques]
    keys = _spread([k for k, _ in pairs], codes)
    initials = _spread([i for _, i in pairs], codes)
    return (pd.Series(keys, index=series.index, dtype=object), pd.Series(initials, index=series.index, dtype=object))


def search_text_frame(df: pd.DataFrame, *, region: str = "CN") -> pd.Series:
    """``Lead.search_text`` for every row of ``df`` (columns name, phone, email, company, wechat_id; missing
    columns are fine): lower-case name, pinyin key and initials, phone digits without +86, email, company and
    WeChat id, space-separated, each token once, at most 1024 characters. One ``LIKE '%…%'`` over this column
    then finds a lead by whatever the user remembers of it."""
    return _search_text(df, region=region)


def _search_text(df: pd.DataFrame, *, region: str, names: tuple[pd.Series, pd.Series] | None = None,
                 contacts: tuple[pd.Series, pd.Series] | None = None) -> pd.Series:
    name = _column(df, "name")
    key, initials = names if names is not None else _name_key_and_initials(name)
    phone, email = contacts if contacts is not None else _contacts(df, region=region)
    parts = [
        _lower_text(name),
        key,
        initials,
        phone_digits(phone),
        email,
        _lower_text(_column(df, "company")),
        _lower_text(_column(df, "wechat_id")),
    ]
    return _join_parts(parts)


def _contacts(df: pd.DataFrame, *, region: str) -> tuple[pd.Series, pd.Series]:
    return phone_e164(_column(df, "phone"), region=region), email_normalize(_column(df, "email"))


def search_text(
    name: Any = None,
    phone: Any = None,
    email: Any = None,
    company: Any = None,
    wechat_id: Any = None,
    *,
    region: str = "CN",
) -> Any:
    """``search_text_frame`` for one lead (scalars → str) or for aligned Series (→ Series)."""
    fields = {"name": name, "phone": phone, "email": email, "company": company, "wechat_id": wechat_id}
    if any(isinstance(v, pd.Series) for v in fields.values()):
        index = next(v.index for v in fields.values() if isinstance(v, pd.Series))
        frame = pd.DataFrame({k: (v if isinstance(v, pd.Series) else pd.Series([v] * len(index), index=index,
                                                                                   dtype=object))
                              for k, v in fields.items()}, index=index)
        return search_text_frame(frame, region=region)
    frame = pd.DataFrame({k: pd.Series([v], dtype=object) for k, v in fields.items()})
    return search_text_frame(frame, region=region).iloc[0]


def lead_keys(df: pd.DataFrame, *, region: str = "CN", contacts: bool = False,
              normalized: bool = False) -> pd.DataFrame:
    """The derived columns of leads — ``name_key``, ``company_key``, ``search_text`` — for a frame with lead
    columns (name, email, phone, company, wechat_id …). The importer, the dedup scan and the seed all call this,
    so the keys of a lead never depend on how it arrived.

    With ``contacts=True`` the normalized ``phone`` (E.164) and ``email`` come along too: they are computed for
    the search text anyway, and a caller holding raw values needs them for the lead row.

    ``normalized=True``: the ``phone`` and ``email`` columns hold ``phone_e164`` / ``email_normalize`` results
    (or nothing) already — the importer has them — so they are not normalized a second time."""
    names = _name_key_and_initials(_column(df, "name"))
    if normalized:
        phone, email = _column(df, "phone").astype(object), _column(df, "email").astype(object)
    else:
        phone, email = _contacts(df, region=region)
    columns = {
        "name_key": names[0],
        "company_key": company_key(_column(df, "company")),
        "search_text": _search_text(df, region=region, names=names, contacts=(phone, email)),
    }
    if contacts:
        columns["phone"] = phone
        columns["email"] = email
    return pd.DataFrame(columns, index=df.index)
