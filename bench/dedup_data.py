"""A labelled generator of lead records: the same person written many ways, with ground truth.

Each person (an *entity*) gets one to three records, as channels would send them: the name in characters or in
pinyin in either order or with a typo, the company with or without its legal suffix, with a city in front or in
brackets, abbreviated or misspelt, the mobile with +86, spaces or one digit wrong, a personal instead of a work
email, fields left empty. The population is built so that different people look alike as they do in real data:
common names repeat (several 张伟 in one city, sometimes in one company), colleagues give the office switchboard,
and companies of one group share most of their name. ``entity`` is the ground truth.

Deterministic for a given seed; used by the accuracy report, the speed benchmark and the unit tests.
"""

from __future__ import annotations

import random
from functools import lru_cache
from itertools import accumulate

import pandas as pd
from pypinyin import Style, lazy_pinyin

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆"
    "汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官")
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志文辉鹏飞红玲峰斌波宇浩凯俊琳晨雪梅丹萍颖佳欣"
    "婷慧莉燕琴云鑫亮林宁旭东海鸿蕾璐晶莹瑶思嘉怡然子轩博昊天瑞泽雨萱诗涵梓一诺皓宏彬晓春秋冬"
)
WESTERN_FIRST = ("James John Robert Michael William David Richard Joseph Thomas Charles Mary Patricia Jennifer "
                 "Linda Elizabeth Barbara Susan Jessica Sarah Karen Daniel Matthew Anthony Mark Paul Steven "
                 "Andrew Kevin Brian Emma Olivia Sophie Laura Anna Peter Hans Klaus Pierre Marie Lucas").split()
WESTERN_LAST = ("Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Martin "
                "Jackson White Harris Clark Lewis Walker Hall Allen Young King Wright Scott Green Baker Adams "
                "Nelson Hill Muller Schmidt Schneider Fischer Weber Dubois Bernard Moreau Laurent").split()
CORE_CHARS = "云杉华信达远景博瑞泰安恒通鼎盛嘉和兴宏智联创科汇金鑫辰星睿康思源锐捷优品易数众图灵立方新元航天海"
INDUSTRY = ("科技", "信息技术", "软件", "网络科技", "医疗器械", "物流", "电子", "智能制造", "数据服务", "生物科技",
            "新材料", "咨询", "传媒", "环保科技", "机械")
EN_INDUSTRY = ("Technology", "Software", "Logistics", "Electronics", "Consulting", "Media", "Data")
LEGAL = ("有限公司", "有限公司", "有限公司", "股份有限公司", "有限责任公司", "集团有限公司")
CITIES = ("上海", "北京", "深圳", "广州", "杭州", "南京", "苏州", "成都", "武汉", "西安", "天津", "重庆", "长沙", "合肥")
TITLES = ("销售总监", "市场经理", "IT经理", "采购经理", "总经理", "技术总监", "CTO", "CEO", "产品经理", "运营总监",
          "财务经理", "工程师", "数据分析师", "人力资源经理", "副总裁", "项目经理", "研发经理", "市场专员")
TITLE_VARIANTS = {"销售总监": "销售部总监", "市场经理": "市场部经理", "IT经理": "信息技术经理", "CTO": "首席技术官",
                  "CEO": "首席执行官", "总经理": "总经理(GM)", "产品经理": "高级产品经理"}
FREE_MAIL = ("qq.com", "163.com", "126.com", "gmail.com", "sina.com", "foxmail.com", "outlook.com")
MOBILE_PREFIXES = ("130 131 132 133 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 170 173 176 "
                   "177 178 180 181 182 183 185 186 187 188 189 191 195 198 199").split()
LEAD_COLUMNS = ["name", "email", "phone", "wechat_id", "company", "title", "city"]


def _zipf_cumulative(n: int, exponent: float) -> list[float]:
    return list(accumulate(1.0 / k ** exponent for k in range(1, n + 1)))


@lru_cache(maxsize=4096)
def _pinyin(text: str) -> str:
    return "".join(lazy_pinyin(text, style=Style.NORMAL))


