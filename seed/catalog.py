"""What the demo world is made of: names, places, industries, channels, campaigns, rules and workflows.

Plain data only; ``seed.demo`` and its helpers turn it into rows. Weights are relative frequencies.
"""

from __future__ import annotations

import copy
from typing import Any

from core.workflows import templates

# ---------------------------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------------------------
# Surnames with their approximate share of the population (percent).
SURNAMES: list[tuple[str, float]] = [
    ("王", 7.1), ("李", 7.0), ("张", 6.8), ("刘", 5.4), ("陈", 4.6), ("杨", 3.1), ("黄", 2.3), ("赵", 2.3),
    ("吴", 2.0), ("周", 1.9), ("徐", 1.6), ("孙", 1.5), ("马", 1.5), ("朱", 1.3), ("胡", 1.3), ("郭", 1.2),
    ("何", 1.2), ("高", 1.1), ("林", 1.1), ("罗", 0.9), ("郑", 0.9), ("梁", 0.9), ("谢", 0.8), ("宋", 0.8),
    ("唐", 0.8), ("许", 0.7), ("韩", 0.7), ("冯", 0.7), ("邓", 0.7), ("曹", 0.7), ("彭", 0.6), ("曾", 0.6),
    ("肖", 0.6), ("田", 0.6), ("董", 0.6), ("袁", 0.5), ("潘", 0.5), ("于", 0.5), ("蒋", 0.5), ("蔡", 0.5),
    ("余", 0.5), ("杜", 0.5), ("叶", 0.5), ("程", 0.5), ("苏", 0.4), ("魏", 0.4), ("吕", 0.4), ("丁", 0.4),
    ("任", 0.4), ("沈", 0.4), ("姚", 0.4), ("卢", 0.4), ("姜", 0.4), ("崔", 0.3), ("钟", 0.3), ("谭", 0.3),
    ("陆", 0.3), ("汪", 0.3), ("范", 0.3), ("金", 0.3), ("石", 0.3), ("廖", 0.3), ("贾", 0.3), ("夏", 0.3),
    ("韦", 0.3), ("付", 0.3), ("方", 0.3), ("白", 0.3), ("邹", 0.3), ("孟", 0.2), ("熊", 0.2), ("秦", 0.2),
    ("邱", 0.2), ("江", 0.2), ("尹", 0.2), ("薛", 0.2), ("闫", 0.2), ("段", 0.2), ("雷", 0.2), ("侯", 0.2),
    ("龙", 0.2), ("史", 0.2), ("陶", 0.2), ("黎", 0.2), ("贺", 0.2), ("顾", 0.2), ("毛", 0.2), ("郝", 0.2),
    ("龚", 0.2), ("邵", 0.2), ("万", 0.2), ("钱", 0.2), ("严", 0.2), ("覃", 0.1), ("武", 0.1), ("戴", 0.1),
    ("莫", 0.1), ("孔", 0.1), ("向", 0.1), ("汤", 0.1), ("欧阳", 0.06), ("单", 0.05), ("司马", 0.02),
    ("诸葛", 0.01), ("上官", 0.01),
]
GIVEN_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红玉兰萍鹏辉飞鑫波斌宇浩凯健俊帆帅旭宁龙林欢阳丹琳晶颖倩"
    "婷雪慧莹璐晨子轩涵梓一诺欣怡雨泽思博文佳琪嘉瑞睿晓海云峰毅天翔宏亮成兵新东清春秋梅燕蕾薇悦彤然远航振荣立楠昊宸锦铭"
)
ENGLISH_FIRST_NAMES = (
    "Kevin Jason Eric Tony Jack David Michael Peter Frank Leo Vincent Andy Alex Steven Ryan Henry Allen Sam Tom "
    "Ben Amy Linda Lisa Grace Cindy Helen Vivian Emma Anna Sophia Iris Joyce Wendy Sunny Coco Echo Jenny Rita "
    "Nina Tina Ella Lily"
).split()
WESTERN_LAST_NAMES = (
    "Smith Johnson Brown Miller Wilson Taylor Anderson Müller Schmidt Martin Dubois Rossi Tanaka Sato Kim Park "
    "Lee Wong Chan Ng"
).split()
WECHAT_NICKNAMES = (
    "小王 阿杰 晴天 Amy 大雄 木子 一路向北 Sunny 老张 小鱼 追风 Coco 清风徐来 浅笑 Leo 星辰 小马哥 静静 Kevin 阿飞 "
    "向日葵 Echo 简单 稻草人"
).split()

