"""display names: how channel, campaign, tag, rule and workflow names read in each interface language

Revision ID: 0005_display_names
Revises: 0004_scoring_bulk
Create Date: 2026-12-06 19:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005_display_names'
down_revision: Union[str, None] = '0004_scoring_bulk'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'displayname',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('lang', sa.String(length=8), nullable=False),
        sa.Column('text', sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_displayname')),
        sa.UniqueConstraint('kind', 'name', 'lang', name='uq_displayname_kind_name_lang'),
    )


def downgrade() -> None:
    op.drop_table('displayname')
