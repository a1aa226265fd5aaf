"""score ledger and touchpoints: indexes for the set-based full rescore

The full rescore no longer looks up the ledger per touchpoint, so the (touchpoint_id, rule_id) index on
scoreevent only slows every ledger write. Engagement rules read touchpoints by kind, then lead and time:
an index on (kind, lead_id, occurred_at) answers them without reading the rows, and replaces the plain index
on kind (its prefix), so imports keep the same number of touchpoint indexes.

Revision ID: 0004_scoring_bulk
Revises: 0003_rules
Create Date: 2026-11-23 18:20:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0004_scoring_bulk'
down_revision: Union[str, None] = '0003_rules'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('scoreevent', schema=None) as batch_op:
        batch_op.drop_index('ix_scoreevent_touchpoint_rule')
    with op.batch_alter_table('touchpoint', schema=None) as batch_op:
        batch_op.create_index('ix_touchpoint_kind_lead_occurred', ['kind', 'lead_id', 'occurred_at'], unique=False)
        batch_op.drop_index('ix_touchpoint_kind')


def downgrade() -> None:
    with op.batch_alter_table('touchpoint', schema=None) as batch_op:
        batch_op.create_index('ix_touchpoint_kind', ['kind'], unique=False)
        batch_op.drop_index('ix_touchpoint_kind_lead_occurred')
    with op.batch_alter_table('scoreevent', schema=None) as batch_op:
        batch_op.create_index('ix_scoreevent_touchpoint_rule', ['touchpoint_id', 'rule_id'], unique=False)
