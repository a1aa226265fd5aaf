"""Lead search, the profile, the complete timeline and path analysis, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from core.errors import NotFound, PermissionDenied
from core.journeys import (
    channel_flows,
    lead_profile,
    path_sequences,
    sankey_figure,
    score_explanation,
    search_leads,
    search_terms,
    stage_durations,
    timeline,
    timeline_count,
    timeline_export,
    timeline_for_people,
)
from db.models import (
    Assignment,
    Campaign,
    Enrollment,
    Group,
    GroupMember,
    LeadTag,
    MergeRecord,
    Message,
    Rule,
    ScoreEvent,
    StageChange,
    StepRun,
    Tag,
    Touchpoint,
    Workflow,
)
from tests.unit.journey_data import NOW, add_leads, channel

PEOPLE = [
    {"name": "张伟", "company": "上海云杉科技有限公司", "phone": "138 0013 8000", "email": "zhang.wei@yunshan.cn",
     "title": "IT总监"},
    {"name": "李娜", "company": "北京星河数据有限公司", "phone": "139-1234-5678", "email": "lina@qq.com",
     "title": "市场经理"},
    {"name": "王芳", "company": "50%折扣贸易有限公司", "phone": "13700001111", "email": "wf_1@trade.com",
     "title": "采购专员"},
    {"name": "欧阳娜娜", "company": "深圳蓝海电子有限公司", "phone": "13600002222", "email": "oyn@lanhai.com",
     "title": "CEO"},
    {"name": "Wei Zhang", "company": "Acme Robotics Ltd.", "phone": "+1 415 555 0100", "email": "wei@acme.com",
     "title": "CTO"},
]


@pytest.fixture
def people(session: Session) -> list[int]:
    return add_leads(session, PEOPLE)


def names(frame) -> set[str]:  # noqa: ANN001
    return set(frame["name"])


SEARCHES = (
    ("张伟", {"张伟"}),
    ("zhangwei", {"张伟", "Wei Zhang"}),
    ("zhang wei", {"张伟", "Wei Zhang"}),
    ("ZhangWei", {"张伟", "Wei Zhang"}),
    ("ｚｈａｎｇｗｅｉ", {"张伟", "Wei Zhang"}),  # full-width letters from a Chinese input method
    ("oyn", {"欧阳娜娜"}),  # initials
    ("ouyang", {"欧阳娜娜"}),
    ("0013", {"张伟"}),
    ("138 0013 8000", {"张伟"}),
    ("138-0013-8000", {"张伟"}),
    ("+86 138 0013 8000", {"张伟"}),
    ("１３８００１３", {"张伟"}),  # full-width digits
    ("1234-5678", {"李娜"}),
    ("lina@qq.com", {"李娜"}),
    ("@lanhai", {"欧阳娜娜"}),
    ("云杉", {"张伟"}),
    ("星河数据", {"李娜"}),
    ("acme", {"Wei Zhang"}),
    ("415 555", {"Wei Zhang"}),
)


def test_search_finds_a_lead_by_what_people_remember(session, make_actor, people):
    # One database for all the queries (a fresh database per query would only slow the run).
    marketer = make_actor("marketer")
    found = {query: names(search_leads(session=session, actor=marketer, query=query)) for query, _ in SEARCHES}
    assert found == dict(SEARCHES)


def test_like_wildcards_in_the_query_are_literal(session, make_actor, people):
    marketer = make_actor("marketer")
    assert names(search_leads(session=session, actor=marketer, query="50%")) == {"王芳"}
    assert names(search_leads(session=session, actor=marketer, query="%")) == {"王芳"}
    assert names(search_leads(session=session, actor=marketer, query="wf_1")) == {"王芳"}
    assert search_leads(session=session, actor=marketer, query="_").shape[0] == 1
    assert search_leads(session=session, actor=marketer, query="\\").empty


def test_blank_query_finds_nothing_and_terms_are_normalized():
    assert search_terms("   ") == []
    assert search_terms("138 0013-8000") == ["13800138000"]
    assert search_terms("0086 138 0013 8000") == ["13800138000"]
    assert search_terms("Zhang  WEI") == ["zhang", "wei"]


def test_exact_name_comes_first(session, make_actor):
    add_leads(session, [{"name": "张伟明"}, {"name": "张伟"}, {"name": "小张伟"}])
    marketer = make_actor("marketer")
    found = search_leads(session=session, actor=marketer, query="张伟")
    assert list(found["name"])[0] == "张伟"
    assert len(found) == 3


def test_a_sales_rep_only_finds_their_own_leads(session, make_actor):
    rep = make_actor("sales", username="rep_a")
    other = make_actor("sales", username="rep_b")
    add_leads(session, [{"name": "张伟", "owner_id": rep.id}, {"name": "张伟", "company": "别家", "owner_id": other.id},
                        {"name": "张伟", "company": "没人跟"}])
    found = search_leads(session=session, actor=rep, query="张伟")
    assert len(found) == 1
    assert found.iloc[0]["owner"] == "rep_a"


def test_merged_leads_are_not_found_and_results_are_limited(session, make_actor):
    add_leads(session, [{"name": f"陈{i}号"} for i in range(12)] + [{"name": "陈旧", "status": "merged"}])
    marketer = make_actor("marketer")
    found = search_leads(session=session, actor=marketer, query="陈", limit=10)
    assert len(found) == 10 and found.attrs["more"] is True
    assert "陈旧" not in names(search_leads(session=session, actor=marketer, query="陈旧"))


def test_search_needs_the_journeys_permission(session, make_actor, people):
    # Every role has journeys; an unknown role has nothing.
    from core.auth import Actor

    with pytest.raises(PermissionDenied):
        search_leads(session=session, actor=Actor(id=999, username="x", role="guest"), query="张伟")


@pytest.fixture
def full_history(session: Session, make_actor):
    """One lead with an event of every kind, and a second lead merged into it."""
    rep = make_actor("sales", username="rep_zhou", display_name="周销售")
    marketer = make_actor("marketer")
    web = channel(session, "官网", "website")
    live = channel(session, "直播", "livestream")
    lead_id, gone_id = add_leads(session, [
        {"name": "张伟", "company": "云杉科技", "owner_id": rep.id, "source_channel_id": web, "stage": "sal"},
        {"name": "张伟(重复)", "status": "merged"},
    ])
    campaign = Campaign(name="秋季发布会直播", channel_id=live)
    workflow = Workflow(name="培育流程A")
    rule = Rule(name="出席直播 +20", kind="engagement", text="touchpoint webinar_attended", points=20)
    tag, group = Tag(name="高意向"), Group(name="2026 秋季")
    session.add_all([campaign, workflow, rule, tag, group])
    session.commit()
    session.add_all([
        LeadTag(lead_id=lead_id, tag_id=tag.id), GroupMember(group_id=group.id, lead_id=lead_id),
        Touchpoint(lead_id=lead_id, kind="webinar_attended", channel_id=live, campaign_id=campaign.id,
                   occurred_at=NOW - timedelta(days=10), properties={"minutes": 42}, natural_key="t1"),
        Touchpoint(lead_id=lead_id, kind="form_submit", channel_id=web, occurred_at=NOW - timedelta(days=20),
                   natural_key="t2"),
        ScoreEvent(lead_id=lead_id, component="engagement", rule_id=rule.id, points=20, reason="出席直播 42 分钟",
                   occurred_at=NOW - timedelta(days=10)),
        ScoreEvent(lead_id=lead_id, component="engagement", points=-5, kind="decay", reason="30 天无互动",
                   occurred_at=NOW - timedelta(days=2)),
        ScoreEvent(lead_id=lead_id, component="fit", points=30, kind="manual", reason="行业匹配",
                   occurred_at=NOW - timedelta(days=20)),
        StageChange(lead_id=lead_id, from_stage="new", to_stage="mql", by_rule="MQL 线", at=NOW - timedelta(days=9)),
        StageChange(lead_id=lead_id, from_stage="mql", to_stage="sal", by_user_id=rep.id, at=NOW - timedelta(days=8)),
    ])
    session.commit()
    enrollment = Enrollment(workflow_id=workflow.id, lead_id=lead_id, entered_at=NOW - timedelta(days=15),
                            status="completed", finished_at=NOW - timedelta(days=12))
    session.add(enrollment)
    session.commit()
    session.add_all([
        StepRun(enrollment_id=enrollment.id, step_id="welcome", step_type="send_email", status="done",
                idempotency_key="s1", at=NOW - timedelta(days=14)),
        Message(channel="email", lead_id=lead_id, enrollment_id=enrollment.id, to_address="zw@yunshan.cn",
                subject="欢迎参加发布会", status="sent", idempotency_key="m1", created_at=NOW - timedelta(days=14),
                sent_at=NOW - timedelta(days=14)),
        Assignment(lead_id=lead_id, rep_id=rep.id, routed_by="territory", status="rejected", reason="no_budget",
                   note="预算明年才批", assigned_at=NOW - timedelta(days=9), decided_at=NOW - timedelta(days=8, hours=12),
                   decided_by_id=rep.id),
        MergeRecord(survivor_id=lead_id, merged_id=gone_id, snapshot={}, merged_by_id=marketer.id,
                    merged_at=NOW - timedelta(days=5)),
    ])
    session.commit()
    return {"lead_id": lead_id, "gone_id": gone_id, "rep": rep, "marketer": marketer}


def test_timeline_has_every_kind_of_event(session, full_history):
    marketer, lead_id = full_history["marketer"], full_history["lead_id"]
    frame = timeline(session=session, actor=marketer, lead_id=lead_id, limit=None)
    kinds = frame.groupby("kind")["what"].apply(set).to_dict()
    assert kinds["touchpoint"] == {"webinar_attended", "form_submit"}
    assert kinds["score"] == {"engagement", "fit"}
    assert kinds["stage"] == {"mql", "sal"}
    assert kinds["workflow"] == {"send_email", "enrolled", "finished"}
    assert kinds["message"] == {"email"}
    assert kinds["assignment"] == {"assigned", "rejected"}
    assert kinds["merge"] == {"merged_in"}
    assert len(frame) == 2 + 3 + 2 + 3 + 1 + 2 + 1
    assert frame["at"].is_monotonic_decreasing
    webinar = frame[frame["what"] == "webinar_attended"].iloc[0]
    assert webinar["data"] == {"minutes": 42} and webinar["campaign"] == "秋季发布会直播"
    feedback = frame[frame["what"] == "rejected"].iloc[0]
    assert feedback["detail"] == "预算明年才批" and feedback["campaign"] == "no_budget"
    assert timeline_count(session=session, actor=marketer, lead_id=lead_id) == len(frame)


def test_timeline_filters_by_kind_and_period_and_pages(session, full_history):
    marketer, lead_id = full_history["marketer"], full_history["lead_id"]
    stages = timeline(session=session, actor=marketer, lead_id=lead_id, kinds=["stage"])
    assert set(stages["kind"]) == {"stage"} and len(stages) == 2
    recent = timeline(session=session, actor=marketer, lead_id=lead_id, since=NOW - timedelta(days=9, hours=1),
                      until=NOW)
    assert recent["at"].min() >= NOW - timedelta(days=9, hours=1)
    assert timeline_count(session=session, actor=marketer, lead_id=lead_id, since=NOW - timedelta(days=9, hours=1),
                          until=NOW) == len(recent)
    first = timeline(session=session, actor=marketer, lead_id=lead_id, limit=5)
    second = timeline(session=session, actor=marketer, lead_id=lead_id, limit=5, offset=5)
    assert len(first) == 5 and not set(first["ref_id"].astype(str) + first["kind"]) & set(
        second["ref_id"].astype(str) + second["kind"])
    assert timeline(session=session, actor=marketer, lead_id=lead_id, kinds=[]).empty


def test_the_merged_lead_shows_where_it_went(session, full_history):
    frame = timeline(session=session, actor=full_history["marketer"], lead_id=full_history["gone_id"])
    assert list(frame["what"]) == ["merged_into"] and frame.iloc[0]["detail"] == "张伟"


def test_timeline_reads_as_sentences_in_both_languages(session, full_history):
    frame = timeline(session=session, actor=full_history["marketer"], lead_id=full_history["lead_id"], limit=None)
    zh = timeline_for_people(frame, "zh")
    en = timeline_for_people(frame, "en")
    row = zh[frame["what"] == "webinar_attended"].iloc[0]
    assert "42" in row["detail"] and "秋季发布会直播" in row["detail"]
    assert (en["what"] != frame["what"]).all(), "every machine value has a sentence"
    assert any("+20" in w for w in en["what"])
    assert any("预算明年才批" in d for d in zh["detail"])
    exported = timeline_export(session=session, actor=full_history["marketer"], lead_id=full_history["lead_id"],
                               lang="zh", kinds=["touchpoint"])
    assert list(exported.columns) == ["at", "kind", "what", "detail", "channel", "points"] and len(exported) == 2


def test_a_rep_sees_only_the_profile_of_their_own_lead(session, make_actor, full_history):
    other = make_actor("sales", username="rep_other")
    with pytest.raises(NotFound):
        timeline(session=session, actor=other, lead_id=full_history["lead_id"])
    with pytest.raises(NotFound):
        lead_profile(session=session, actor=other, lead_id=full_history["lead_id"])
    profile = lead_profile(session=session, actor=full_history["rep"], lead_id=full_history["lead_id"])
    assert profile["owner"] == "周销售" and profile["tags"] == ["高意向"] and profile["groups"] == ["2026 秋季"]
    assert profile["channel"] == "官网"


def test_score_explanation_sums_to_the_ledger(session, full_history):
    explained = score_explanation(session=session, actor=full_history["marketer"], lead_id=full_history["lead_id"])
    totals = explained.groupby("component")["points"].sum().to_dict()
    assert totals == {"engagement": 15.0, "fit": 30.0}
    assert "出席直播 +20" in set(explained["rule"])


def _journey(session, lead_id, steps, milestone_day, milestone="mql"):  # noqa: ANN001
    for i, (kind, channel_id, day) in enumerate(steps):
        session.add(Touchpoint(lead_id=lead_id, kind=kind, channel_id=channel_id, occurred_at=NOW + timedelta(days=day),
                               natural_key=f"{lead_id}-{i}"))
    if milestone_day is not None:
        session.add(StageChange(lead_id=lead_id, from_stage="new", to_stage=milestone,
                                at=NOW + timedelta(days=milestone_day)))


def test_common_paths_before_mql_and_won(session, make_actor):
    marketer = make_actor("marketer")
    web, live = channel(session, "官网"), channel(session, "直播")
    ids = add_leads(session, [{"name": f"客户{i}", "source_channel_id": web} for i in range(5)])
    path = [("page_view", web, 0), ("page_view", web, 1), ("webinar_attended", live, 3), ("demo_request", web, 5)]
    for lead_id in ids[:3]:
        _journey(session, lead_id, [*path, ("pricing_view", web, 30)], 6)
    _journey(session, ids[3], [("whitepaper_download", web, 0), ("email_sent", web, 1)], 2)
    _journey(session, ids[4], [("page_view", web, 0)], None)
    session.add(StageChange(lead_id=ids[0], from_stage="opportunity", to_stage="won", at=NOW + timedelta(days=40)))
    session.commit()
    paths = path_sequences(session=session, actor=marketer, milestone="mql")
    top = paths.iloc[0]
    assert top["path"] == ("page_view", "webinar_attended", "demo_request")  # repeats collapsed, later touch excluded
    assert top["leads"] == 3 and top["share"] == pytest.approx(0.75) and top["median_days"] == pytest.approx(6)
    assert ("whitepaper_download",) in set(paths["path"]), "sent emails are not steps the person took"
    won = path_sequences(session=session, actor=marketer, milestone="won", depth=2)
    assert list(won["path"]) == [("demo_request", "pricing_view")]
    by_channel = path_sequences(session=session, actor=marketer, milestone="mql", by="channel")
    assert by_channel.iloc[0]["path"] == ("官网", "直播", "官网")
    later = path_sequences(session=session, actor=marketer, milestone="mql", since=NOW + timedelta(days=5))
    assert later["leads"].sum() == 3


def test_sankey_links_flow_from_first_channel_to_outcome(session, make_actor):
    marketer = make_actor("marketer")
    web, live, fair = channel(session, "官网"), channel(session, "直播"), channel(session, "展会")
    ids = add_leads(session, [
        {"name": "甲", "source_channel_id": web, "stage": "won"},
        {"name": "乙", "source_channel_id": web, "stage": "mql"},
        {"name": "丙", "source_channel_id": fair, "stage": "new"},
    ])
    _journey(session, ids[0], [("form_submit", web, 0), ("webinar_attended", live, 2)], None)
    _journey(session, ids[1], [("form_submit", web, 0), ("page_view", web, 1)], None)
    session.commit()
    links = channel_flows(session=session, actor=marketer)
    as_set = {(r.step, r.source, r.target, r.value) for r in links.itertuples()}
    assert as_set == {(1, "官网", "直播", 1), (1, "官网", "—", 1), (1, "展会", "—", 1),
                      (2, "直播", "won", 1), (2, "—", "mql", 1), (2, "—", "nurture", 1)}
    figure = sankey_figure(links, outcome_label=str.upper, title="T")
    assert figure.data[0].type == "sankey" and "WON" in figure.data[0].node.label


def test_median_days_between_stages_by_source(session, make_actor):
    marketer = make_actor("marketer")
    web, fair = channel(session, "官网"), channel(session, "展会")
    ids = add_leads(session, [
        {"name": "甲", "source_channel_id": web, "created_at": NOW},
        {"name": "乙", "source_channel_id": web, "created_at": NOW},
        {"name": "丙", "source_channel_id": fair, "created_at": NOW},
    ])
    for lead_id, mql_day in ((ids[0], 2), (ids[1], 4)):
        session.add(StageChange(lead_id=lead_id, from_stage="new", to_stage="mql", at=NOW + timedelta(days=mql_day)))
    session.add(StageChange(lead_id=ids[0], from_stage="mql", to_stage="sal", at=NOW + timedelta(days=3)))
    session.add(StageChange(lead_id=ids[2], from_stage="new", to_stage="sql", at=NOW + timedelta(days=1)))
    session.commit()
    durations = stage_durations(session=session, actor=marketer).set_index("source")
    assert durations.loc["官网", "leads"] == 2
    assert durations.loc["官网", "new_mql"] == pytest.approx(3.0)
    assert durations.loc["官网", "mql_sal"] == pytest.approx(1.0)
    assert durations.loc["展会", "sal_sql"] == pytest.approx(1.0), "a skipped stage counts from the last reached"