# Job titles: (title, weight, seniority 0 = staff, 1 = manager, 2 = decision maker)
TITLES_ZH: list[tuple[str, float, int]] = [
    ("CEO", 1.0, 2), ("总经理", 2.0, 2), ("CTO", 2.0, 2), ("CIO", 1.5, 2), ("VP", 2.0, 2), ("市场总监", 4.0, 2),
    ("销售总监", 3.0, 2), ("IT总监", 3.0, 2), ("运营总监", 2.0, 2), ("数字化转型负责人", 2.0, 2),
    ("IT负责人", 4.0, 1), ("市场经理", 7.0, 1), ("产品经理", 5.0, 1), ("项目经理", 5.0, 1), ("采购经理", 4.0, 1),
    ("IT经理", 5.0, 1), ("运营经理", 4.0, 1), ("客服经理", 3.0, 1), ("销售经理", 5.0, 1),
    ("数据分析师", 4.0, 0), ("工程师", 6.0, 0), ("软件工程师", 4.0, 0), ("市场专员", 7.0, 0), ("运营专员", 5.0, 0),
    ("销售代表", 3.0, 0), ("助理", 3.0, 0), ("行政", 2.0, 0), ("学生", 1.0, 0),
]
TITLES_EN: list[tuple[str, float, int]] = [
    ("Marketing Director", 3.0, 2), ("VP of Sales", 2.0, 2), ("CTO", 2.0, 2), ("IT Manager", 4.0, 1),
    ("Procurement Manager", 3.0, 1), ("Product Manager", 3.0, 1), ("Software Engineer", 4.0, 0),
    ("Marketing Specialist", 4.0, 0), ("Data Analyst", 2.0, 0),
]

# ---------------------------------------------------------------------------------------------------------------
# Places: (province, city, weight, landline area code)
# ---------------------------------------------------------------------------------------------------------------
PLACES: list[tuple[str, str, float, str]] = [
    ("上海", "上海", 14, "021"), ("北京", "北京", 12, "010"), ("广东", "深圳", 9, "0755"), ("广东", "广州", 6, "020"),
    ("浙江", "杭州", 7, "0571"), ("浙江", "宁波", 2, "0574"), ("江苏", "南京", 5, "025"), ("江苏", "苏州", 5, "0512"),
    ("江苏", "无锡", 2, "0510"), ("四川", "成都", 4, "028"), ("湖北", "武汉", 3.5, "027"), ("山东", "济南", 2, "0531"),
    ("山东", "青岛", 2.5, "0532"), ("天津", "天津", 2.5, "022"), ("河北", "石家庄", 1.5, "0311"),
    ("福建", "厦门", 2, "0592"), ("福建", "福州", 1.5, "0591"), ("陕西", "西安", 2.5, "029"), ("重庆", "重庆", 2.5, "023"),
    ("安徽", "合肥", 2, "0551"), ("湖南", "长沙", 2.5, "0731"), ("河南", "郑州", 2, "0371"), ("辽宁", "大连", 1.5, "0411"),
    ("辽宁", "沈阳", 1.5, "024"), ("广东", "东莞", 1.5, "0769"), ("广东", "佛山", 1.5, "0757"),
]
CITY_PINYIN = {
    "上海": "Shanghai", "北京": "Beijing", "深圳": "Shenzhen", "广州": "Guangzhou", "杭州": "Hangzhou",
    "宁波": "Ningbo", "南京": "Nanjing", "苏州": "Suzhou", "无锡": "Wuxi", "成都": "Chengdu", "武汉": "Wuhan",
    "济南": "Jinan", "青岛": "Qingdao", "天津": "Tianjin", "石家庄": "Shijiazhuang", "厦门": "Xiamen",
    "福州": "Fuzhou", "西安": "Xian", "重庆": "Chongqing", "合肥": "Hefei", "长沙": "Changsha", "郑州": "Zhengzhou",
    "大连": "Dalian", "沈阳": "Shenyang", "东莞": "Dongguan", "佛山": "Foshan",
}

