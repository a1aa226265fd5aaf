"""The duplicate engine over plain DataFrames: names across characters and pinyin, company variants, typo'd
phones and emails, thresholds, any record set with any field kinds, clusters, and accuracy on a labelled set."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.dedup_data import evaluate, labelled_leads
from core.dedup import KINDS, clusters, compare_records, find_duplicates

AUTO, REVIEW = 0.95, 0.6


def pair_score(a: dict, b: dict, fields: dict | None = None, crowd: int = 0) -> tuple[float, list[str]]:
    """Score of records a and b, among ``crowd`` unrelated leads (so value shares are realistic)."""
    rows = [a, b] + [{"name": f"路人{k}", "phone": f"1390000{k:04d}", "company": f"无关公司{k}"} for k in range(crowd)]
    frame = pd.DataFrame(rows, index=range(1, len(rows) + 1))
    return compare_records(frame, 1, 2, fields)


def test_same_mobile_and_name_is_certain():
    score, reasons = pair_score({"name": "张伟", "phone": "13800138000"},
                                {"name": "张伟", "phone": "+86 138-0013-8000"})
    assert score >= AUTO
    assert "phone:exact" in reasons and "name:exact" in reasons


def test_same_email_alone_is_certain_and_same_wechat_id_too():
    assert pair_score({"email": "Wei.Zhang@Yunshan.COM"}, {"email": "wei.zhang@yunshan.com", "name": "张伟"})[0] >= AUTO
    assert pair_score({"wechat_id": "zw_2024", "name": "张伟"}, {"wechat_id": "ZW_2024", "name": "Zhang Wei"})[0] >= AUTO


@pytest.mark.parametrize("other", ["Zhang Wei", "Wei Zhang", "ZHANG Wei", "zhangwei", "张玮"])
def test_chinese_characters_match_pinyin_in_either_order(other):
    score, reasons = pair_score({"name": "张伟", "company": "上海云杉科技有限公司"},
                                {"name": other, "company": "云杉科技(上海)"})
    assert REVIEW <= score < AUTO, (other, score, reasons)
    assert any(r.startswith("name:") and not r.endswith("different") for r in reasons)


def test_likely_match_from_the_feature_description_goes_to_review():
    # 张伟 at 上海某某科技有限公司 and "Zhang Wei" at "某某科技(上海)", one digit off in the phone.
    score, reasons = pair_score({"name": "张伟", "company": "上海某某科技有限公司", "phone": "13812345678"},
                                {"name": "Zhang Wei", "company": "某某科技(上海)", "phone": "13812345679"})
    assert REVIEW <= score < AUTO
    assert {"name:pinyin", "company:exact", "phone:typo"} <= set(reasons)


@pytest.mark.parametrize(("left", "right", "level"), [
    ("上海云杉科技有限公司", "云杉科技", "exact"),
    ("北京鑫通", "鑫通软件(北京)有限责任公司", "variant"),
    ("阿里巴巴网络技术有限公司", "阿里巴巴", "variant"),
    ("上海交通大学", "上海交大", "abbreviation"),
    ("International Business Machines Corp.", "IBM", "abbreviation"),
    ("Acme Trading Co., Ltd.", "ACME Trading Limited", "exact"),
])
def test_company_variants(left, right, level):
    _, reasons = pair_score({"name": "李娜", "company": left}, {"name": "李娜", "company": right})
    assert f"company:{level}" in reasons


@pytest.mark.parametrize("typo", ["13812345670", "13812345687", "1381234567", "138123456789"])
def test_typod_phones_are_found_and_scored_as_typos(typo):
    frame = pd.DataFrame({"name": ["王芳", "王芳", "刘洋"], "phone": ["13812345678", typo, "13987654321"]},
                         index=[10, 20, 30])
    pairs = find_duplicates(frame, min_score=0)
    row = pairs[(pairs["left"] == 10) & (pairs["right"] == 20)]
    assert len(row) == 1 and "phone:typo" in row["reasons"].iloc[0]
    assert REVIEW <= row["score"].iloc[0] < AUTO


def test_email_typo_and_same_local_part():
    assert "email:typo" in pair_score({"email": "zhangwei@yunshan.com"}, {"email": "zhangwie@yunshan.com"})[1]
    assert "email:same_local" in pair_score({"email": "zhangwei.sh@qq.com"}, {"email": "zhangwei.sh@163.com"})[1]


def test_different_people_with_a_common_name_are_not_merged():
    score, reasons = pair_score({"name": "张伟", "phone": "13800000001", "company": "华为"},
                                {"name": "张伟", "phone": "13999999999", "company": "腾讯"})
    assert score < REVIEW, reasons
    # A shared office number with different names is not the same person either.
    assert pair_score({"name": "张伟", "phone": "021-62123456"}, {"name": "李娜", "phone": "02162123456"})[0] < REVIEW


def test_a_phone_shared_by_several_records_needs_the_name_to_be_certain():
    frame = pd.DataFrame({"name": ["张伟", None, "李娜"], "phone": ["02162123456"] * 3}, index=[1, 2, 3])
    pairs = find_duplicates(frame, min_score=0).set_index(["left", "right"])
    assert pairs.loc[(1, 2), "score"] < AUTO  # shared line, one name missing: a look, not a merge
    assert pairs.loc[(1, 3), "score"] < REVIEW


def test_any_record_set_with_any_kinds():
    people = pd.DataFrame({
        "given": ["john", "jon", "mary", "peter"],
        "surname": ["smith", "smith", "jones", "brown"],
        "born": ["1980-04-12", "12/04/1980", "1975-01-01", "1990-09-09"],
        "ssn": ["1234567", "1234567", "7654321", "5555555"],
        "suburb": ["st kilda", "st. kilda", "fitzroy", "carlton"],
    }, index=["r1", "r2", "r3", "r4"])
    fields = {"given": "person_name", "surname": "person_name", "born": "date", "ssn": "exact", "suburb": "text"}
    pairs = find_duplicates(people, fields)
    assert list(zip(pairs["left"], pairs["right"], strict=True)) == [("r1", "r2")]
    assert pairs["score"].iloc[0] >= AUTO
    assert set(pairs.columns) >= {"left", "right", "score", "reasons"}
    with pytest.raises(ValueError):
        find_duplicates(people, {"given": "shoe_size"})
    assert set(KINDS) == {"email", "phone", "person_name", "company", "text", "exact", "date"}


def test_only_limits_pairs_to_a_batch():
    frame = pd.DataFrame({"name": ["张伟", "张伟", "李娜", "李娜"],
                          "phone": ["13800138000", "13800138000", "13912345678", "13912345678"]},
                         index=[1, 2, 3, 4])
    assert len(find_duplicates(frame)) == 2
    batch = find_duplicates(frame, only=[4])
    assert list(zip(batch["left"], batch["right"], strict=True)) == [(3, 4)]


def test_clusters_link_pairs_transitively():
    pairs = pd.DataFrame({"left": [1, 2, 7, 5], "right": [2, 3, 8, 6], "score": [0.99, 0.97, 0.7, 0.96]})
    result = clusters(pairs, 0.95)
    assert result.to_dict() == {1: 1, 2: 1, 3: 1, 5: 5, 6: 5}
    assert clusters(pairs.iloc[0:0], 0.9).empty


def test_accuracy_on_a_small_labelled_set():
    frame = labelled_leads(1500, seed=3)
    pairs = find_duplicates(frame.drop(columns="entity"), min_score=REVIEW)
    figures = evaluate(frame, pairs, auto=AUTO, review=REVIEW)
    assert figures["true_pairs"] > 300
    assert figures["precision_auto"] >= 0.98, figures
    assert figures["recall_total"] >= 0.95, figures


def test_a_batch_finds_exactly_the_pairs_a_full_scan_finds_for_it():
    frame = labelled_leads(1200, seed=9).drop(columns="entity")
    frame.loc[frame.index[0], "phone"] = "138001380001"  # one digit too many, in the base
    frame.loc[frame.index[-1], "phone"] = "13800138000"  # in the batch, the same person
    frame.loc[frame.index[-1], ["name", "company"]] = frame.loc[frame.index[0], ["name", "company"]].to_numpy()
    batch = list(frame.index[-150:])
    full = find_duplicates(frame, min_score=0.3)
    expected = full[full["left"].isin(batch) | full["right"].isin(batch)]
    found = find_duplicates(frame, only=batch, min_score=0.3)
    as_set = lambda pairs: {(a, b, s) for a, b, s in zip(pairs["left"], pairs["right"], pairs["score"], strict=True)}  # noqa: E731
    assert as_set(found) == as_set(expected)
    assert len(found) > 30
    pair = found[(found["left"] == frame.index[0]) & (found["right"] == frame.index[-1])]
    assert "phone:typo" in pair["reasons"].iloc[0]
