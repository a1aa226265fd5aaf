"""Accounts and leads: Chinese B2B companies and the people who fill in their forms.

Everything is drawn in whole columns. The raw values (phone formats, company spellings) are kept next to the
normalized ones so that import rows can show what a file really looked like.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.normalize import company_key, lead_keys
from seed import catalog
from seed.marketing import campaign_active_mask
from seed.timeline import DAY, HOUR, MINUTE
from seed.world import World, pinyin

SENIOR_TITLE_WORDS = ("总监", "VP", "CTO", "CIO", "CEO", "总经理", "Director")


# ---------------------------------------------------------------------------------------------------------------
# Routing (the same order as the RoutingRule rows the seed writes)
# ---------------------------------------------------------------------------------------------------------------
def route(provinces: np.ndarray, industries: np.ndarray, products: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rep id or 0 for round robin, the rule that chose) for each lead."""
    n = len(provinces)
    rep = np.zeros(n, dtype=np.int64)
    rule = np.full(n, "round_robin: 其他：轮询", dtype=object)
    for spec in catalog.ROUTING_RULES[1:-1]:
        open_ = rep == 0
        params = spec["params"]
        if spec["kind"] == "territory":
            hit = np.isin(provinces, params["provinces"])
        elif spec["kind"] == "industry":
            hit = np.isin(industries, params["industries"])
        else:
            hit = np.isin(products, params["product_lines"])
        hit &= open_
        rep[hit] = spec["rep_ids"][0]
        rule[hit] = f"{spec['kind']}: {spec['name']}"
    return rep, rule


# ---------------------------------------------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------------------------------------------
def _brands() -> list[str]:
    chars = list(dict.fromkeys(catalog.BRAND_CHARS))
    pairs = [a + b for a in chars for b in chars if a != b]
    # A brand that reads as a place ("金华") would lose its first half in the company key: leave those out.
    probe = company_key(pd.Series([p + "科技有限公司" for p in pairs]))
    return [p for p, key in zip(pairs, probe, strict=True) if key == p + "科技"]


def build_accounts(world: World) -> None:
    rng = world.rng
    n = max(12, round(world.n_leads / 4))
    brands = _brands()
    industries = list(catalog.INDUSTRIES)
    industry = np.array(industries, dtype=object)[world.weighted([catalog.INDUSTRIES[i][0] for i in industries], n)]
    word_index = np.array([rng.integers(len(catalog.INDUSTRIES[i][2])) for i in industry])
    brand_index = rng.integers(len(brands), size=n)
    # (brand, industry word) must be unique: redraw the brand of repeats until it is.
    while True:
        combo = pd.Series([f"{b}|{i}|{w}" for b, i, w in zip(brand_index, industry, word_index, strict=True)])
        repeats = combo.duplicated().to_numpy()
        if not repeats.any():
            break
        brand_index[repeats] = rng.integers(len(brands), size=int(repeats.sum()))
    brand = [brands[i] for i in brand_index]
    words = [catalog.INDUSTRIES[i][2][w] for i, w in zip(industry, word_index, strict=True)]
    place = np.array(catalog.PLACES, dtype=object)[world.weighted([p[2] for p in catalog.PLACES], n)]
    province = [p[0] for p in place]
    city = [p[1] for p in place]
    area_code = [p[3] for p in place]
    suffix = np.array([s for s, _ in catalog.LEGAL_SUFFIXES], dtype=object)[
        world.weighted([w for _, w in catalog.LEGAL_SUFFIXES], n)
    ]
    style = world.weighted([60, 25, 15], n)  # city prefix / (city) in brackets / no place
    core_name = [b + w[0] for b, w in zip(brand, words, strict=True)]
    names = [
        f"{c}{core}{s}" if st == 0 else f"{core}（{c}）{s}" if st == 1 else f"{core}{s}"
        for c, core, s, st in zip(city, core_name, suffix, style, strict=True)
    ]
    brand_py = [pinyin(b) for b in brand]
    english = [f"{py.capitalize()} {w[1]} Co., Ltd." for py, w in zip(brand_py, words, strict=True)]
    pattern = world.weighted([35, 30, 20, 15], n)
    domains = [
        f"{py}.com" if p == 0 else f"{py}{w[2]}.com" if p == 1 else f"{py}-{w[2]}.cn" if p == 2 else f"{py}{w[2]}.com.cn"
        for py, w, p in zip(brand_py, words, pattern, strict=True)
    ]
    seen: dict[str, int] = {}
    for i, domain in enumerate(domains):
        if domain in seen:
            seen[domain] += 1
            host, _, tld = domain.partition(".")
            domains[i] = f"{host}{seen[domain]}.{tld}"
        else:
            seen[domain] = 1
    median = np.array([catalog.INDUSTRIES[i][1] for i in industry], dtype=np.float64)
    size = np.clip(np.exp(rng.normal(np.log(median), 1.1)), 8, 60_000)
    size = np.where(size < 100, np.round(size / 5) * 5, np.round(size / 10) * 10).astype(np.int64)
    size_rank = np.argsort(np.argsort(size)) / max(1, n - 1)
    is_target = rng.random(n) < 0.03 + 0.12 * size_rank
    is_customer = rng.random(n) < 0.04
    target_lists = []
    for t, ind, prov in zip(is_target, industry, province, strict=True):
        lists = []
        if t:
            lists.append(catalog.TARGET_LISTS[0])
            if ind == "制造业":
                lists.append(catalog.TARGET_LISTS[1])
            if prov in ("上海", "江苏", "浙江"):
                lists.append(catalog.TARGET_LISTS[2])
        target_lists.append(lists)
    owner, _ = route(np.array(province, dtype=object), industry, np.full(n, None, dtype=object))
    owner = np.where(owner == 0, np.array(catalog.REP_IDS)[np.arange(n) % len(catalog.REP_IDS)], owner)
    owner = np.where(is_target | is_customer, owner, 0)
    world.accounts = pd.DataFrame({
        "id": np.arange(1, n + 1),
        "name": names,
        "core": core_name,
        "brand": brand,
        "word": [w[0] for w in words],
        "english": english,
        "city": city,
        "province": province,
        "area_code": area_code,
        "industry": industry,
        "company_size": size,
        "domain": domains,
        "owner_id": owner,
        "is_target": is_target,
        "target_lists": target_lists,
        "is_customer": is_customer,
        "suffix": suffix,
    })
    world.accounts["name_key"] = company_key(world.accounts["name"])
    world.accounts["brand_py"] = brand_py


