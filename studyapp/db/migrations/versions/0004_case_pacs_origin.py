"""case PACS origin

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 15:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases') as batch_op:
        batch_op.add_column(sa.Column('pacs_url', sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cases') as batch_op:
        batch_op.drop_column('pacs_url')
