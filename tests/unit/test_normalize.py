import random
import time

import numpy as np
import pandas as pd
import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from core.normalize import (
    company_key,
    email_normalize,
    email_valid,
    halfwidth,
    lead_keys,
    name_initials,
    name_key,
    phone_digits,
    phone_e164,
    search_text,
    search_text_frame,
)


# ---------------------------------------------------------------------------------------------------------------
# halfwidth
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("１３８ＡＢＣ＠ｘｙｚ", "138ABC@xyz"),
        ("  张伟\u3000 \t 经理 ", "张伟 经理"),
        ("（上海）", "(上海)"),
        ("", None),
        ("   ", None),
        (None, None),
        (12345, "12345"),
    ],
)
def test_halfwidth(raw, expected):
    assert halfwidth(raw) == expected


def test_halfwidth_keeps_the_index_and_missing_values():
    series = pd.Series(["ＡＢ", None, float("nan"), "ＡＢ"], index=[10, 11, 12, 13])
    result = halfwidth(series)
    assert list(result.index) == [10, 11, 12, 13]
    assert result.tolist() == ["AB", None, None, "AB"]


# ---------------------------------------------------------------------------------------------------------------
# phones
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "+8613800138000"),
        ("138 0013 8000", "+8613800138000"),
        ("138-0013-8000", "+8613800138000"),
        ("+86-138-0013-8000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("0086 13800138000", "+8613800138000"),
        ("１３８００１３８０００", "+8613800138000"),
        ("1.38001380E+10", "+8613800138000"),
        ("13800138000.0", "+8613800138000"),
        (13800138000.0, "+8613800138000"),
        (13800138000, "+8613800138000"),
        ("tel: 138 0013 8000", "+8613800138000"),
        ("(021) 6212 3456", "+862162123456"),
        ("021-62123456", "+862162123456"),
        ("+86 21 6212 3456", "+862162123456"),
        ("010 8888 6666", "+861088886666"),
        ("0755-86013388", "+8675586013388"),
        ("+1 650 253 0000", "+16502530000"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+8613800138000", "+8613800138000"),
        ("12345", None),
        ("1380013800", None),  # ten digits
        ("62123456", None),  # a landline without its area code
        ("not a phone", None),
        ("", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_phone_e164(raw, expected):
    assert phone_e164(raw) == expected


def test_phone_e164_other_region():
    assert phone_e164("(650) 253-0000", region="US") == "+16502530000"
    assert phone_e164("+86 138 0013 8000", region="US") == "+8613800138000"


def test_phone_e164_series_aligned():
    series = pd.Series(["138 0013 8000", None, "bad", "+86-138-0013-8000"], index=list("abcd"))
    result = phone_e164(series)
    assert list(result.index) == list("abcd")
    assert result.tolist() == ["+8613800138000", None, None, "+8613800138000"]


def test_phone_fast_path_agrees_with_phonenumbers():
    """The regex fast paths must say exactly what phonenumbers says for the shapes they take."""
    rng = random.Random(7)
    samples = []
    for _ in range(3000):
        prefix = rng.randint(130, 199)
        samples.append(f"{prefix}{rng.randint(0, 99_999_999):08d}")
        area = rng.choice(["10", "20", "21", "22", "23", "24", "25", "27", "28", "29", "26"])
        samples.append(f"0{area}{rng.randint(0, 99_999_999):08d}")
    samples += ["86" + s for s in samples[:500]] + ["+86 " + s for s in samples[500:1000]]
    expected = []
    for sample in samples:
        try:
            number = phonenumbers.parse(sample, "CN")
        except phonenumbers.NumberParseException:
            expected.append(None)
            continue
        ok = phonenumbers.is_valid_number(number)
        expected.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if ok else None)
    assert phone_e164(pd.Series(samples)).tolist() == expected


def test_phone_digits():
    assert phone_digits("+8613800138000") == "13800138000"
    assert phone_digits("+16502530000") == "16502530000"
    assert phone_digits(None) is None


def test_phone_e164_is_fast_on_100k_values():
    rng = np.random.default_rng(1)
    mobiles = rng.integers(13_000_000_000, 13_999_999_999, 100_000).astype(str)
    shapes = [
        lambda m: m,
        lambda m: f"{m[:3]} {m[3:7]} {m[7:]}",
        lambda m: "+86-" + m,
        lambda m: "86" + m,
        lambda m: m + ".0",
        lambda m: f"(021) 6{m[-7:]}",
    ]
    raw = pd.Series([shapes[i % len(shapes)](m) for i, m in enumerate(mobiles)], dtype=object)
    started = time.process_time()  # CPU time: the machine running the tests may be busy with other work
    result = phone_e164(raw)
    elapsed = time.process_time() - started
    assert result.notna().all()
    assert elapsed < 1.0, f"100k phones took {elapsed:.2f} s"


# ---------------------------------------------------------------------------------------------------------------
# emails
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Zhang.Wei@YunShan.COM ", "zhang.wei@yunshan.com"),
        ("ｚｈａｎｇ＠ｑｑ．ｃｏｍ", "zhang@qq.com"),
        ("li.na@163。com", "li.na@163.com"),
        ("mailto:Kevin@Gmail.com", "kevin@gmail.com"),
        ("<kevin@gmail.com>", "kevin@gmail.com"),
        ("zhang wei@qq.com", "zhangwei@qq.com"),
        ("", None),
        (None, None),
    ],
)
def test_email_normalize(raw, expected):
    assert email_normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("zhang.wei@yunshan.com", True),
        ("ZHANG@QQ.COM", True),
        ("123456789@qq.com", True),
        ("a_b+c@x-y.com.cn", True),
        ("user@xn--fiqs8s.cn", True),
        ("zhang@", False),
        ("zhang.qq.com", False),
        ("a..b@x.com", False),
        (".a@x.com", False),
        ("a@-x.com", False),
        ("a@x.local", False),
        ("a@x.123", False),
        ("", False),
        (None, False),
    ],
)
def test_email_valid(raw, expected):
    assert email_valid(raw) is expected