# ---------------------------------------------------------------------------------------------------------------
# Leads
# ---------------------------------------------------------------------------------------------------------------
def _creation_times(world: World, campaign_ids: np.ndarray) -> np.ndarray:
    """When each lead arrived: office hours on an active day of a continuous campaign (more recent days weigh
    more, weekends less), or during one of the sessions of an event campaign."""
    campaigns = world.campaigns
    assert campaigns is not None
    tl = world.timeline
    rng = world.rng
    created = np.zeros(len(campaign_ids), dtype=np.int64)
    window = np.arange(tl.today - tl.days + 1, tl.today + 1)
    growth = 0.6 + 0.8 * (window - window[0]) / max(1, window[-1] - window[0])
    weekend = np.where(tl.weekday(window) >= 5, 0.35, 1.0)
    for campaign in campaigns.itertuples():
        members = np.flatnonzero(campaign_ids == campaign.id)
        if not len(members):
            continue
        if campaign.schedule in ("always", "period"):
            active = campaign_active_mask(world, campaigns.loc[campaign.Index], window)
            weights = growth * weekend * active
            days = window[world.weighted(weights, len(members))]
            created[members] = tl.office_times(rng, days)
        else:
            starts, lengths = campaign.session_starts, campaign.session_lengths
            pick = rng.integers(len(starts), size=len(members))
            if campaign.kind == "email":  # a newsletter click: within two days of the send
                created[members] = starts[pick] + np.minimum(rng.exponential(8 * HOUR, len(members)), 2 * DAY)
            else:
                created[members] = starts[pick] + rng.integers(0, lengths[pick])
    late = created > tl.now - MINUTE
    created[late] = tl.now - rng.integers(MINUTE, 6 * HOUR, size=int(late.sum()))
    return created