# ---------------------------------------------------------------------------------------------------------------
# Companies
# ---------------------------------------------------------------------------------------------------------------
# industry: (weight, typical headcount median, [(business word, English word, domain hint)])
INDUSTRIES: dict[str, tuple[float, int, list[tuple[str, str, str]]]] = {
    "制造业": (26, 600, [("智能制造", "Intelligent Manufacturing", "im"), ("精密机械", "Precision Machinery", "pm"),
                        ("电子科技", "Electronics", "elec"), ("汽车零部件", "Auto Parts", "auto"),
                        ("新材料", "New Materials", "nm"), ("工业自动化", "Industrial Automation", "ia")]),
    "教育": (8, 150, [("教育科技", "EdTech", "edu"), ("在线教育", "Online Education", "online"),
                     ("职业培训", "Vocational Training", "train")]),
    "金融": (10, 900, [("金融服务", "Financial Services", "fin"), ("融资租赁", "Financial Leasing", "lease"),
                      ("保险经纪", "Insurance Brokerage", "ins"), ("投资管理", "Investment Management", "inv"),
                      ("支付科技", "Payment Technology", "pay")]),
    "零售": (12, 300, [("商贸", "Trading", "trade"), ("连锁商业", "Retail Chain", "retail"),
                      ("电子商务", "E-commerce", "ec"), ("食品", "Foods", "food"), ("服饰", "Apparel", "wear")]),
    "医疗": (9, 400, [("医疗器械", "Medical Devices", "med"), ("生物科技", "Biotech", "bio"),
                      ("医药", "Pharmaceutical", "pharma"), ("健康科技", "Health Tech", "health")]),
    "互联网": (18, 250, [("信息科技", "Info Tech", "tech"), ("网络科技", "Network Technology", "net"),
                        ("软件", "Software", "soft"), ("数据科技", "Data Technology", "data"),
                        ("智能科技", "AI Technology", "ai"), ("云计算", "Cloud Computing", "cloud")]),
    "物流": (9, 350, [("物流", "Logistics", "log"), ("供应链管理", "Supply Chain Management", "scm"),
                      ("国际货运代理", "Freight Forwarding", "freight"), ("冷链物流", "Cold Chain Logistics", "cold")]),
    "能源": (8, 700, [("新能源", "New Energy", "energy"), ("电力工程", "Power Engineering", "power"),
                      ("光伏科技", "Solar Technology", "solar"), ("储能技术", "Energy Storage", "ess"),
                      ("环保科技", "Environmental Technology", "env")]),
}
BRAND_CHARS = (
    "云杉星河华信博远启明恒通创新达瑞泰嘉盛宏鼎峰晨光天宇海纳中科金安联合汇智睿卓越正源弘毅鸿蓝图长风宁德阳丰凯旭东方银川"
    "慧诚鑫隆舜禾润青松磐石骏驰易迅优品美家乐康和众力微聚数致领航佳乾坤荣耀"
)
LEGAL_SUFFIXES: list[tuple[str, float]] = [
    ("有限公司", 60), ("股份有限公司", 20), ("集团有限公司", 8), ("有限责任公司", 12),
]
TARGET_LISTS = ["2026 重点客户", "制造业标杆客户", "华东 ABM"]
PERSONAL_EMAIL_DOMAINS: list[tuple[str, float]] = [
    ("qq.com", 20), ("163.com", 10), ("126.com", 3), ("sina.com", 2), ("gmail.com", 5), ("outlook.com", 5),
]
DISPOSABLE_DOMAINS = ["mailinator.com", "10minutemail.com", "guerrillamail.com", "yopmail.com"]
TEST_PHONES = ["13800000000", "13888888888", "13900000000", "13111111111"]
PRODUCT_LINES = ["营销云", "数据平台", "客服系统"]

# ---------------------------------------------------------------------------------------------------------------
# Team (ids follow this order; the database is empty when the seed runs)
# ---------------------------------------------------------------------------------------------------------------
DEMO_PASSWORD = "demo1234"
USERS: list[dict[str, Any]] = [
    {"username": "admin", "display_name": "管理员", "role": "admin"},
    {"username": "marketer", "display_name": "李娜", "role": "marketer", "employee_code": "E001"},
    {"username": "manager", "display_name": "王强", "role": "manager", "employee_code": "E002"},
    {"username": "sales1", "display_name": "张伟", "role": "sales", "employee_code": "E003",
     "territories": ["上海", "江苏", "浙江"], "industries": ["制造业"]},
    {"username": "sales2", "display_name": "刘洋", "role": "sales", "employee_code": "E004",
     "territories": ["北京", "天津", "河北"]},
    {"username": "sales3", "display_name": "陈静", "role": "sales", "employee_code": "E005",
     "territories": ["广东", "深圳"], "product_lines": ["数据平台"]},
    {"username": "sales4", "display_name": "Kevin Zhou", "role": "sales", "employee_code": "E006", "language": "en"},
]
ADMIN_ID, MARKETER_ID, MANAGER_ID = 1, 2, 3
REP_IDS = [4, 5, 6, 7]

