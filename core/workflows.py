"""Nurture workflows: definitions, validation, enrollments and ``run_due(session, now)``."""

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
