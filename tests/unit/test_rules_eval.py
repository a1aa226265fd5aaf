"""The SQL compiler and the Python predicate agree on generated leads and rules (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.rules import check, lead_facts, matching_lead_ids, parse, predicate, to_sql
from db.models import Channel, Group, GroupMember, Lead, LeadTag, Tag, Touchpoint

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WORDS = ["总监", "经理", "VP", "vp", "Cto", "制造业", "金融", "上海", "a_b", "50%", "", " ", "x"]
TAGS = ["竞品客户", "高意向", "VIP"]
GROUPS = ["直播观众", "Newsletter"]
KINDS = ["webinar_attended", "email_open", "pricing_view"]
TEXT_FIELDS = ["title", "industry", "province", "source_channel"]
NUMBER_FIELDS = ["company_size", "fit", "engagement", "score", "days_since_last_activity"]

text_value = st.sampled_from(WORDS)
number_value = st.one_of(st.integers(-5, 250), st.sampled_from([0.5, 29.5, 30, 60, 200]))


def _comparison() -> st.SearchStrategy[dict]:
    text_cmp = st.builds(lambda f, op, v: {"cmp": op, "left": {"field": f}, "right": v},
                         st.sampled_from(TEXT_FIELDS),
                         st.sampled_from(["=", "!=", "contains", "starts_with", "ends_with"]), text_value)
    text_in = st.builds(lambda f, vs: {"cmp": "in", "left": {"field": f}, "right": vs},
                        st.sampled_from(TEXT_FIELDS), st.lists(text_value, min_size=1, max_size=3))
    empty = st.builds(lambda f: {"cmp": "empty", "left": {"field": f}, "right": None},
                      st.sampled_from(TEXT_FIELDS + NUMBER_FIELDS))
    number_cmp = st.builds(lambda f, op, v: {"cmp": op, "left": {"field": f}, "right": v},
                           st.sampled_from(NUMBER_FIELDS), st.sampled_from(["=", "!=", ">", ">=", "<", "<="]),
                           number_value)
    number_in = st.builds(lambda f, vs: {"cmp": "in", "left": {"field": f}, "right": vs},
                          st.sampled_from(NUMBER_FIELDS), st.lists(st.integers(0, 40), min_size=1, max_size=3))
    flag = st.builds(lambda v, op: {"cmp": op, "left": {"field": "is_customer"}, "right": v}, st.booleans(),
                     st.sampled_from(["=", "!="]))
    count = st.builds(lambda k, d, op, v: {"cmp": op, "left": {"fn": "count", "args": [k, d]}, "right": v},
                      st.sampled_from([*KINDS, "*"]), st.sampled_from([None, 7, 30, 90]),
                      st.sampled_from(["=", "!=", ">", ">=", "<", "<="]), st.integers(0, 3))
    grade = st.builds(lambda op, vs: {"cmp": "in", "left": {"field": "grade"}, "right": vs} if op == "in" else
                      {"cmp": op, "left": {"field": "grade"}, "right": vs[0]}, st.sampled_from(["in", "=", "!="]),
                      st.lists(st.sampled_from(["A", "b", "C", "d"]), min_size=1, max_size=2))
    tag = st.builds(lambda t: {"fn": "has_tag", "args": [t]}, st.sampled_from([*TAGS, "vip", "无"]))
    group = st.builds(lambda g: {"fn": "in_group", "args": [g]}, st.sampled_from([*GROUPS, "newsletter"]))
    return st.one_of(text_cmp, text_in, empty, number_cmp, number_in, flag, count, grade, tag, group)


rules = st.recursive(
    _comparison(),
    lambda children: st.one_of(
        st.builds(lambda xs: {"and": xs}, st.lists(children, min_size=2, max_size=3)),
        st.builds(lambda xs: {"or": xs}, st.lists(children, min_size=2, max_size=3)),
        st.builds(lambda x: {"not": x}, children),
    ),
    max_leaves=6,
)

leads = st.lists(st.fixed_dictionaries({
    "title": st.one_of(st.none(), text_value, st.sampled_from(["市场总监", "VP Sales", "采购经理", "CTO"])),
    "industry": st.one_of(st.none(), text_value),
    "province": st.one_of(st.none(), st.sampled_from(["上海", "北京", ""])),
    "grade": st.one_of(st.none(), st.sampled_from(["A", "B", "C", "D"])),
    "company_size": st.one_of(st.none(), st.integers(0, 300)),
    "fit_score": st.sampled_from([0.0, 20.0, 30.0, 60.0, 29.5]),
    "engagement_score": st.sampled_from([0.0, 15.0, 60.0, 0.5]),
    "is_customer": st.booleans(),
    "idle_seconds": st.one_of(st.none(), st.integers(-86_400, 100 * 86_400)),
    "channel": st.one_of(st.none(), st.sampled_from(["线下研讨会", "Webinar", "wechat"])),
    "tags": st.lists(st.sampled_from(TAGS), max_size=2, unique=True),
    "groups": st.lists(st.sampled_from(GROUPS), max_size=2, unique=True),
    "touchpoints": st.lists(st.tuples(st.sampled_from(KINDS), st.integers(-2 * 86_400, 120 * 86_400)),
                            max_size=4),
}), min_size=1, max_size=6)


def _insert(session, population: list[dict]) -> list[int]:  # noqa: ANN001
    tags = {name: session.scalar(select(Tag.id).where(Tag.name == name)) for name in TAGS}
    groups = {name: session.scalar(select(Group.id).where(Group.name == name)) for name in GROUPS}
    channels = {name: session.scalar(select(Channel.id).where(Channel.name == name))
                for name in ["线下研讨会", "Webinar", "wechat"]}
    ids = []
    for n, item in enumerate(population):
        idle = item["idle_seconds"]
        lead = Lead(title=item["title"], industry=item["industry"], province=item["province"], grade=item["grade"],
                    company_size=item["company_size"], fit_score=item["fit_score"],
                    engagement_score=item["engagement_score"], is_customer=item["is_customer"],
                    last_activity_at=None if idle is None else NOW - timedelta(seconds=idle),
                    source_channel_id=channels[item["channel"]] if item["channel"] else None)
        session.add(lead)
        session.flush()
        ids.append(lead.id)
        for name in item["tags"]:
            session.add(LeadTag(lead_id=lead.id, tag_id=tags[name]))
        for name in item["groups"]:
            session.add(GroupMember(group_id=groups[name], lead_id=lead.id))
        for m, (kind, ago) in enumerate(item["touchpoints"]):
            session.add(Touchpoint(lead_id=lead.id, kind=kind, occurred_at=NOW - timedelta(seconds=ago),
                                   natural_key=f"{lead.id}-{n}-{m}-{ago}"))
    session.flush()
    return ids


def _setup(session) -> None:  # noqa: ANN001
    for name in TAGS:
        session.add(Tag(name=name))
    for name in GROUPS:
        session.add(Group(name=name))
    for name in ["线下研讨会", "Webinar", "wechat"]:
        session.add(Channel(name=name))
    session.commit()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(rule=rules, population=leads)
def test_sql_and_python_agree(session, rule, population) -> None:  # noqa: ANN001
    if session.scalar(select(Tag.id).limit(1)) is None:
        _setup(session)
    check(rule)
    transaction = session.begin_nested()
    try:
        ids = _insert(session, population)
        in_sql = set(session.scalars(select(Lead.id).where(to_sql(rule, now=NOW), Lead.id.in_(ids))))
        per_lead = set(session.scalars(select(Lead.id).where(to_sql(rule, now=NOW, per_lead=True),
                                                             Lead.id.in_(ids))))
        assert per_lead == in_sql, rule
        facts = lead_facts(session=session, lead_ids=ids, now=NOW)
        test = predicate(rule, now=NOW)
        in_python = {lead_id for lead_id in ids if test(facts[lead_id])}
        assert in_sql == in_python, rule
    finally:
        transaction.rollback()


def test_text_rules_agree_on_a_fixed_population(session) -> None:  # noqa: ANN001
    _setup(session)
    ids = _insert(session, [
        {"title": "市场总监", "industry": "制造业", "province": "上海", "grade": "A", "company_size": 500,
         "fit_score": 60, "engagement_score": 70, "is_customer": False, "idle_seconds": 3 * 86_400,
         "channel": "Webinar", "tags": ["竞品客户"], "groups": [], "touchpoints": [("webinar_attended", 86_400)] * 2},
        {"title": "实习生", "industry": None, "province": None, "grade": "D", "company_size": None, "fit_score": 0,
         "engagement_score": 0, "is_customer": True, "idle_seconds": None, "channel": None, "tags": [],
         "groups": ["直播观众"], "touchpoints": []},
    ])
    session.commit()
    for text, expected in [
        ('职位 包含 "总监" 且 公司规模 >= 200', {ids[0]}),
        ("count(webinar_attended, 90d) >= 2", {ids[0]}),
        ('has_tag("竞品客户")', {ids[0]}),
        ('in_group("直播观众")', {ids[1]}),
        ("company_size is empty", {ids[1]}),
        ('industry != "制造业"', {ids[1]}),
        ('grade in ("a", "b") and engagement >= 60', {ids[0]}),
        ("days_since_last_activity >= 3", {ids[0]}),
        ('source_channel = "webinar"', {ids[0]}),
        ('title contains "%"', set()),
    ]:
        ast = parse(text)
        assert matching_lead_ids(text, session=session, now=NOW) == expected, text
        facts = lead_facts(session=session, lead_ids=ids, now=NOW)
        assert {i for i in ids if predicate(ast, now=NOW)(facts[i])} == expected, text
