"""What happens to leads after they are written: one place that every writer calls.

An import batch, a touchpoint file, a merge or a manual edit all end the same way — dedup against the base,
place the leads in their accounts, rescore them and hand those that crossed the MQL line to the lifecycle
(``score_and_promote``, which the score command and the scheduler's decay job use too).
Writers call :func:`after_leads_written` inside their own transaction so the whole chain commits or rolls back
with the batch that caused it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlmodel import Session

from core import accounts, dedup, lifecycle, scoring
from core.auth import SYSTEM, Actor
from db.models import Rule


@dataclass
class PipelineReport:
    """What the chain did for one batch of leads, step by step (counts only, for summaries and logs)."""

    dedup: dict[str, int] = field(default_factory=dict)
    accounts: dict[str, Any] = field(default_factory=dict)
    scoring: dict[str, Any] = field(default_factory=dict)
    promoted: int = 0


def after_leads_written(*, session: Session, lead_ids: Iterable[int], now: datetime, actor: Actor = SYSTEM,
                        check_duplicates: bool = True, compare_ids: Iterable[int] | None = None,
                        found_pairs: pd.DataFrame | None = None,
                        placement: accounts.Placement | None = None) -> PipelineReport:
    """Run the post-write chain for ``lead_ids`` (new or changed leads) in the caller's transaction.

    ``compare_ids``: the leads among them to compare with the base for duplicates (default: all). A writer that
    knows which leads got values dedup compares — the new ones, and existing ones whose name, contacts or company
    it filled — passes those: a lead whose compared values did not change has no pair it did not have before.
    ``found_pairs``: those leads' pairs when they were already found (an import's helper process), else None.
    ``placement``: the accounts the writer gave the leads as it wrote them (``accounts.place_leads``); then only
    the survivors of merges made here are placed again, and the accounts' figures are refreshed."""
    ids = sorted({int(i) for i in lead_ids})
    report = PipelineReport()
    if not ids:
        return report
    merged: dict[int, int] = {}
    if check_duplicates:
        compared = ids if compare_ids is None else sorted({int(i) for i in compare_ids})
        report.dedup = dedup.check_new_leads(session=session, lead_ids=compared, now=now, actor=actor,
                                             found=found_pairs, merged=merged)
    if placement is None:
        built = accounts.assign_accounts(session=session, lead_ids=ids, now=now)
    else:
        # A survivor took over fields of the lead merged into it; an account created for a lead that was merged
        # away may have no one left.
        emptied = {placement.account_of.get(lead) for lead in merged} & placement.created
        built = accounts.assign_accounts(session=session, lead_ids=set(merged.values()), now=now,
                                         also_refresh=placement.affected, prune=emptied)
        built.created += placement.build.created
        built.renamed += placement.build.renamed
        built.leads_assigned += placement.build.leads_assigned
    report.accounts = dict(vars(built))
    # Scores before the MQL hand-off: the leads just written are rescored (incrementally) and those that crossed
    # the MQL line go to the lifecycle, which routes them.
    scored, promotion = score_and_promote(session=session, now=now, lead_ids=ids)
    report.scoring = scored.summary()
    report.promoted = len(promotion.promoted)
    return report


def score_and_promote(*, session: Session, now: datetime, lead_ids: Iterable[int] | None = None,
                      promote: bool = True) -> tuple[scoring.ScoreReport, lifecycle.PromotionReport]:
    """Rescore ``lead_ids`` (every lead when None) and hand those that crossed the MQL line to sales.

    The promotion names the MQL line that was crossed, so the rep's inbox and the lead's history say why. Used
    after every write, by ``python -m core score`` and by the scheduler. The caller commits.
    """
    report = scoring.rescore(session=session, now=now, lead_ids=lead_ids)
    if not (promote and report.crossed_mql):
        return report, lifecycle.PromotionReport()
    rule_id, text, _ = scoring.mql_rule(session)
    # Reps read this in their inbox ("qualified by: MQL line"): the rule's name, or the team setting's text.
    rule = session.get(Rule, rule_id) if rule_id is not None else None
    promotion = lifecycle.promote_to_mql(session=session, lead_ids=report.crossed_mql, now=now,
                                         by_rule=rule.name if rule is not None else text)
    return report, promotion