# ---------------------------------------------------------------------------------------------------------------
# Channels and campaigns
# ---------------------------------------------------------------------------------------------------------------
# name, kind, share of new leads, how strongly its leads convert (demo requests best, fission campaigns least),
# monthly cost range in yuan for an always-on campaign (events: per event)
CHANNELS: list[dict[str, Any]] = [
    {"name": "官网表单", "kind": "website", "share": 17, "convert": 1.3, "cost": (12_000, 25_000),
     "description": "官网试用、演示预约和白皮书下载表单"},
    {"name": "微信公众号", "kind": "wechat", "share": 14, "convert": 0.5, "cost": (8_000, 15_000),
     "description": "公众号关注、菜单注册和文章引流"},
    {"name": "直播", "kind": "livestream", "share": 10, "convert": 0.7, "cost": (15_000, 30_000),
     "description": "视频号/官网直播公开课与新品发布"},
    {"name": "展会", "kind": "tradeshow", "share": 11, "convert": 0.9, "cost": (250_000, 450_000),
     "description": "行业展会展位扫码"},
    {"name": "邮件营销", "kind": "email", "share": 7, "convert": 0.8, "cost": (4_000, 8_000),
     "description": "EDM 月度通讯与产品邮件"},
    {"name": "SEM", "kind": "sem", "share": 15, "convert": 1.0, "cost": (80_000, 150_000),
     "description": "百度、360 搜索推广"},
    {"name": "员工推荐", "kind": "referral", "share": 5, "convert": 1.8, "cost": (3_000, 8_000),
     "description": "员工专属推荐码，成交后发放推荐奖励"},
    {"name": "裂变活动", "kind": "social", "share": 9, "convert": 0.35, "cost": (15_000, 30_000),
     "description": "邀请好友领资料包、拼团试用"},
    {"name": "线下研讨会", "kind": "event", "share": 12, "convert": 0.9, "cost": (60_000, 120_000),
     "description": "城市站行业沙龙与闭门研讨会"},
]
CHANNEL_IMPORT_MAPPINGS: dict[str, dict[str, str]] = {
    "展会": {"姓名": "name", "手机": "phone", "公司": "company", "职务": "title", "邮箱": "email", "扫码时间": "occurred_at"},
    "线下研讨会": {"姓名": "name", "手机号码": "phone", "单位": "company", "职位": "title", "邮箱": "email",
                 "签到时间": "occurred_at"},
    "直播": {"昵称": "name", "手机号": "phone", "公司名称": "company", "观看时长(分钟)": "minutes"},
}