class _World:
    def __init__(self, rng: random.Random, people: int) -> None:
        self.rng = rng
        self.surname_w = _zipf_cumulative(len(SURNAMES), 0.9)
        self.given_w = _zipf_cumulative(len(GIVEN), 0.7)
        self.companies = self._companies(max(20, people // 6))
        self.company_w = _zipf_cumulative(len(self.companies), 0.9)
        self.emails: set[str] = set()

    def _companies(self, n: int) -> list[dict[str, str]]:
        rng = self.rng
        seen: set[str] = set()
        out: list[dict[str, str]] = []
        while len(out) < n:
            core = "".join(rng.sample(CORE_CHARS, 2))
            industry = rng.choice(INDUSTRY)
            if core + industry in seen:
                continue
            seen.add(core + industry)
            city = (rng.choice(CITIES))
            english = rng.random() < 0.06
            pinyin = _pinyin(core)
            company = {
                "core": core, "industry": industry, "city": city, "legal": (rng.choice(LEGAL)),
                "domain": f"{pinyin}{rng.choice(['', 'tech', 'group', 'soft'])}.{rng.choice(['com', 'cn', 'com.cn'])}",
                "switchboard": f"0{rng.randrange(10, 30)}-{rng.randrange(5, 9)}{rng.randrange(0, 10 ** 7):07d}",
                "english": english,
                "en_name": f"{pinyin.capitalize()} {rng.choice(EN_INDUSTRY)} Co., Ltd.",
            }
            company["name"] = (f"{city}{core}{industry}{company['legal']}" if rng.random() < 0.6
                               else f"{core}{industry}({city}){company['legal']}")
            out.append(company)
        return out

    def person(self, entity: int) -> dict[str, object]:
        rng = self.rng
        company = rng.choices(self.companies, cum_weights=self.company_w)[0]
        western = rng.random() < 0.08
        if western:
            first, last = (rng.choice(WESTERN_FIRST)), (rng.choice(WESTERN_LAST))
            han, given_py, sur_py = None, first.lower(), last.lower()
            name = f"{first} {last}"
        else:
            surname = (rng.choice(COMPOUND_SURNAMES) if rng.random() < 0.01
                       else rng.choices(SURNAMES, cum_weights=self.surname_w)[0])
            given = "".join(rng.choices(GIVEN, cum_weights=self.given_w, k=1 if rng.random() < 0.35 else 2))
            han = surname + given
            sur_py = _pinyin(surname)
            given_py = _pinyin(given)
            name = han
        if rng.random() < 0.08:
            phone = company["switchboard"]  # colleagues giving the office number
        else:
            phone = (rng.choice(MOBILE_PREFIXES)) + f"{rng.randrange(0, 10 ** 8):08d}"
        local = (rng.choice([f"{sur_py}{given_py}", f"{given_py}.{sur_py}", f"{sur_py}.{given_py}",
                                f"{given_py[:1]}{sur_py}", f"{sur_py}{given_py}{rng.randrange(1, 99)}"]))
        if rng.random() < 0.55:
            email = f"{local}@{company['domain']}"
        elif rng.random() < 0.5:
            email = f"{rng.randrange(10 ** 5, 10 ** 10)}@qq.com"
        else:
            email = f"{local}{rng.randrange(0, 999) if rng.random() < 0.5 else ''}@{rng.choice(FREE_MAIL)}"
        while email in self.emails:  # a mailbox belongs to one person
            email = email.replace("@", f"{rng.randrange(0, 10)}@", 1)
        self.emails.add(email)
        wechat = (f"wxid_{rng.randrange(10 ** 9, 10 ** 10)}" if rng.random() < 0.5
                  else f"{sur_py}{given_py}_{rng.randrange(10, 9999)}") if rng.random() < 0.35 else None
        return {
            "entity": entity, "western": western, "han": han, "sur_py": sur_py, "given_py": given_py,
            "name": name, "company_info": company,
            "company": company["en_name"] if company["english"] else company["name"],
            "phone": phone, "email": email, "wechat_id": wechat,
            "title": (rng.choice(TITLES)), "city": company["city"],
        }


def _mobile_format(phone: str, rng: random.Random) -> str:
    if not phone.startswith("1") or len(phone) != 11:
        return phone if rng.random() < 0.7 else phone.replace("-", "")
    style = rng.randrange(0, 5)
    return [phone, f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}", f"{phone[:3]}-{phone[3:7]}-{phone[7:]}",
            f"86{phone}", f"+86{phone}"][style]


def _digit_typo(phone: str, rng: random.Random) -> str:
    digits = list(phone)
    positions = [k for k, c in enumerate(digits) if c.isdigit()][3:]  # the prefix is seldom mistyped
    k = rng.choice(positions)
    if rng.random() < 0.7:
        digits[k] = str((int(digits[k]) + int(rng.randrange(1, 10))) % 10)
    else:
        nxt = next((m for m in positions if m > k), None)
        if nxt is not None and digits[nxt] != digits[k]:
            digits[k], digits[nxt] = digits[nxt], digits[k]
        else:
            digits[k] = str((int(digits[k]) + 1) % 10)
    return "".join(digits)


def _letter_typo(text: str, rng: random.Random) -> str:
    letters = list(text)
    positions = [k for k, c in enumerate(letters) if c.isalpha()][1:]
    if not positions:
        return text
    k = rng.choice(positions)
    action = rng.randrange(0, 3)
    if action == 0:
        letters[k] = (rng.choice(list("abcdefghijklmnopqrstuvwxyz")))
    elif action == 1:
        del letters[k]
    elif k + 1 < len(letters):
        letters[k], letters[k + 1] = letters[k + 1], letters[k]
    return "".join(letters)


def _variant_name(p: dict[str, object], rng: random.Random) -> tuple[str | None, bool]:
    sur, given = str(p["sur_py"]), str(p["given_py"])
    roll = rng.random()
    if p["western"]:
        first, last = given.capitalize(), sur.capitalize()
        if roll < 0.55:
            return str(p["name"]), True
        if roll < 0.7:
            return f"{first[0]}. {last}", True
        if roll < 0.8:
            return f"{last}, {first}", True
        if roll < 0.95:
            return _letter_typo(f"{first} {last}", rng), True
        return None, False
    if roll < 0.45:
        return str(p["han"]), True
    if roll < 0.8:
        style = rng.randrange(0, 5)
        return [f"{sur.capitalize()} {given.capitalize()}", f"{given.capitalize()} {sur.capitalize()}",
                f"{sur.upper()} {given.capitalize()}", f"{sur}{given}", f"{given.capitalize()} {sur.upper()}"][style], True
    if roll < 0.86:
        han = str(p["han"])  # a homophone picked by the input method: 张伟 → 张玮
        homophones = {"伟": "玮", "静": "婧", "丽": "莉", "军": "君", "华": "桦", "杰": "洁", "明": "铭", "磊": "蕾",
                      "芳": "方", "敏": "民", "涛": "韬", "宇": "雨", "鹏": "朋", "林": "琳", "晨": "辰", "峰": "锋"}
        swapped = "".join(homophones.get(c, c) for c in han)
        return (swapped if swapped != han else han), True
    if roll < 0.95:
        return _letter_typo(f"{sur.capitalize()} {given.capitalize()}", rng), True
    return None, False


def _variant_company(p: dict[str, object], rng: random.Random) -> tuple[str | None, bool]:
    c = p["company_info"]
    assert isinstance(c, dict)
    if c["english"]:
        roll = rng.random()
        if roll < 0.5:
            return str(c["en_name"]), True
        if roll < 0.8:
            return str(c["en_name"]).replace(" Co., Ltd.", " Ltd"), True
        return (None, False) if roll < 0.9 else (str(c["en_name"]).upper(), True)
    roll = rng.random()
    forms = [
        (0.30, str(c["name"])),
        (0.50, f"{c['core']}{c['industry']}"),
        (0.62, f"{c['core']}{c['industry']}({c['city']})"),
        (0.74, f"{c['city']}{c['core']}{c['industry']}{c['legal']}"),
        (0.82, f"{c['core']}{c['industry']}{c['legal']}"),
        (0.88, f"{c['city']}{c['core']}"),
        (0.93, f"{c['core']}{c['industry'][:1]}{c['legal']}"),
    ]
    for limit, form in forms:
        if roll < limit:
            return form, True
    return None, False


def _variant(p: dict[str, object], rng: random.Random) -> dict[str, object]:
    """A second record of the same person: recognizable (at least two of name, company, phone, email,
    WeChat still point to them, possibly misspelt) but rarely identical."""
    while True:
        name, has_name = _variant_name(p, rng)
        company, has_company = _variant_company(p, rng)
        phone = str(p["phone"])
        roll = rng.random()
        if roll < 0.5:
            phone_out, has_phone = _mobile_format(phone, rng), True
        elif roll < 0.65:
            phone_out, has_phone = _digit_typo(phone, rng), True
        elif roll < 0.85:
            phone_out, has_phone = None, False
        else:
            phone_out, has_phone = (rng.choice(MOBILE_PREFIXES)) + f"{rng.randrange(0, 10 ** 8):08d}", False
        email = str(p["email"])
        local, domain = email.split("@")
        roll = rng.random()
        if roll < 0.35:
            email_out, has_email = (email.upper() if rng.random() < 0.2 else email), True
        elif roll < 0.45 and not local.isdigit():
            email_out, has_email = f"{local}@{rng.choice(FREE_MAIL)}", True
        elif roll < 0.55:
            email_out, has_email = f"{_letter_typo(local, rng) if not local.isdigit() else _digit_typo(local, rng)}@{domain}", True
        elif roll < 0.85:
            email_out, has_email = None, False
        else:
            email_out, has_email = f"{p['sur_py']}{rng.randrange(100, 9999)}@{rng.choice(FREE_MAIL)}", False
        wechat = p["wechat_id"] if p["wechat_id"] and rng.random() < 0.5 else None
        signals = has_name + has_company + has_phone + has_email + (wechat is not None)
        if signals >= 2 and (has_name or has_phone or has_email or wechat):
            break
    title = p["title"]
    roll = rng.random()
    title = title if roll < 0.5 else (TITLE_VARIANTS.get(str(title), title) if roll < 0.7 else None)
    city = p["city"] if rng.random() < 0.6 else None
    return {"entity": p["entity"], "name": name, "email": email_out, "phone": phone_out, "wechat_id": wechat,
            "company": company, "title": title, "city": city}


def labelled_leads(people: int, *, seed: int = 1, duplicate_share: float = 0.3) -> pd.DataFrame:
    """Lead records of ``people`` persons, ``duplicate_share`` of whom appear two or three times.

    Index: record ids 1…n in shuffled order; columns: the lead fields and ``entity`` (ground truth)."""
    rng = random.Random(seed)
    world = _World(rng, people)
    rows: list[dict[str, object]] = []
    for entity in range(people):
        p = world.person(entity)
        rows.append({"entity": entity, "name": p["name"], "email": p["email"],
                     "phone": _mobile_format(str(p["phone"]), rng) if rng.random() < 0.3 else p["phone"],
                     "wechat_id": p["wechat_id"], "company": p["company"], "title": p["title"], "city": p["city"]})
        if rng.random() < duplicate_share:
            for _ in range(1 if rng.random() < 0.75 else 2):
                rows.append(_variant(p, rng))
    frame = pd.DataFrame(rows)
    order = list(range(len(frame)))
    rng.shuffle(order)
    frame = frame.iloc[order].reset_index(drop=True)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="id")
    return frame[[*LEAD_COLUMNS, "entity"]]


