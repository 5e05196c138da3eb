"""draft findings (boxes and masks with their sentences) and arms that show them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 15:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('arms', sa.Column('shows_findings', sa.Boolean(), server_default='0', nullable=False))
    op.create_table('draft_findings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('draft_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('sentence', sa.Text(), nullable=False),
    sa.Column('geometry', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['draft_id'], ['drafts.id'], name=op.f('fk_draft_findings_draft_id_drafts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_draft_findings')),
    sa.UniqueConstraint('draft_id', 'position', name=op.f('uq_draft_findings_draft_id_position'))
    )


def downgrade() -> None:
    op.drop_table('draft_findings')
    with op.batch_alter_table('arms') as batch_op:
        batch_op.drop_column('shows_findings')