# Campaign schedules (days relative to today, negative = past):
#   always            the whole year, ongoing
#   period (a, b)     runs from day a to day b
#   events [(day, length)]   one or more events of `length` days (tradeshows, seminars, launches)
#   weekly (weekday, a, b)   a weekly session (livestream series, newsletters), Monday = 0
# first: the kind of the first touch for a lead this campaign brings in.
CAMPAIGNS: list[dict[str, Any]] = [
    # 官网表单
    {"channel": "官网表单", "name": "官网-免费试用", "product_line": "营销云", "code": "WEB-TRIAL", "weight": 5,
     "utm": ("website", "form", "free_trial"), "schedule": ("always",), "first": "form_submit"},
    {"channel": "官网表单", "name": "官网-产品演示预约", "product_line": "数据平台", "code": "WEB-DEMO", "weight": 3,
     "utm": ("website", "form", "book_demo"), "schedule": ("always",), "first": "demo_request", "convert": 2.6},
    {"channel": "官网表单", "name": "官网-白皮书下载", "product_line": "营销云", "code": "WEB-WP", "weight": 4,
     "utm": ("website", "content", "whitepaper_2026"), "schedule": ("always",), "first": "whitepaper_download"},
    # 微信公众号
    {"channel": "微信公众号", "name": "公众号-关注有礼", "product_line": "营销云", "code": "WX-FOLLOW", "weight": 6,
     "utm": ("wechat", "social", "follow_gift"), "schedule": ("always",), "first": "wechat_follow"},
    {"channel": "微信公众号", "name": "公众号-行业报告推送", "product_line": "数据平台", "code": "WX-REPORT", "weight": 3,
     "utm": ("wechat", "social", "industry_report"), "schedule": ("period", -240, 30), "first": "wechat_follow"},
    # 直播
    {"channel": "直播", "name": "直播-数字化营销公开课", "product_line": "营销云", "code": "LIVE-CLASS", "weight": 5,
     "utm": ("shipinhao", "livestream", "weekly_class"), "schedule": ("weekly", 3, -350, 60), "first": "livestream_view"},
    {"channel": "直播", "name": "直播-数据平台新品发布会", "product_line": "数据平台", "code": "LIVE-LAUNCH",
     "weight": 3, "utm": ("shipinhao", "livestream", "dp_launch"), "schedule": ("events", [(-150, 1)]),
     "first": "livestream_view"},
    {"channel": "直播", "name": "直播-智能客服实战", "product_line": "客服系统", "code": "LIVE-CS", "weight": 2,
     "utm": ("shipinhao", "livestream", "cs_practice"), "schedule": ("events", [(-260, 1), (-75, 1), (-18, 1)]),
     "first": "livestream_view"},
    # 展会
    {"channel": "展会", "name": "2026 中国国际工业博览会", "product_line": "营销云", "code": "TS-CIIF", "weight": 4,
     "utm": ("tradeshow", "offline", "ciif_2026"), "schedule": ("events", [(-12, 3)]), "first": "tradeshow_scan"},
    {"channel": "展会", "name": "世界人工智能大会 WAIC", "product_line": "数据平台", "code": "TS-WAIC", "weight": 3,
     "utm": ("tradeshow", "offline", "waic"), "schedule": ("events", [(-130, 3)]), "first": "tradeshow_scan"},
    {"channel": "展会", "name": "数字中国建设峰会", "product_line": "客服系统", "code": "TS-DCS", "weight": 2,
     "utm": ("tradeshow", "offline", "digital_china"), "schedule": ("events", [(-210, 2)]), "first": "tradeshow_scan"},
    {"channel": "展会", "name": "中国零售数字化大会", "product_line": "营销云", "code": "TS-RETAIL", "weight": 2,
     "utm": ("tradeshow", "offline", "retail_summit"), "schedule": ("events", [(-300, 2), (45, 2)]),
     "first": "tradeshow_scan"},
    # 邮件营销
    {"channel": "邮件营销", "name": "EDM-月度产品通讯", "product_line": "营销云", "code": "EDM-NEWS", "weight": 5,
     "utm": ("edm", "email", "newsletter"), "schedule": ("weekly", 1, -364, 90), "first": "email_click"},
    {"channel": "邮件营销", "name": "EDM-数据平台新品推荐", "product_line": "数据平台", "code": "EDM-DP", "weight": 2,
     "utm": ("edm", "email", "dp_promo"), "schedule": ("weekly", 3, -160, -100), "first": "email_click"},
    # SEM
    {"channel": "SEM", "name": "百度SEM-品牌词", "product_line": "营销云", "code": "SEM-BRAND", "weight": 4,
     "utm": ("baidu", "cpc", "brand"), "schedule": ("always",), "first": "sem_click"},
    {"channel": "SEM", "name": "百度SEM-竞品词", "product_line": "营销云", "code": "SEM-COMP", "weight": 3,
     "utm": ("baidu", "cpc", "competitor"), "schedule": ("always",), "first": "sem_click"},
    {"channel": "SEM", "name": "360搜索-行业词", "product_line": "客服系统", "code": "SEM-360", "weight": 2,
     "utm": ("so360", "cpc", "industry"), "schedule": ("period", -200, 0), "first": "sem_click"},
    # 员工推荐
    {"channel": "员工推荐", "name": "员工推荐计划 2026", "product_line": None, "code": "REF-2026", "weight": 1,
     "utm": ("referral", "employee", "referral_2026"), "schedule": ("always",), "first": "referral"},
    {"channel": "员工推荐", "name": "老客户转介绍", "product_line": "营销云", "code": "REF-CUST", "weight": 1,
     "utm": ("referral", "customer", "customer_referral"), "schedule": ("period", -180, 60), "first": "referral"},
    # 裂变活动
    {"channel": "裂变活动", "name": "邀请好友领资料包", "product_line": "营销云", "code": "VIRAL-PACK", "weight": 3,
     "utm": ("wechat", "viral", "resource_pack"), "schedule": ("period", -330, -60), "first": "registered"},
    {"channel": "裂变活动", "name": "拼团免费试用", "product_line": "客服系统", "code": "VIRAL-GROUP", "weight": 2,
     "utm": ("wechat", "viral", "group_trial"), "schedule": ("period", -90, 30), "first": "registered"},
    # 线下研讨会
    {"channel": "线下研讨会", "name": "上海站-制造业数字化沙龙", "product_line": "营销云", "code": "EV-SH", "weight": 3,
     "utm": ("event", "offline", "sh_salon"), "schedule": ("events", [(-320, 1), (-180, 1), (-3, 1)]),
     "first": "event_attended"},
    {"channel": "线下研讨会", "name": "北京站-金融数据治理研讨会", "product_line": "数据平台", "code": "EV-BJ",
     "weight": 3, "utm": ("event", "offline", "bj_seminar"), "schedule": ("events", [(-250, 1), (-100, 1)]),
     "first": "event_attended"},
    {"channel": "线下研讨会", "name": "深圳站-零售增长闭门会", "product_line": "客服系统", "code": "EV-SZ",
     "weight": 2, "utm": ("event", "offline", "sz_roundtable"), "schedule": ("events", [(-200, 1), (-40, 1)]),
     "first": "event_attended"},
]

# Local hours at which each kind of session takes place.
SESSION_HOURS = {"livestream": (19, 21), "tradeshow": (9, 17), "event": (13, 17), "email": (10, 10)}

# ---------------------------------------------------------------------------------------------------------------
# Tags, groups, rules
# ---------------------------------------------------------------------------------------------------------------
TAGS: list[tuple[str, str, str]] = [
    ("竞品客户", "#d62728", "正在使用竞品的客户"),
    ("高意向", "#ff7f0e", "近期多次参会或预约演示"),
    ("已参会", "#2ca02c", "参加过线下活动或直播研讨会"),
    ("未完善信息粉丝", "#9467bd", "关注公众号但未留手机号"),
    ("决策人", "#1f77b4", "总监及以上职位"),
    ("老客户", "#8c564b", "所在公司已是客户"),
    ("价格敏感", "#e377c2", "因价格输单或多次询价"),
]
GROUPS: list[tuple[str, str]] = [
    ("未完善信息粉丝", "关注公众号但未完善信息的粉丝，进入召回流程"),
    ("沉睡粉丝", "两次召回未响应"),
    ("深度沉睡粉丝", "沉睡 30 天后仍未响应"),
    ("直播观众", "看过任意一场直播"),
    ("Newsletter", "订阅了月度产品通讯"),
]