def true_pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    """Every pair of records (smaller id first) that belong to the same entity."""
    pairs: set[tuple[int, int]] = set()
    for _, ids in frame.groupby("entity").groups.items():
        members = sorted(int(i) for i in ids)
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                pairs.add((members[a], members[b]))
    return pairs


def _cluster_pairs(pairs: pd.DataFrame, threshold: float) -> set[tuple[int, int]]:
    """Every pair of records that end up in one cluster when pairs at or above ``threshold`` are followed
    transitively — what automatic merging (and merging the review queue) does to the base."""
    from core.dedup import clusters

    linked = clusters(pairs, threshold)
    implied: set[tuple[int, int]] = set()
    for _, members in linked.groupby(linked).groups.items():
        ids = sorted(int(i) for i in members)
        implied.update((ids[a], ids[b]) for a in range(len(ids)) for b in range(a + 1, len(ids)))
    return implied


def evaluate(frame: pd.DataFrame, pairs: pd.DataFrame, *, auto: float, review: float) -> dict[str, float]:
    """Precision of automatic merges and recall of automatic + review, on the ground truth of ``frame``.

    Both are counted over *clusters*, as the product acts: merging A=B and B=C also merges A and C, so every pair
    of records in one automatic cluster counts for precision; a true pair counts as found when its records are
    connected through pairs at or above ``review``. The plain pairwise figures are given too."""
    truth = true_pairs(frame)
    found = {(min(a, b), max(a, b)): s for a, b, s in zip(pairs["left"], pairs["right"], pairs["score"], strict=True)}
    automatic = {k for k, s in found.items() if s >= auto}
    reviewed = {k for k, s in found.items() if s >= review}
    auto_clusters = _cluster_pairs(pairs, auto)
    review_clusters = _cluster_pairs(pairs, review)
    return {
        "records": float(len(frame)),
        "true_pairs": float(len(truth)),
        "auto_pairs": float(len(automatic)),
        "review_pairs": float(len(reviewed - automatic)),
        "precision_auto": len(auto_clusters & truth) / len(auto_clusters) if auto_clusters else 1.0,
        "recall_total": len(review_clusters & truth) / len(truth) if truth else 1.0,
        "pairwise_precision_auto": len(automatic & truth) / len(automatic) if automatic else 1.0,
        "pairwise_recall_total": len(reviewed & truth) / len(truth) if truth else 1.0,
        "recall_auto": len(auto_clusters & truth) / len(truth) if truth else 1.0,
        "precision_review": len(reviewed & truth) / len(reviewed) if reviewed else 1.0,
    }
