"""blinded comparison schema

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 12:45:49.955903
"""
from alembic import op
import sqlalchemy as sa
import studyapp.db.base


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('comparison_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('readers_per_pair', sa.Integer(), nullable=False),
    sa.Column('candidate_source', sa.String(length=128), nullable=True),
    sa.Column('created_at', studyapp.db.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['reader_studies.id'], name=op.f('fk_comparison_sets_study_id_reader_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparison_sets')),
    sa.UniqueConstraint('study_id', 'name', name=op.f('uq_comparison_sets_study_id_name'))
    )
    op.create_table('comparison_pairs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('set_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('source_1_name', sa.String(length=128), nullable=False),
    sa.Column('text_1', sa.Text(), nullable=False),
    sa.Column('source_2_name', sa.String(length=128), nullable=False),
    sa.Column('text_2', sa.Text(), nullable=False),
    sa.CheckConstraint('source_1_name <> source_2_name', name=op.f('ck_comparison_pairs_distinct_sources')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_comparison_pairs_case_id_cases'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['set_id'], ['comparison_sets.id'], name=op.f('fk_comparison_pairs_set_id_comparison_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparison_pairs')),
    sa.UniqueConstraint('set_id', 'case_id', 'source_1_name', 'source_2_name', name=op.f('uq_comparison_pairs_set_id_case_id_source_1_name_source_2_name')),
    sa.UniqueConstraint('set_id', 'position', name=op.f('uq_comparison_pairs_set_id_position'))
    )
    op.create_table('comparison_submissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('set_id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('submitted_at', studyapp.db.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['reader_id'], ['users.id'], name=op.f('fk_comparison_submissions_reader_id_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['set_id'], ['comparison_sets.id'], name=op.f('fk_comparison_submissions_set_id_comparison_sets'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparison_submissions')),
    sa.UniqueConstraint('set_id', 'reader_id', name=op.f('uq_comparison_submissions_set_id_reader_id'))
    )
    op.create_table('comparison_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('set_id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('a_source', sa.Integer(), nullable=False),
    sa.CheckConstraint('a_source IN (1, 2)', name=op.f('ck_comparison_assignments_a_source_1_or_2')),
    sa.ForeignKeyConstraint(['pair_id'], ['comparison_pairs.id'], name=op.f('fk_comparison_assignments_pair_id_comparison_pairs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reader_id'], ['users.id'], name=op.f('fk_comparison_assignments_reader_id_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['set_id'], ['comparison_sets.id'], name=op.f('fk_comparison_assignments_set_id_comparison_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparison_assignments')),
    sa.UniqueConstraint('pair_id', 'reader_id', name=op.f('uq_comparison_assignments_pair_id_reader_id')),
    sa.UniqueConstraint('set_id', 'reader_id', 'position', name=op.f('uq_comparison_assignments_set_id_reader_id_position'))
    )
    op.create_table('comparison_comments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('side', sa.String(length=1), nullable=True),
    sa.Column('start', sa.Integer(), nullable=True),
    sa.Column('end', sa.Integer(), nullable=True),
    sa.Column('passage', sa.Text(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', studyapp.db.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint("side IS NULL OR side IN ('A', 'B')", name=op.f('ck_comparison_comments_side_code')),
    sa.CheckConstraint('score IN (1, 2, 4, 5)', name=op.f('ck_comparison_comments_score_1_2_4_5')),
    sa.ForeignKeyConstraint(['assignment_id'], ['comparison_assignments.id'], name=op.f('fk_comparison_comments_assignment_id_comparison_assignments'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparison_comments'))
    )
    op.create_table('comparison_judgements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('choice', sa.String(length=16), nullable=False),
    sa.Column('created_at', studyapp.db.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', studyapp.db.base.UTCDateTime(), nullable=False),
    sa.Column('revisions', sa.Integer(), nullable=False),
    sa.CheckConstraint("choice IN ('A', 'B', 'equivalent')", name=op.f('ck_comparison_judgements_choice_code')),
    sa.ForeignKeyConstraint(['assignment_id'], ['comparison_assignments.id'], name=op.f('fk_comparison_judgements_assignment_id_comparison_assignments'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparison_judgements')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_comparison_judgements_assignment_id'))
    )


def downgrade() -> None:
    op.drop_table('comparison_judgements')
    op.drop_table('comparison_comments')
    op.drop_table('comparison_assignments')
    op.drop_table('comparison_submissions')
    op.drop_table('comparison_pairs')
    op.drop_table('comparison_sets')
