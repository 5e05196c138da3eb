"""practice cases and report save versions

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 15:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('cases', sa.Column('is_practice', sa.Boolean(), server_default='0', nullable=False))
    op.add_column('reports', sa.Column('version', sa.Integer(), server_default='1', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('reports') as batch_op:
        batch_op.drop_column('version')
    with op.batch_alter_table('cases') as batch_op:
        batch_op.drop_column('is_practice')
