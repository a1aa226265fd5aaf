"""The rule language marketers write: grammar, AST, type check, SQL compiler and Python predicate."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from db.models import Rule, User

RULE_COLUMNS = ["id", "name", "kind", "text", "points", "params", "active", "version", "author", "updated_at"]


def list_rules(*, session: Session, kind: str | None = None) -> pd.DataFrame:
    """Every rule with its author, grouped by kind (MQL line first, then fit, engagement, decay, tags)."""
    query = (
        select(Rule.id, Rule.name, Rule.kind, Rule.text, Rule.points, Rule.params, Rule.active, Rule.version,
               User.display_name.label("author"), Rule.updated_at)
        .join(User, User.id == Rule.author_id, isouter=True)
        .order_by(Rule.kind, Rule.id)
    )
    if kind:
        query = query.where(Rule.kind == kind)
    frame = pd.DataFrame([r._asdict() for r in session.execute(query).all()], columns=RULE_COLUMNS)
    order = {"mql": 0, "fit": 1, "engagement": 2, "decay": 3, "tag": 4}
    return frame.sort_values(["kind", "id"], key=lambda s: s.map(order) if s.name == "kind" else s,
                             ignore_index=True)
