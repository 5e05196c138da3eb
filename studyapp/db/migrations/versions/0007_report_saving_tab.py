"""reports remember which browser tab stored the current text (saved_by_tab, tab_sequence), so the saves of one tab
never conflict with each other

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 16:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('reports', sa.Column('saved_by_tab', sa.String(length=64), nullable=True))
    op.add_column('reports', sa.Column('tab_sequence', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch copy would drop the reports table, which other tables'
    # foreign keys refer to
    op.drop_column('reports', 'tab_sequence')
    op.drop_column('reports', 'saved_by_tab')
