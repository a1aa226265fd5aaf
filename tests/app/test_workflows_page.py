"""The Workflows page on the seeded database: list, template, editor validation, activation, simulate, status."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from core.i18n import t
from db.engine import make_engine
from db.models import Workflow, WorkflowVersion
from tests.app.conftest import logged_in, open_tab


def _open():  # noqa: ANN202
    at = logged_in("marketer")
    at.switch_page("pages/workflows.py")
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _button(at, key: str):  # noqa: ANN001, ANN202
    return at.button(key=key)


def _submit(at, label_key: str):  # noqa: ANN001, ANN202
    labels = [b.label for b in at.button]
    return at.button[labels.index(t(label_key, "zh"))]


def test_the_list_shows_seeded_workflows_with_counts(app_database):
    at = _open()
    listing = at.dataframe[0].value
    assert len(listing) >= 4
    counts = at.dataframe[1].value
    assert t("workflows.col.entered", "zh") in counts.columns and len(counts) > 0


def test_template_editor_validation_and_activation(app_database):
    at = _open()
    at.selectbox(key="wf_template_key").set_value("wechat_recall")
    _submit(at, "workflows.use_template").click().run()
    assert not at.exception, at.exception
    engine = make_engine(app_database)
    with Session(engine) as session:
        created = session.scalars(select(Workflow).order_by(Workflow.id.desc()).limit(1)).one()
    wf_id = int(created.id)
    assert at.selectbox(key="wf_pick").value == wf_id
    assert any(t("workflows.valid", "zh") in s.value for s in at.success)

    # A new step that points nowhere is unreachable: the page says which step is wrong.
    at.text_input(key=f"wf_step_id_{wf_id}___new__").input("孤立步骤")
    at.selectbox(key=f"wf_step_type_{wf_id}___new__").set_value("add_tag")
    at.run()
    at.text_input(key=f"wf_step_id_{wf_id}___new__").input("孤立步骤")
    at.text_input(key=f"wf_f_tag_{wf_id}___new__").input("测试")
    _submit(at, "workflows.save_step").click().run()
    assert not at.exception, at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "孤立步骤" in warnings and t("workflows.problem.unreachable", "zh") in warnings

    # Activation refuses the invalid definition with the step named.
    _button(at, "wf_activate").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "孤立步骤" in errors

    # Delete the stray step and activate.
    at.selectbox(key=f"wf_step_pick_{wf_id}").set_value("孤立步骤").run()
    _button(at, f"wf_delete_{wf_id}_孤立步骤").click().run()
    assert not at.exception, at.exception
    _button(at, "wf_activate").click().run()
    assert not at.error, [e.value for e in at.error]
    with Session(engine) as session:
        workflow = session.get(Workflow, wf_id)
        assert workflow.status == "active"
        assert session.scalar(select(WorkflowVersion.version).where(WorkflowVersion.workflow_id == wf_id)) == 1
    engine.dispose()
    assert _button(at, "wf_pause") is not None


def test_simulate_and_scheduler_panel(app_database):
    at = _open()
    at.selectbox(key="wf_pick").set_value(1).run()
    at.number_input(key="wf_sim_lead").set_value(1)
    _submit(at, "workflows.simulate").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    plan = next(d.value for d in at.dataframe if t("workflows.col.state", "zh") in d.value.columns)
    assert len(plan) > 0
    labels = [m.label for m in at.metric]
    assert t("workflows.sched.leader", "zh") in labels and t("workflows.sched.due", "zh") in labels


def test_admin_saves_smtp_settings_without_showing_the_password(app_database):
    at = logged_in("admin")
    at.switch_page("pages/admin.py")
    at.run()
    assert not at.exception, at.exception
    open_tab(at, "admin_tab", t("admin.tab.messaging", "zh"))
    at.text_input(key="smtp_host").input("smtp.example.cn")
    at.text_input(key="smtp_password").input("s3cret-pw")
    at.text_input(key="smtp_sender").input("mkt@example.cn")
    _submit(at, "smtp.save").click().run()
    assert not at.exception, at.exception
    assert any(t("smtp.saved", "zh") in s.value for s in at.success)
    engine = make_engine(app_database)
    with Session(engine) as session:
        from core.settings import get_setting

        stored = get_setting(session, "smtp")
    engine.dispose()
    assert stored["host"] == "smtp.example.cn" and stored["password"] == "s3cret-pw"