def _pick_campaigns(world: World, n: int, *, continuous_only: bool = False) -> np.ndarray:
    """Source campaigns: a channel by its share of new leads, then one of its campaigns that brought leads in
    (continuous ones, or events with past sessions) by weight."""
    campaigns, channels = world.campaigns, world.channels
    assert campaigns is not None and channels is not None
    continuous = campaigns["schedule"].isin(["always", "period"]).to_numpy()
    usable = continuous if continuous_only else continuous | (campaigns["session_starts"].map(len).to_numpy() > 0)
    share = campaigns["channel_id"].map(dict(zip(channels["id"], channels["share"], strict=True))).to_numpy()
    weight = campaigns["weight"].to_numpy(dtype=np.float64) * usable
    channel_total = pd.Series(weight).groupby(campaigns["channel_id"].to_numpy()).transform("sum").to_numpy()
    weights = np.where(channel_total > 0, share * weight / np.where(channel_total > 0, channel_total, 1), 0)
    return campaigns["id"].to_numpy()[world.weighted(weights, n)]


def _mobiles(world: World, n: int) -> np.ndarray:
    prefixes = np.array([139, 138, 137, 136, 135, 134, 159, 158, 157, 152, 151, 150, 188, 187, 183, 182, 178, 186,
                         185, 156, 155, 132, 131, 130, 176, 133, 153, 189, 180, 181, 177, 173, 199, 191, 198, 166])
    numbers = prefixes[world.rng.integers(len(prefixes), size=n)] * 100_000_000 + world.rng.integers(
        0, 100_000_000, size=n
    )
    while True:
        repeats = pd.Series(numbers).duplicated().to_numpy()
        if not repeats.any():
            return numbers.astype(str)
        numbers[repeats] = prefixes[world.rng.integers(len(prefixes), size=int(repeats.sum()))] * 100_000_000 + (
            world.rng.integers(0, 100_000_000, size=int(repeats.sum()))
        )


def _raw_mobile(number: str, style: int) -> str:
    """One number the way different sources write it."""
    if style == 0:
        return number
    if style == 1:
        return f"{number[:3]} {number[3:7]} {number[7:]}"
    if style == 2:
        return f"{number[:3]}-{number[3:7]}-{number[7:]}"
    if style == 3:
        return f"+86 {number[:3]} {number[3:7]} {number[7:]}"
    if style == 4:
        return f"+86-{number}"
    if style == 5:
        return f"86{number}"
    if style == 6:
        return number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    if style == 7:
        return f"{number}.0"
    return f"{number[0]}.{number[1:]}E+10"


def _chinese_names(world: World, n: int) -> tuple[list[str], list[str], list[str]]:
    """(name, surname pinyin, given-name pinyin)."""
    rng = world.rng
    surnames = np.array([s for s, _ in catalog.SURNAMES], dtype=object)[
        world.weighted([w for _, w in catalog.SURNAMES], n)
    ]
    chars = np.array(list(catalog.GIVEN_CHARS), dtype=object)
    first = chars[rng.integers(len(chars), size=n)]
    second = chars[rng.integers(len(chars), size=n)]
    two = rng.random(n) < 0.75
    given = [a + b if t else a for a, b, t in zip(first, second, two, strict=True)]
    names = [s + g for s, g in zip(surnames, given, strict=True)]
    return names, [pinyin(s, surname=True) for s in surnames], [pinyin(g) for g in given]


def _email_local(sur: str, given: str, style: int, number: int) -> str:
    if style == 0:
        return f"{sur}.{given}"
    if style == 1:
        return f"{sur}{given}"
    if style == 2:
        return f"{given}.{sur}"
    if style == 3:
        return f"{given[:1]}{sur}"
    return f"{sur}{given}{number}"


