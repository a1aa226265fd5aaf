"""lead: no index on the name and company keys

Nothing looks a lead up by its name key or company key: dedup reads the keys with the whole lead frame, search
goes through ``search_text`` and accounts keep their own keys. The two indexes only cost an entry per lead on
every write (an import of tens of thousands of leads wrote as many random entries into each).

Revision ID: 0007_unused_key_indexes
Revises: 0006_lead_indexes
Create Date: 2026-12-07 01:00:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0007_unused_key_indexes'
down_revision: Union[str, None] = '0006_lead_indexes'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_COLUMNS = ('name_key', 'company_key')


def upgrade() -> None:
    for column in _COLUMNS:
        op.drop_index(f'ix_lead_{column}', table_name='lead')


def downgrade() -> None:
    for column in _COLUMNS:
        op.create_index(f'ix_lead_{column}', 'lead', [column], unique=False)