def _library_says(value: str) -> bool:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


_local = st.from_regex(r"[a-z0-9_+.\-]{1,12}", fullmatch=True)
_domain = st.from_regex(r"[a-z0-9\-]{1,8}(\.[a-z0-9\-]{1,8}){0,2}\.(com|cn|net|io|test|local|c|x1)", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(local=_local, domain=_domain)
def test_email_fast_path_agrees_with_email_validator(local, domain):
    value = f"{local}@{domain}"
    assert email_valid(value) is _library_says(value)


# ---------------------------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "key", "initials"),
    [
        ("张伟", "zhangwei", "zw"),
        ("Wei Zhang", "zhangwei", "zw"),
        ("Zhang Wei", "zhangwei", "zw"),
        ("ZHANG-WEI", "zhangwei", "zw"),
        ("zhangwei", "zhangwei", "z"),
        ("张 伟", "zhangwei", "zw"),
        ("Yang Liu", "liuyang", "ly"),
        ("刘洋", "liuyang", "ly"),
        ("单田芳", "shantianfang", "stf"),
        ("曾志伟", "zengzhiwei", "zzw"),
        ("欧阳娜娜", "ouyangnana", "oynn"),
        ("尉迟恭", "yuchigong", "ycg"),
        ("吕丽", "lvli", "ll"),
        ("张先生", "zhang", "z"),
        ("Kevin Zhou", "zhoukevin", "zk"),
        ("Zhou, Kevin", "zhoukevin", "zk"),
        ("John Smith", "johnsmith", "js"),
        ("Smith John", "johnsmith", "js"),
        ("Mr. John Smith", "johnsmith", "js"),
        ("José Núñez", "josenunez", "jn"),
        ("ＺＨＡＮＧ Ｗｅｉ", "zhangwei", "zw"),
        ("", None, None),
        ("123", None, None),
        (None, None, None),
    ],
)
def test_name_key_and_initials(raw, key, initials):
    assert name_key(raw) == key
    assert name_initials(raw) == initials


def test_name_key_is_fast_on_100k_names():
    rng = np.random.default_rng(3)
    surnames = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹")
    given = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红子轩浩宇梓涵一诺欣怡雨泽思博文俊晨佳琪")
    names = [
        surnames[a] + given[b] + (given[c] if c < len(given) else "")
        for a, b, c in zip(
            rng.integers(0, len(surnames), 100_000),
            rng.integers(0, len(given), 100_000),
            rng.integers(0, len(given) + 10, 100_000),
            strict=True,
        )
    ]
    started = time.process_time()  # CPU time, as above
    keys = name_key(pd.Series(names))
    elapsed = time.process_time() - started
    assert keys.notna().all()
    assert elapsed < 2.0, f"100k names took {elapsed:.2f} s"


# ---------------------------------------------------------------------------------------------------------------
# companies
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("上海某某科技有限公司", "某某科技"),
        ("某某科技(上海)有限公司", "某某科技"),
        ("某某科技（上海）有限公司", "某某科技"),
        ("上海市某某科技有限公司", "某某科技"),
        ("上海云杉信息科技有限公司", "云杉信息科技"),
        ("云杉信息科技(上海)", "云杉信息科技"),
        ("云杉信息科技（上海）有限公司", "云杉信息科技"),
        ("【上海】云杉信息科技有限公司", "云杉信息科技"),
        ("云杉信息科技上海分公司", "云杉信息科技"),
        ("广东省云杉科技股份有限公司", "云杉科技"),
        ("云杉科技集团有限公司", "云杉科技"),
        ("云杉科技集团", "云杉科技"),
        ("云杉科技有限责任公司", "云杉科技"),
        ("北京字节跳动网络技术有限公司", "字节跳动网络技术"),
        ("云杉(中国)投资有限公司", "云杉投资"),
        ("Yunshan Info Tech Co., Ltd.", "yunshaninfotech"),
        ("YUNSHAN INFO TECH CO LTD", "yunshaninfotech"),
        ("Shanghai Yunshan Info Tech Co., Ltd", "yunshaninfotech"),
        ("Yunshan Info Tech (Shanghai) Inc.", "yunshaninfotech"),
        ("Acme GmbH", "acme"),
        ("Acme Corp.", "acme"),
        ("Acme LLC", "acme"),
        # generic words are kept: two companies of one group stay apart
        ("云杉科技有限公司", "云杉科技"),
        ("云杉物流有限公司", "云杉物流"),
        # places that are part of the identity stay
        ("上海银行股份有限公司", "上海银行"),
        ("北京银行", "北京银行"),
        ("上海市第一人民医院", "上海市第一人民医院"),
        ("上海电气集团股份有限公司", "上海电气"),
        ("", None),
        ("有限公司", "有限"),  # nothing distinctive left: the key is what remains
        (None, None),
    ],
)
def test_company_key(raw, expected):
    assert company_key(raw) == expected


