"""Names a team gives its things read in each interface language: labels are saved, validated, audited, shown
for lists and series, carried along a rename, and only people who manage channels may change them."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import select

from core import display_names
from core.errors import PermissionDenied, ValidationError
from core.rules.store import save_rule
from core.workflows.manage import create_workflow, save_workflow
from db.models import AuditLog, Channel, DisplayName, Tag

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_saved_labels_are_read_back_per_language_and_an_empty_cell_removes_one(session, make_actor):
    marketer = make_actor("marketer")
    session.add_all([Channel(name="展会", kind="tradeshow"), Tag(name="高意向")])
    session.flush()
    changed = display_names.save(session, actor=marketer, rows=[
        {"kind": "channel", "name": "展会", "en": "Trade shows", "zh": ""},
        {"kind": "tag", "name": "高意向", "en": " High intent ", "zh": ""},
    ])
    assert changed == 2
    assert display_names.labels(session, "en")["channel"] == {"展会": "Trade shows"}
    assert display_names.labels(session, "en")["tag"] == {"高意向": "High intent"}  # trimmed
    assert display_names.labels(session, "zh")["channel"] == {}
    table = display_names.table(session)
    row = table[(table["kind"] == "channel") & (table["name"] == "展会")].iloc[0]
    assert (row["en"], row["zh"]) == ("Trade shows", "")
    assert session.scalar(select(AuditLog.action).where(AuditLog.action == "names.update")) == "names.update"

    assert display_names.save(session, actor=marketer, rows=[
        {"kind": "channel", "name": "展会", "en": "", "zh": ""}]) == 1
    assert display_names.labels(session, "en")["channel"] == {}
    # Saving the same thing again changes nothing and writes no audit line.
    before = session.scalars(select(AuditLog)).all()
    assert display_names.save(session, actor=marketer, rows=[
        {"kind": "tag", "name": "高意向", "en": "High intent", "zh": ""}]) == 0
    assert len(session.scalars(select(AuditLog)).all()) == len(before)


def test_bad_rows_are_refused_before_anything_is_written(session, make_actor):
    admin = make_actor("admin")
    with pytest.raises(ValidationError) as unknown:
        display_names.save(session, actor=admin, rows=[
            {"kind": "channel", "name": "展会", "en": "Trade shows"},
            {"kind": "planet", "name": "火星", "en": "Mars"}])
    assert unknown.value.key == "names.kind_invalid"
    with pytest.raises(ValidationError) as too_long:
        display_names.save(session, actor=admin, rows=[{"kind": "tag", "name": "x", "en": "y" * 300}])
    assert too_long.value.key == "names.too_long"
    assert session.scalars(select(DisplayName)).all() == []


@pytest.mark.parametrize("role", ["sales"])
def test_a_sales_rep_cannot_change_labels(session, make_actor, role):
    with pytest.raises(PermissionDenied):
        display_names.save(session, actor=make_actor(role), rows=[{"kind": "tag", "name": "x", "en": "y"}])


def test_series_and_lists_show_labels_and_leave_the_rest_alone():
    mapping = {"展会": "Trade shows", "直播": "Live streams"}
    series = pd.Series(["展会", None, "SEM", "直播"])
    shown = display_names.show_series(series, mapping)
    assert shown.iloc[[0, 2, 3]].tolist() == ["Trade shows", "SEM", "Live streams"]
    assert pd.isna(shown.iloc[1])
    assert display_names.show_series(pd.Series([["展会", "SEM"], []]), mapping).tolist() == [
        ["Trade shows", "SEM"], []]
    assert display_names.show(None, mapping) is None
    assert display_names.show(("直播",), mapping) == ["Live streams"]


def test_renaming_a_rule_or_a_workflow_carries_its_labels(session, make_actor):
    marketer = make_actor("marketer")
    rule = save_rule(session=session, actor=marketer, now=NOW, rule_id=None, name="决策层职位", kind="fit",
                     text='title contains "总监"', points=10, params={})
    workflow = create_workflow(session=session, actor=marketer, now=NOW, name="新线索邮件培育",
                               trigger={"type": "manual"}, definition={"start": "end", "steps": {"end": {"type": "end"}}})
    display_names.seed(session, "rule", {"决策层职位": "Decision-maker title"})
    display_names.seed(session, "workflow", {"新线索邮件培育": "New lead nurture"})
    save_rule(session=session, actor=marketer, now=NOW, rule_id=rule.id, name="决策层", kind="fit",
              text='title contains "总监"', points=10, params={})
    save_workflow(session=session, actor=marketer, now=NOW, workflow_id=workflow.id, name="新线索培育")
    labels = display_names.labels(session, "en")
    assert labels["rule"] == {"决策层": "Decision-maker title"}
    assert labels["workflow"] == {"新线索培育": "New lead nurture"}