# (kind, name, text, points, params)
RULES: list[tuple[str, str, str, float, dict[str, Any]]] = [
    ("fit", "决策层职位", 'title contains "总监" or title contains "VP" or title contains "CTO"', 20, {}),
    ("fit", "重点行业", 'industry in ("制造业", "金融", "医疗")', 15, {}),
    ("fit", "大型企业（500 人以上）", "company_size >= 500", 20, {}),
    ("fit", "中型企业（100–499 人）", "company_size >= 100 and company_size < 500", 10, {}),
    ("fit", "重点区域", 'province in ("上海", "北京", "广东", "江苏", "浙江")', 5, {}),
    ("engagement", "参加直播研讨会", 'kind = "webinar_attended"', 15,
     {"touchpoint_kind": "webinar_attended", "cap": 45, "period_days": 90}),
    ("engagement", "观看直播", 'kind = "livestream_view"', 8,
     {"touchpoint_kind": "livestream_view", "cap": 24, "period_days": 30}),
    ("engagement", "展会扫码", 'kind = "tradeshow_scan"', 10,
     {"touchpoint_kind": "tradeshow_scan", "cap": 20, "period_days": 90}),
    ("engagement", "参加线下活动", 'kind = "event_attended"', 15,
     {"touchpoint_kind": "event_attended", "cap": 30, "period_days": 90}),
    ("engagement", "下载白皮书", 'kind = "whitepaper_download"', 10,
     {"touchpoint_kind": "whitepaper_download", "cap": 30, "period_days": 90}),
    ("engagement", "打开邮件", 'kind = "email_open"', 1, {"touchpoint_kind": "email_open", "cap": 10, "period_days": 30}),
    ("engagement", "点击邮件", 'kind = "email_click"', 3,
     {"touchpoint_kind": "email_click", "cap": 15, "period_days": 30}),
    ("engagement", "查看价格页", 'kind = "pricing_view"', 20,
     {"touchpoint_kind": "pricing_view", "cap": 40, "period_days": 30}),
    ("engagement", "预约演示", 'kind = "demo_request"', 30,
     {"touchpoint_kind": "demo_request", "cap": 60, "period_days": 30}),
    ("engagement", "提交表单", 'kind = "form_submit"', 10, {"touchpoint_kind": "form_submit", "cap": 20, "period_days": 90}),
    ("decay", "互动分衰减（半衰期 30 天）", "", 0, {"half_life_days": 30}),
    ("tag", "高意向：90 天内参会两次", "count(webinar_attended, 90d) >= 2", 0,
     {"tag": "高意向", "remove_when_false": False}),
    ("tag", "高意向：30 天内预约演示", "count(demo_request, 30d) >= 1", 0, {"tag": "高意向", "remove_when_false": False}),
    ("tag", "已参会", "count(event_attended, 365d) >= 1 or count(webinar_attended, 365d) >= 1", 0,
     {"tag": "已参会", "remove_when_false": False}),
    ("tag", "决策人", 'title contains "总监" or title contains "VP" or title contains "CTO" or title contains "CIO"', 0,
     {"tag": "决策人", "remove_when_false": True}),
    ("mql", "MQL 线", 'grade in ("A", "B") and engagement >= 60', 0, {}),
]
GRADE_BANDS = {"A": 60, "B": 40, "C": 20}

ROUTING_RULES: list[dict[str, Any]] = [
    {"name": "重点客户归属负责人", "kind": "account", "params": {}, "rep_ids": []},
    {"name": "华东区域", "kind": "territory", "params": {"provinces": ["上海", "江苏", "浙江"]}, "rep_ids": [4]},
    {"name": "制造业", "kind": "industry", "params": {"industries": ["制造业"]}, "rep_ids": [4]},
    {"name": "华北区域", "kind": "territory", "params": {"provinces": ["北京", "天津", "河北"]}, "rep_ids": [5]},
    {"name": "华南区域", "kind": "territory", "params": {"provinces": ["广东"]}, "rep_ids": [6]},
    {"name": "数据平台产品线", "kind": "product_line", "params": {"product_lines": ["数据平台"]}, "rep_ids": [6]},
    {"name": "其他：轮询", "kind": "round_robin", "params": {}, "rep_ids": [4, 5, 6, 7]},
]

