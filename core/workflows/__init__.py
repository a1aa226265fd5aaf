"""Nurture workflows: definitions, validation, enrollments and ``run_due(session, now)``.

The package: ``definition`` (step types, validation), ``triggers`` (who enters, re-entry, exit goals), ``engine``
(``run_due``), ``manage`` (save/activate/pause/resume, counts, simulate), ``templates`` (shipped flows).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from db.models import Enrollment, EnrollmentStatus, Workflow

WORKFLOW_COLUMNS = ["id", "name", "status", "trigger", "steps", "version", "updated_at", "in_progress",
                    "completed", "exited", "failed"]


def list_workflows(*, session: Session, include_templates: bool = True) -> pd.DataFrame:
    """Workflows with their step count and how many enrollments are in each status (one grouped query)."""
    workflows = session.execute(
        select(Workflow.id, Workflow.name, Workflow.status, Workflow.trigger, Workflow.definition,
               Workflow.version, Workflow.updated_at, Workflow.is_template)
        .order_by(Workflow.id)
    ).all()
    frame = pd.DataFrame([r._asdict() for r in workflows])
    if frame.empty:
        return pd.DataFrame(columns=WORKFLOW_COLUMNS)
    if not include_templates:
        frame = frame[~frame["is_template"]]
    frame["steps"] = frame.pop("definition").map(lambda d: len((d or {}).get("steps", {})))
    counts = session.execute(
        select(Enrollment.workflow_id, Enrollment.status, func.count()).group_by(
            Enrollment.workflow_id, Enrollment.status
        )
    ).all()
    pivot = (
        pd.DataFrame(counts, columns=["id", "status", "n"])
        .pivot_table(index="id", columns="status", values="n", aggfunc="sum", fill_value=0)
        .reindex(columns=[s.value for s in EnrollmentStatus], fill_value=0)
    )
    frame = frame.merge(pivot, left_on="id", right_index=True, how="left")
    for status in EnrollmentStatus:
        frame[status.value] = frame[status.value].fillna(0).astype(int)
    # A claimed ("running") enrollment is still in progress from the marketer's point of view.
    frame["in_progress"] = frame[EnrollmentStatus.ACTIVE.value] + frame[EnrollmentStatus.RUNNING.value]
    return frame[WORKFLOW_COLUMNS].reset_index(drop=True)


from core.workflows.definition import (  # noqa: E402 - the package's public names, after list_workflows
    STEP_TYPES,
    TRIGGER_TYPES,
    Problem,
    WorkflowInvalid,
    check_workflow,
    validate_definition,
    validate_trigger,
)
from core.workflows.engine import TickReport, claim_due, run_due  # noqa: E402
from core.workflows.manage import (  # noqa: E402
    activate_workflow,
    create_from_template,
    create_workflow,
    enroll_leads,
    enrollments,
    get_workflow,
    pause_workflow,
    resume_workflow,
    save_workflow,
    simulate,
    step_counts,
)
from core.workflows.templates import TEMPLATES  # noqa: E402
from core.workflows.triggers import enroll, scan_triggers  # noqa: E402

__all__ = [
    "STEP_TYPES", "TEMPLATES", "TRIGGER_TYPES", "Problem", "TickReport", "WorkflowInvalid", "activate_workflow",
    "check_workflow", "claim_due", "create_from_template", "create_workflow", "enroll", "enroll_leads",
    "enrollments", "get_workflow", "list_workflows", "pause_workflow", "resume_workflow", "run_due",
    "save_workflow", "scan_triggers", "simulate", "step_counts", "validate_definition", "validate_trigger",
]