def test_company_variants_share_a_key():
    variants = ["上海云杉信息科技有限公司", "云杉信息科技(上海)", "云杉信息科技（上海）有限公司", "上海市云杉信息科技"]
    assert company_key(pd.Series(variants)).nunique() == 1


# ---------------------------------------------------------------------------------------------------------------
# search text and lead keys
# ---------------------------------------------------------------------------------------------------------------
def test_search_text_scalar():
    text = search_text(
        name="张伟", phone="138 0013 8000", email="Zhang.Wei@YunShan.com", company="上海云杉信息科技有限公司",
        wechat_id="ZW_1988",
    )
    assert text == "张伟 zhangwei zw 13800138000 zhang.wei@yunshan.com 上海云杉信息科技有限公司 zw_1988"


def test_search_text_frame_skips_missing_and_caps_length():
    frame = pd.DataFrame(
        {
            "name": ["Wei Zhang", None, "李娜"],
            "phone": [None, "+1 650 253 0000", "bad"],
            "email": [None, "x@y.com", None],
            "company": ["Acme", None, "长" * 2000],
        }
    )
    result = search_text_frame(frame)
    assert result.iloc[0] == "wei zhang zhangwei zw acme"
    assert result.iloc[1] == "16502530000 x@y.com"
    assert len(result.iloc[2]) <= 1024
    assert result.iloc[2].startswith("李娜 lina ln ")


def test_search_text_series_arguments():
    names = pd.Series(["张伟", "李娜"], index=[5, 6])
    result = search_text(name=names, phone=pd.Series(["13800138000", None], index=[5, 6]))
    assert result.tolist() == ["张伟 zhangwei zw 13800138000", "李娜 lina ln"]


def test_lead_keys():
    frame = pd.DataFrame(
        {
            "name": ["张伟", "Wei Zhang", None],
            "company": ["上海云杉信息科技有限公司", "云杉信息科技(上海)", None],
            "phone": ["13800138000", "+86 138 0013 8001", None],
            "email": ["zhang.wei@yunshan.com", None, None],
            "title": ["总监", "Director", None],
        },
        index=[3, 4, 5],
    )
    keys = lead_keys(frame)
    assert list(keys.columns) == ["name_key", "company_key", "search_text"]
    assert list(keys.index) == [3, 4, 5]
    assert keys["name_key"].tolist() == ["zhangwei", "zhangwei", None]
    assert keys["company_key"].tolist() == ["云杉信息科技", "云杉信息科技", None]
    assert keys.loc[4, "search_text"] == "wei zhang zhangwei zw 13800138001 云杉信息科技(上海)"
    assert keys.loc[5, "search_text"] == ""


def test_lead_keys_without_optional_columns():
    keys = lead_keys(pd.DataFrame({"name": ["刘洋"]}))
    assert keys.iloc[0].tolist() == ["liuyang", None, "刘洋 liuyang ly"]


# ---------------------------------------------------------------------------------------------------------------
# idempotence: normalizing twice changes nothing
# ---------------------------------------------------------------------------------------------------------------
_any_text = st.text(min_size=0, max_size=40)
_phone_like = st.text(alphabet="0123456789１３８ +-().eE", min_size=0, max_size=24)
_chinese = st.text(alphabet="张王李刘陈单曾欧阳尉迟伟娜强洋静上海北京云杉科技有限公司集团（）()先生 ", max_size=16)


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(_any_text, _chinese))
def test_text_normalizers_are_idempotent(value):
    for normalize in (halfwidth, email_normalize, name_key, company_key):
        once = normalize(value)
        assert normalize(once) == once, (normalize.__name__, value, once)


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(_phone_like, st.integers(min_value=0, max_value=10**15)))
def test_phone_e164_is_idempotent(value):
    once = phone_e164(value)
    assert phone_e164(once) == once


def test_lead_keys_with_contacts():
    keys = lead_keys(pd.DataFrame({"name": ["张伟"], "phone": ["138 0013 8000"], "email": [" Zhang@QQ.com "]}),
                     contacts=True)
    assert keys.iloc[0].to_dict() == {
        "name_key": "zhangwei", "company_key": None, "search_text": "张伟 zhangwei zw 13800138000 zhang@qq.com",
        "phone": "+8613800138000", "email": "zhang@qq.com",
    }