# Reject reasons: code → (share, stage after the rejection, notes a rep would write)
REJECT_REASONS: dict[str, tuple[float, str, list[str]]] = {
    "cannot_reach": (25, "recycled", ["电话三次未接通，微信未通过", "留的手机号是空号，邮件无回复"]),
    "no_budget": (20, "recycled", ["今年无预算，明年 Q2 再联系", "预算被砍，项目暂停"]),
    "wrong_person": (15, "recycled", ["对接人是实习生，需找 IT 负责人", "联系人已离职，需重新找决策人"]),
    "not_now": (20, "recycled", ["项目推迟到下半年", "正在做年度规划，三个月后再跟进"]),
    "competitor": (10, "disqualified", ["已签约竞品，合同三年", "刚上线竞品系统，短期不会更换"]),
    "duplicate": (10, "disqualified", ["与已有线索重复，已在跟进", "同一公司同一项目，已有同事跟进"]),
}
REJECT_REASON_ZH = {
    "cannot_reach": "联系不上", "no_budget": "暂无预算", "wrong_person": "非决策人", "not_now": "时机未到",
    "competitor": "使用竞品", "duplicate": "重复线索",
}
LOST_REASONS = ["输单：价格", "输单：选择竞品", "输单：项目取消", "输单：内部自研"]
DISQUALIFY_NEW_REASONS = ["非目标客户：学生", "非目标客户：求职者", "非目标客户：个人用户", "非目标客户：同行调研"]

# ---------------------------------------------------------------------------------------------------------------
# Workflows, in core.workflows' definition format (see core/workflows/definition.py): actions name the next step,
# waits last ``days``, conditions check something and go "yes"/"no".
# ---------------------------------------------------------------------------------------------------------------
EMAIL_BODY = "{name} 您好：\n\n{company} 的同事也在关注这个话题，详情见正文。"
WECHAT_RECALL = copy.deepcopy(templates.WECHAT_RECALL)  # the demo runs the shipped template as is
EMAIL_NURTURE = {
    "start": "send_a",
    "steps": {
        "send_a": {"type": "send_email", "subject": "3 分钟看懂营销自动化：从线索到商机",
                   "template": "welcome",
                   "body": EMAIL_BODY, "next": "wait_3"},
        "wait_3": {"type": "wait", "days": 3, "next": "check_open"},
        "check_open": {"type": "condition", "check": {"kind": "opened"}, "yes": "send_b", "no": "send_c"},
        "send_b": {"type": "send_email", "subject": "案例：制造业客户如何把 MQL 转化率提升 40%", "template": "case_study",
                   "body": EMAIL_BODY,
                   "next": "end"},
        "send_c": {"type": "send_email", "subject": "免费领取《B2B 线索评分指南》", "template": "scoring_guide",
                   "body": EMAIL_BODY,
                   "next": "end"},
        "end": {"type": "end"},
    },
}
WEBINAR_SERIES = {
    "start": "invite_1",
    "steps": {
        "invite_1": {"type": "send_email", "subject": "本周四 19:30 直播：数字化营销公开课第 1 讲", "template": "webinar_1",
                   "body": EMAIL_BODY,
                     "next": "wait_7a"},
        "wait_7a": {"type": "wait", "days": 7, "next": "invite_2"},
        "invite_2": {"type": "send_email", "subject": "第 2 讲：用评分模型找到真正的高意向客户", "template": "webinar_2",
                   "body": EMAIL_BODY,
                     "next": "wait_7b"},
        "wait_7b": {"type": "wait", "days": 7, "next": "replay"},
        "replay": {"type": "send_email", "subject": "系列课回放和课件已准备好", "template": "webinar_replay",
                   "body": EMAIL_BODY, "next": "end"},
        "end": {"type": "end"},
    },
}
RENURTURE = {
    "start": "wait_30",
    "steps": {
        "wait_30": {"type": "wait", "days": 30, "next": "send_report"},
        "send_report": {"type": "send_email", "subject": "2026 行业数字化报告（附同行案例）", "template": "industry_report",
                   "body": EMAIL_BODY,
                        "next": "wait_14"},
        "wait_14": {"type": "wait", "days": 14, "next": "check_engaged"},
        "check_engaged": {"type": "condition", "check": {"kind": "clicked"}, "yes": "notify", "no": "end"},
        "notify": {"type": "notify", "to": "owner", "text": "退回的线索重新活跃，请再次评估", "next": "end"},
        "end": {"type": "end"},
    },
}
WORKFLOWS: list[dict[str, Any]] = [
    {"name": "微信粉丝召回（完善信息）", "status": "active", "definition": WECHAT_RECALL,
     "description": "关注公众号但未留手机号的粉丝：两次邀请完善信息，未响应则转入沉睡分组。",
     "trigger": {"type": "touchpoint", "kind": "wechat_follow"}},
    {"name": "新线索邮件培育", "status": "active", "definition": EMAIL_NURTURE,
     "description": "新线索欢迎邮件，按是否打开发送案例或指南。",
     "trigger": {"type": "imported", "channel": "官网表单"}},
    {"name": "直播系列课邀约", "status": "active", "definition": WEBINAR_SERIES,
     "description": "报名过直播的线索：三封系列课邀约与回放。",
     "trigger": {"type": "touchpoint", "kind": "webinar_registered"}},
    {"name": "退回线索再培育", "status": "draft", "definition": RENURTURE,
     "description": "销售以暂无预算/时机未到/联系不上退回的线索，30 天后重新培育。",
     "trigger": {"type": "rejected", "reasons": ["no_budget", "not_now", "cannot_reach"]}},
]

