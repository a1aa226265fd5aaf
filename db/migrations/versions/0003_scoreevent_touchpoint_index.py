"""score ledger: index by touchpoint (rescoring looks up what each touchpoint already scored)

Revision ID: 0003_rules
Revises: 0002
Create Date: 2026-11-23 17:15:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0003_rules'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('scoreevent', schema=None) as batch_op:
        batch_op.create_index('ix_scoreevent_touchpoint_rule', ['touchpoint_id', 'rule_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('scoreevent', schema=None) as batch_op:
        batch_op.drop_index('ix_scoreevent_touchpoint_rule')
