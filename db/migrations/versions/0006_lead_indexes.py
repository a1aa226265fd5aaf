"""lead indexes: fewer entries per new lead

The index on status alone repeats the prefix of (status, stage). WeChat id, merged-into and source campaign are
empty on most leads, so their indexes hold only the rows where they are set: a lookup by value uses them all the
same, and an import of tens of thousands of leads no longer writes an index entry for each of their NULLs.

Revision ID: 0006_lead_indexes
Revises: 0005_display_names
Create Date: 2026-12-06 22:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0006_lead_indexes'
down_revision: Union[str, None] = '0005_display_names'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_PARTIAL = ('wechat_id', 'merged_into_id', 'source_campaign_id')


def upgrade() -> None:
    op.drop_index('ix_lead_status', table_name='lead')
    for column in _PARTIAL:
        where = sa.text(f'{column} IS NOT NULL')
        op.drop_index(f'ix_lead_{column}', table_name='lead')
        op.create_index(f'ix_lead_{column}', 'lead', [column], unique=False, sqlite_where=where,
                        postgresql_where=where)


def downgrade() -> None:
    for column in _PARTIAL:
        op.drop_index(f'ix_lead_{column}', table_name='lead')
        op.create_index(f'ix_lead_{column}', 'lead', [column], unique=False)
    op.create_index('ix_lead_status', 'lead', ['status'], unique=False)