# ---------------------------------------------------------------------------------------------------------------
# How the demo's names read in English (core.display_names): the data is named in Chinese, as a Chinese team
# would name it; English readers see these labels instead.
# ---------------------------------------------------------------------------------------------------------------
ENGLISH_NAMES: dict[str, dict[str, str]] = {
    "channel": {
        "官网表单": "Website forms", "微信公众号": "WeChat official account", "直播": "Live streams",
        "展会": "Trade shows", "邮件营销": "Email marketing", "SEM": "SEM", "员工推荐": "Employee referrals",
        "裂变活动": "Viral campaigns", "线下研讨会": "Seminars",
    },
    "campaign": {
        "官网-免费试用": "Website – free trial", "官网-产品演示预约": "Website – book a demo",
        "官网-白皮书下载": "Website – whitepaper download", "公众号-关注有礼": "WeChat – follow gift",
        "公众号-行业报告推送": "WeChat – industry report push", "直播-数字化营销公开课": "Live – digital marketing class",
        "直播-数据平台新品发布会": "Live – data platform launch", "直播-智能客服实战": "Live – AI customer service in practice",
        "2026 中国国际工业博览会": "China International Industry Fair 2026",
        "世界人工智能大会 WAIC": "World AI Conference (WAIC)", "数字中国建设峰会": "Digital China Summit",
        "中国零售数字化大会": "China Retail Digitalization Conference", "EDM-月度产品通讯": "EDM – monthly newsletter",
        "EDM-数据平台新品推荐": "EDM – data platform promotion", "百度SEM-品牌词": "Baidu SEM – brand terms",
        "百度SEM-竞品词": "Baidu SEM – competitor terms", "360搜索-行业词": "360 Search – industry terms",
        "员工推荐计划 2026": "Employee referral programme 2026", "老客户转介绍": "Customer referrals",
        "邀请好友领资料包": "Invite friends for a resource pack", "拼团免费试用": "Group-buy free trial",
        "上海站-制造业数字化沙龙": "Shanghai – manufacturing digitalization salon",
        "北京站-金融数据治理研讨会": "Beijing – financial data governance seminar",
        "深圳站-零售增长闭门会": "Shenzhen – retail growth roundtable",
    },
    "tag": {
        "竞品客户": "Competitor customer", "高意向": "High intent", "已参会": "Attended an event",
        "未完善信息粉丝": "Follower without contact details", "决策人": "Decision maker", "老客户": "Existing customer",
        "价格敏感": "Price sensitive",
    },
    "group": {
        "未完善信息粉丝": "Followers without contact details", "沉睡粉丝": "Dormant followers",
        "深度沉睡粉丝": "Deeply dormant followers", "直播观众": "Live stream viewers", "Newsletter": "Newsletter",
        "新关注粉丝": "New followers",
    },
    "rule": {
        "决策层职位": "Decision-maker title", "重点行业": "Target industry", "大型企业（500 人以上）": "Large company (500+)",
        "中型企业（100–499 人）": "Mid-size company (100–499)", "重点区域": "Target region",
        "参加直播研讨会": "Attended a webinar", "观看直播": "Watched a live stream", "展会扫码": "Trade-show badge scan",
        "参加线下活动": "Attended an event", "下载白皮书": "Downloaded a whitepaper", "打开邮件": "Opened an email",
        "点击邮件": "Clicked an email", "查看价格页": "Viewed the pricing page", "预约演示": "Booked a demo",
        "提交表单": "Submitted a form", "互动分衰减（半衰期 30 天）": "Engagement decay (30-day half-life)",
        "高意向：90 天内参会两次": "High intent: two webinars in 90 days",
        "高意向：30 天内预约演示": "High intent: demo booked in 30 days", "已参会": "Attended an event",
        "决策人": "Decision maker", "MQL 线": "MQL line",
    },
    "workflow": {
        "微信粉丝召回（完善信息）": "WeChat follower recall (complete profile)", "新线索邮件培育": "New lead email nurture",
        "直播系列课邀约": "Live class series invitations", "退回线索再培育": "Re-nurture rejected leads",
        "直播系列课提醒": "Live class series reminders",
    },
    "routing_rule": {
        "重点客户归属负责人": "Key accounts to their owner", "华东区域": "East China", "制造业": "Manufacturing",
        "华北区域": "North China", "华南区域": "South China", "数据平台产品线": "Data platform product line",
        "其他：轮询": "Everyone else: round robin",
    },
    "product_line": {"营销云": "Marketing Cloud", "数据平台": "Data Platform", "客服系统": "Customer Service"},
    "target_list": {"2026 重点客户": "2026 key accounts", "制造业标杆客户": "Manufacturing flagships",
                    "华东 ABM": "East China ABM"},
}
