"""Column mapping: which lead field each column of a channel's file holds, by Chinese and English synonyms."""

from __future__ import annotations

from collections.abc import Iterable

from core.importer.reading import header_key

# Lead fields a column can map to, in the order the mapping editor lists them. Columns mapped to nothing are kept
# on the lead as custom attributes (Lead.attributes), under their own header.
LEAD_FIELDS = ("name", "phone", "email", "wechat_id", "company", "title", "industry", "province", "city",
               "company_size", "product_interest")
ATTRIBUTION_FIELDS = ("source", "referral_code", "utm_source", "utm_medium", "utm_campaign", "landing_url")
ACTIVITY_FIELDS = ("occurred_at", "activity", "duration")
FIELDS: tuple[str, ...] = LEAD_FIELDS + ATTRIBUTION_FIELDS + ACTIVITY_FIELDS
IGNORE = "ignore"  # the column is dropped (not even kept as an attribute)

SYNONYMS: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "联系人", "联系人姓名", "客户姓名", "名字", "昵称", "用户名", "真实姓名", "name", "fullname",
             "contactname", "contact", "firstname", "nickname", "参会人", "报名人"),
    "phone": ("手机", "手机号", "手机号码", "联系电话", "电话", "电话号码", "移动电话", "联系方式", "mobile",
              "mobilephone", "phone", "contactphone", "contactnumber", "phonenumber", "tel", "telephone", "cellphone", "cell"),
    "email": ("邮箱", "电子邮件", "电子邮箱", "邮件", "邮箱地址", "email", "e-mail", "mail", "emailaddress", "contactemail"),
    "wechat_id": ("微信", "微信号", "微信id", "wechat", "wechatid", "weixin", "openid", "unionid"),
    "company": ("公司", "单位", "企业名称", "公司名称", "企业", "工作单位", "单位名称", "机构", "company",
                "companyname", "organization", "organisation", "org", "account"),
    "title": ("职位", "职务", "岗位", "头衔", "title", "jobtitle", "position", "role"),
    "industry": ("行业", "所属行业", "industry", "sector", "vertical"),
    "province": ("省份", "省", "所在省份", "地区", "区域", "province", "state", "region"),
    "city": ("城市", "所在城市", "市", "city"),
    "company_size": ("公司规模", "人数", "企业规模", "员工人数", "规模", "companysize", "employees", "headcount",
                     "size"),
    "product_interest": ("感兴趣产品", "意向产品", "产品", "关注产品", "product", "productinterest", "interest"),
    "source": ("来源", "线索来源", "渠道", "source", "leadsource", "channel"),
    "referral_code": ("推荐人", "推荐码", "员工工号", "工号", "邀请码", "推广码", "渠道码", "追踪码", "referralcode",
                      "referral", "referrer", "trackingcode", "ref", "code", "invitecode"),
    "utm_source": ("utmsource", "utm来源"),
    "utm_medium": ("utmmedium", "utm媒介"),
    "utm_campaign": ("utmcampaign", "utm活动"),
    "landing_url": ("落地页", "落地页url", "着陆页", "来源页面", "来源网址", "页面地址", "landingpage", "landingurl",
                    "url", "pageurl", "referrerurl"),
    "occurred_at": ("时间", "日期", "提交时间", "报名时间", "签到时间", "扫码时间", "观看时间", "下载时间", "参会时间",
                    "打开时间", "点击时间", "创建时间", "date", "time", "datetime", "timestamp", "submittedat",
                    "createdat", "registeredat", "occurredat"),
    "activity": ("行为", "动作", "活动类型", "行为类型", "事件", "类型", "activity", "action", "event", "eventtype",
                 "type"),
    "duration": ("时长", "观看时长", "观看时长(分钟)", "参会时长", "在线时长", "停留时长", "duration",
                 "durationminutes", "minutes", "watchtime", "attendanceduration"),
}

_EXACT: dict[str, str] = {header_key(s): f for f, words in SYNONYMS.items() for s in words}
# Longer synonyms first, so "观看时长(分钟)" is a duration and not a time because it contains "时".
_CONTAINED = sorted(((header_key(s), f) for f, words in SYNONYMS.items() for s in words if len(header_key(s)) >= 2),
                    key=lambda pair: -len(pair[0]))


def field_for(column: str) -> str | None:
    """The field a header names, by exact synonym, else by the longest synonym it contains."""
    key = header_key(column)
    if not key:
        return None
    if key in _EXACT:
        return _EXACT[key]
    if key.startswith("utm_") or key.startswith("utm"):
        for name in ("source", "medium", "campaign"):
            if name in key:
                return f"utm_{name}"
    for synonym, name in _CONTAINED:
        if len(synonym) >= 2 and synonym in key:
            return name
    return None


def known_header(cell: str) -> bool:
    """Whether a cell reads like a column header LeadLoop knows (used to find the header row)."""
    key = header_key(cell)
    return bool(key) and len(key) <= 40 and key in _EXACT


def suggest_mapping(columns: Iterable[str], saved: dict[str, str] | None = None) -> dict[str, str | None]:
    """Column → field (or ``None`` = keep as attribute): the channel's remembered mapping where it names the column,
    synonyms otherwise. Each field is taken by one column only, the first that claims it."""
    saved = saved or {}
    columns = list(columns)
    result: dict[str, str | None] = {}
    taken: set[str] = set()
    for column in columns:
        remembered = saved.get(column)
        if remembered in FIELDS or remembered == IGNORE:
            result[column] = remembered
            if remembered != IGNORE:
                taken.add(remembered)  # type: ignore[arg-type]
    for column in columns:
        if column in result:
            continue
        guess = field_for(column)
        if guess is not None and guess not in taken:
            result[column] = guess
            taken.add(guess)
        else:
            result[column] = None
    return result


def clean_mapping(mapping: dict[str, str | None], columns: Iterable[str]) -> dict[str, str | None]:
    """A mapping edited by a person, made consistent: unknown fields dropped, each field on its first column."""
    out: dict[str, str | None] = {}
    taken: set[str] = set()
    for column in columns:
        value = mapping.get(column)
        if value in (None, "", "none"):
            out[column] = None
        elif value == IGNORE:
            out[column] = IGNORE
        elif value in FIELDS and value not in taken:
            out[column] = value
            taken.add(value)
        else:
            out[column] = None
    return out


def is_activity_mapping(mapping: dict[str, str | None]) -> bool:
    """A file whose rows are things people did (an attendance list, email clicks), not a list of people."""
    fields = set(mapping.values())
    return bool(fields & {"activity", "duration"})