def _objects(values: Any) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def build_leads(world: World) -> None:
    """One row per lead (pre-ids): who, where from, when; invalid ones and duplicates included.

    Columns are built as numpy object arrays and Python lists (element access on pandas' Arrow strings is slow);
    the DataFrame comes at the end."""
    rng = world.rng
    tl = world.timeline
    accounts, campaigns = world.accounts, world.campaigns
    assert accounts is not None and campaigns is not None
    n_total = world.n_leads
    n_dup = round(n_total * 0.04) if n_total >= 50 else 0
    n = n_total - n_dup

    campaign_id = _pick_campaigns(world, n)
    created = _creation_times(world, campaign_id)
    by_id = campaigns.set_index("id")
    # Today is never empty: a few leads arrived in the last hours.
    fresh_pool = np.flatnonzero(by_id.loc[campaign_id, "schedule"].isin(["always", "period"]).to_numpy())
    fresh = rng.choice(fresh_pool, size=min(len(fresh_pool), max(3, n // 300)), replace=False)
    created[fresh] = tl.now - rng.integers(5 * MINUTE, 8 * HOUR, size=len(fresh))

    size_weight = np.sqrt(accounts["company_size"].to_numpy(dtype=np.float64))
    account_index = world.weighted(size_weight, n)
    acc = {c: _objects(accounts[c].tolist())[account_index] for c in (
        "name", "core", "brand", "english", "city", "province", "area_code", "industry", "domain")}
    acc_size = accounts["company_size"].to_numpy()[account_index]

    english = rng.random(n) < 0.2
    names, sur_py, given_py = _chinese_names(world, n)
    first_en = _objects(catalog.ENGLISH_FIRST_NAMES)[rng.integers(len(catalog.ENGLISH_FIRST_NAMES), size=n)]
    western = rng.random(n) < 0.4
    last_en = _objects(catalog.WESTERN_LAST_NAMES)[rng.integers(len(catalog.WESTERN_LAST_NAMES), size=n)]
    for i in np.flatnonzero(english).tolist():
        if western[i]:
            names[i] = f"{first_en[i]} {last_en[i]}"
            sur_py[i], given_py[i] = last_en[i].lower().replace("ü", "ue"), first_en[i].lower()
        else:
            names[i] = f"{first_en[i]} {sur_py[i].capitalize()}"
            given_py[i] = first_en[i].lower()

    titles_zh = _objects([t for t, _, _ in catalog.TITLES_ZH])
    seniority_zh = np.array([s for _, _, s in catalog.TITLES_ZH])
    pick_zh = world.weighted([w for _, w, _ in catalog.TITLES_ZH], n)
    titles_en = _objects([t for t, _, _ in catalog.TITLES_EN])
    seniority_en = np.array([s for _, _, s in catalog.TITLES_EN])
    pick_en = world.weighted([w for _, w, _ in catalog.TITLES_EN], n)
    use_en_title = english & (rng.random(n) < 0.6)
    title = np.where(use_en_title, titles_en[pick_en], titles_zh[pick_zh]).astype(object)
    seniority = np.where(use_en_title, seniority_en[pick_en], seniority_zh[pick_zh])
    no_title = rng.random(n) < 0.08
    title[no_title] = None
    seniority[no_title] = 0

    # Company as written: legal name, short name, bracket form, "…有限公司", English name, brand only, nothing.
    variant = world.weighted([45, 20, 10, 10, 7, 5, 3], n)
    company = [
        name if v == 0 else f"{city}{core}" if v == 1 else f"{core}({city})" if v == 2 else f"{core}有限公司" if v == 3
        else english_name if v == 4 else brand if v == 5 else None
        for name, city, core, english_name, brand, v in zip(
            acc["name"], acc["city"], acc["core"], acc["english"], acc["brand"], variant.tolist(), strict=True)
    ]

    # Phones: most have a mobile, some only the switchboard, some none.
    phone_kind = world.weighted([88, 4, 8], n).tolist()  # mobile / landline / none
    mobile = _mobiles(world, n).tolist()
    mobile_style = world.weighted([40, 15, 10, 10, 5, 5, 3, 4, 3], n).tolist()
    landline = rng.integers(60_000_000, 89_999_999, size=n).astype(str).tolist()
    raw_phone = [
        _raw_mobile(m, s) if k == 0 else (f"({a}) {land[:4]} {land[4:]}" if s % 2 else f"{a}-{land}") if k == 1
        else None
        for k, m, s, a, land in zip(phone_kind, mobile, mobile_style, acc["area_code"], landline, strict=True)
    ]

    # Emails: the company domain, personal mailboxes, or none.
    email_kind = world.weighted([50, 20, 10, 3, 2, 5, 5, 15], n).tolist()
    personal = [d for d, _ in catalog.PERSONAL_EMAIL_DOMAINS]
    email_style = rng.integers(0, 5, size=n).tolist()
    number = rng.integers(1, 99, size=n).tolist()
    qq = rng.integers(100_000, 3_999_999_999, size=n).tolist()
    capital = (rng.random(n) < 0.3).tolist()
    raw_email: list[str | None] = []
    for i in range(n):
        k = email_kind[i]
        if k == 7:
            raw_email.append(None)
            continue
        local = _email_local(sur_py[i], given_py[i], email_style[i], number[i])
        domain = acc["domain"][i] if k == 0 else personal[k - 1]
        if domain == "qq.com" and not english[i]:
            local = str(qq[i])
        text = f"{local}@{domain}"
        raw_email.append(text.capitalize() if email_style[i] == 0 and capital[i] else text)
    has_wechat = (rng.random(n) < 0.3).tolist()
    wxid = rng.integers(10**9, 10**10, size=n).tolist()
    suffix = rng.integers(10, 999, size=n).tolist()
    style = (rng.random(n) < 0.5).tolist()
    wechat = [
        (f"wxid_{w}" if st else f"{s}{g}{x}") if h else None
        for h, w, st, s, g, x in zip(has_wechat, wxid, style, sur_py, given_py, suffix, strict=True)
    ]

    camp = by_id.loc[campaign_id]
    cols: dict[str, np.ndarray] = {
        "created": created,
        "campaign_id": campaign_id,
        "channel_id": camp["channel_id"].to_numpy(),
        "channel_kind": _objects(camp["kind"].tolist()),
        "first_kind": _objects(camp["first"].tolist()),
        "convert": camp["convert"].to_numpy(dtype=np.float64),
        "product_line": _objects(camp["product_line"].tolist()),
        "account_index": account_index,
        "name": _objects(names),
        "sur_py": _objects(sur_py),
        "given_py": _objects(given_py),
        "english": english,
        "title": title,
        "seniority": seniority,
        "company": _objects(company),
        "raw_phone": _objects(raw_phone),
        "raw_email": _objects(raw_email),
        "wechat_id": _objects(wechat),
        "is_fan": np.zeros(n, dtype=bool),
        "fan_registers": np.zeros(n, dtype=bool),
        "invalid_reason": np.full(n, None, dtype=object),
        "dup_of": np.full(n, -1, dtype=np.int64),
        "dup_kind": np.full(n, None, dtype=object),
        "industry": acc["industry"].copy(),
        "province": acc["province"].copy(),
        "city": acc["city"].copy(),
        "company_size": acc_size.astype(object),
    }
    _wechat_fans(world, cols)
    _invalid(world, cols)
    dups = _duplicates(world, cols, n_dup, acc)
    cols = {k: np.concatenate([v, dups[k]]) if len(dups[k]) else v for k, v in cols.items()}
    cols["is_dup"] = cols["dup_of"] >= 0
    frame = pd.DataFrame({k: (pd.Series(v, dtype=object) if v.dtype == object else v) for k, v in cols.items()})
    _finish(world, frame)


def _wechat_fans(world: World, cols: dict[str, np.ndarray]) -> None:
    """About a third of the WeChat followers never left more than a nickname: the '未完善信息粉丝'."""
    rng = world.rng
    wechat = np.flatnonzero(cols["channel_kind"] == "wechat")
    fans = wechat[rng.random(len(wechat)) < 0.38]
    registers = rng.random(len(fans)) < 0.3
    nick = _objects(catalog.WECHAT_NICKNAMES)
    cols["is_fan"][fans] = True
    cols["fan_registers"][fans] = registers
    silent = fans[~registers]
    cols["name"][silent] = nick[rng.integers(len(nick), size=len(silent))]
    for column in ("title", "company", "raw_phone", "raw_email", "industry", "province", "city", "company_size"):
        cols[column][silent] = None
    cols["account_index"][silent] = -1
    cols["seniority"][silent] = 0
    cols["wechat_id"][fans] = [f"wxid_{w}" for w in rng.integers(10**9, 10**10, size=len(fans)).tolist()]


def _invalid(world: World, cols: dict[str, np.ndarray]) -> None:
    """About 5 % cannot be used: test numbers, no contact at all, throw-away mailboxes, broken numbers."""
    rng = world.rng
    n = len(cols["created"])
    candidates = np.flatnonzero(~cols["is_fan"])
    chosen = rng.choice(candidates, size=min(len(candidates), round(n * 0.05)), replace=False)
    kind = world.weighted([35, 25, 25, 15], len(chosen))
    reason, phone, email, name, wechat = (cols[c] for c in ("invalid_reason", "raw_phone", "raw_email", "name",
                                                             "wechat_id"))
    for i, k in zip(chosen.tolist(), kind.tolist(), strict=True):
        if k == 0:
            reason[i] = "测试号码"
            phone[i] = catalog.TEST_PHONES[int(rng.integers(len(catalog.TEST_PHONES)))]
            if rng.random() < 0.5:
                name[i] = ["测试", "test", "测试用户", "aaa"][int(rng.integers(4))]
        elif k == 1:
            reason[i] = "无联系方式"
            phone[i] = email[i] = wechat[i] = None
        elif k == 2:
            reason[i] = "一次性邮箱"
            domain = catalog.DISPOSABLE_DOMAINS[int(rng.integers(len(catalog.DISPOSABLE_DOMAINS)))]
            email[i] = f"{cols['sur_py'][i]}{int(rng.integers(100, 999))}@{domain}"
            phone[i] = None
        else:
            reason[i] = "手机号无效"
            phone[i] = str(int(rng.integers(1_000_000, 9_999_999)))
            email[i] = None


def _duplicates(world: World, cols: dict[str, np.ndarray], n_dup: int, acc: dict[str, np.ndarray]
                ) -> dict[str, np.ndarray]:
    """The same people again, written differently: pinyin instead of Chinese, a phone one digit off, another
    spelling of the company, or the same contact details from another channel."""
    if n_dup == 0:
        return {k: v[:0] for k, v in cols.items()}
    rng = world.rng
    tl = world.timeline
    campaigns = world.campaigns
    assert campaigns is not None
    ok = (
        pd.isna(cols["invalid_reason"]) & ~cols["is_fan"] & (cols["created"] < tl.now - 2 * DAY)
        & ~pd.isna(cols["raw_phone"])
    )
    originals = np.sort(rng.choice(np.flatnonzero(ok), size=min(n_dup, int(ok.sum())), replace=False))
    k_dup = len(originals)
    dups = {k: v[originals].copy() for k, v in cols.items()}
    dups["dup_of"] = originals.copy()
    campaign_id = _pick_campaigns(world, k_dup, continuous_only=True)
    camp = campaigns.set_index("id").loc[campaign_id]
    dups["campaign_id"] = campaign_id
    dups["channel_id"] = camp["channel_id"].to_numpy()
    dups["channel_kind"] = _objects(camp["kind"].tolist())
    dups["first_kind"] = _objects(camp["first"].tolist())
    dups["product_line"] = _objects(camp["product_line"].tolist())
    dups["convert"] = camp["convert"].to_numpy(dtype=np.float64) * 0.4
    # Back some hours to four months later, never after now.
    room = np.minimum(tl.now - 2 * HOUR - dups["created"], 120 * DAY).astype(np.float64)
    dups["created"] = (dups["created"] + HOUR + room * rng.random(k_dup) ** 1.5).astype(np.int64)
    kinds = _objects(["pinyin", "phone_typo", "company_variant", "same_contact"])
    kind = kinds[world.weighted([35, 25, 25, 15], k_dup)]
    kind[(kind == "pinyin") & dups["english"]] = "same_contact"
    for j, original in enumerate(originals.tolist()):
        k = kind[j]
        core, city, name = acc["core"][original], acc["city"][original], acc["name"][original]
        digits = "".join(c for c in str(dups["raw_phone"][j]) if c.isdigit())[-11:]
        mobile = len(digits) == 11
        if k == "phone_typo" and not mobile:
            k = "company_variant"
        if k == "pinyin":
            sur, given = dups["sur_py"][j], dups["given_py"][j]
            dups["name"][j] = [f"{given.capitalize()} {sur.capitalize()}", f"{sur.capitalize()} {given.capitalize()}",
                               f"{sur}{given}"][int(rng.integers(3))]
            if mobile:
                dups["raw_phone"][j] = _raw_mobile(digits, int(rng.integers(0, 6)))
            if rng.random() < 0.5:
                dups["raw_email"][j] = None
        elif k == "phone_typo":
            position = int(rng.integers(3, 11))
            digit = (int(digits[position]) + int(rng.integers(1, 10))) % 10
            dups["raw_phone"][j] = digits[:position] + str(digit) + digits[position + 1 :]
            dups["raw_email"][j] = None
            dups["company"][j] = f"{core}({city})"
        elif k == "company_variant":
            dups["company"][j] = [name, f"{core}有限公司", f"{city}{core}"][int(rng.integers(3))]
            email = dups["raw_email"][j]
            dups["raw_email"][j] = email.upper() if isinstance(email, str) else email
            if rng.random() < 0.4:
                dups["raw_phone"][j] = None
        elif mobile:
            dups["raw_phone"][j] = _raw_mobile(digits, int(rng.integers(0, 6)))
        kind[j] = k
    dups["dup_kind"] = kind
    return dups


def _finish(world: World, frame: pd.DataFrame) -> None:
    """Order by arrival, give ids, normalize, link accounts, and derive the keys like the importer would."""
    rng = world.rng
    accounts, campaigns, links = world.accounts, world.campaigns, world.tracking_links
    assert accounts is not None and campaigns is not None and links is not None
    order = np.lexsort((np.arange(len(frame)), frame["created"].to_numpy()))
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    frame = frame.iloc[order].reset_index(drop=True)
    frame["dup_of"] = np.where(frame["dup_of"] >= 0, position[frame["dup_of"].clip(lower=0)], -1)
    frame.insert(0, "id", np.arange(1, len(frame) + 1))
    n = len(frame)

    raw = frame[["name", "raw_phone", "raw_email", "company", "wechat_id"]].rename(
        columns={"raw_phone": "phone", "raw_email": "email"})
    keys = lead_keys(raw, contacts=True)
    for column in ("phone", "email", "name_key", "company_key", "search_text"):
        frame[column] = keys[column]
    by_key = dict(zip(accounts["name_key"], accounts["id"], strict=True))
    by_domain = dict(zip(accounts["domain"], accounts["id"], strict=True))
    domain = frame["email"].map(lambda e: e.split("@", 1)[1] if isinstance(e, str) else None)
    linked = frame["company_key"].map(by_key)
    linked = linked.where(linked.notna(), domain.map(by_domain))
    frame["account_id"] = linked.astype("Int64")

    # Leads that did not give their industry, size or region.
    for column, share in (("industry", 0.15), ("company_size", 0.3), ("province", 0.1)):
        frame.loc[rng.random(n) < share, column] = None
    frame.loc[frame["province"].isna(), "city"] = None
    frame["product_interest"] = np.where(
        rng.random(n) < 0.6, frame["product_line"],
        np.where(rng.random(n) < 0.5, np.array(catalog.PRODUCT_LINES, dtype=object)[rng.integers(3, size=n)], None),
    )
    frame.loc[frame["product_interest"].isna(), "product_interest"] = None

    # Source attribution: UTM of the campaign, employee codes on referral leads.
    camp = campaigns.set_index("id").loc[frame["campaign_id"]]
    frame["utm_source"] = camp["utm_source"].to_numpy()
    frame["utm_medium"] = camp["utm_medium"].to_numpy()
    frame["utm_campaign"] = camp["utm_campaign"].to_numpy()
    tracking = _objects(camp["code"].tolist())
    referrer = np.full(n, -1, dtype=np.int64)
    personal = links[links["employee_id"].notna()]
    options: dict[int, list[tuple[str, int]]] = {}
    for code, campaign, employee in zip(personal["code"], personal["campaign_id"], personal["employee_id"], strict=True):
        options.setdefault(int(campaign), []).append((code, int(employee)))
    kinds = frame["channel_kind"].to_numpy(dtype=object)
    campaign_of = frame["campaign_id"].to_numpy()
    for kind, share in (("referral", 1.0), ("social", 0.5), ("tradeshow", 0.15)):
        members = np.flatnonzero(kinds == kind)
        members = members[rng.random(len(members)) < share]
        picks = rng.random(len(members))
        for i, u in zip(members.tolist(), picks.tolist(), strict=True):
            choices = options.get(int(campaign_of[i]))
            if choices:
                code, employee = choices[int(u * len(choices))]
                tracking[i] = code
                if kind != "tradeshow":
                    referrer[i] = employee
    frame["tracking_code"] = pd.Series(tracking, dtype=object)
    frame["referrer_id"] = referrer
    frame["unsubscribed"] = rng.random(n) < 0.03
    frame["status"] = np.where(frame["invalid_reason"].notna(), "invalid", "valid")
    senior = frame["title"].map(lambda t: isinstance(t, str) and any(w in t for w in SENIOR_TITLE_WORDS))
    frame["senior"] = senior.astype(bool)
    frame["attributes"] = [
        {"关注产品": p, "备注": note} if k in ("tradeshow", "event") and note else {}
        for k, p, note in zip(
            frame["channel_kind"], frame["product_line"],
            np.array(["", "", "希望安排演示", "索要报价", "想看同行案例"], dtype=object)[rng.integers(5, size=n)],
            strict=True,
        )
    ]
    world.leads = frame
