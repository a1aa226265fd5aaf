"""followup flags, custom attributes, search text, workflow versions, account lists

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:19:15.386883
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('workflowversion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workflow_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('trigger', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('definition', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['user.id'], name=op.f('fk_workflowversion_author_id_user')),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflow.id'], name=op.f('fk_workflowversion_workflow_id_workflow')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflowversion')),
    sa.UniqueConstraint('workflow_id', 'version', name=op.f('uq_workflowversion_workflow_id'))
    )
    with op.batch_alter_table('workflowversion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflowversion_workflow_id'), ['workflow_id'], unique=False)

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target_lists', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('mqa_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))

    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.add_column(sa.Column('followup_lead_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('followup_owner_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('search_text', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False, server_default=''))
        batch_op.create_foreign_key(batch_op.f('fk_lead_followup_lead_id_lead'), 'lead', ['followup_lead_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_lead_followup_owner_id_user'), 'user', ['followup_owner_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table("lead", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_lead_followup_owner_id_user'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_lead_followup_lead_id_lead'), type_='foreignkey')
        batch_op.drop_column('search_text')
        batch_op.drop_column('attributes')
        batch_op.drop_column('followup_owner_id')
        batch_op.drop_column('followup_lead_id')

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('mqa_at')
        batch_op.drop_column('target_lists')

    with op.batch_alter_table('workflowversion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflowversion_workflow_id'))

    op.drop_table('workflowversion')
