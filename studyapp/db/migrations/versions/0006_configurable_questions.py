"""configurable post-report questions: reader_studies.questions replaces likert_scales, question_answers replaces
likert_responses (existing studies get their two Likert items as questions, existing answers are kept)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 16:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_ORDER = ('confidence', 'mental_demand')


def _question(code: str, scale: dict) -> dict:
    """A Likert scale of revision 0005 ({min, max, question, labels}) as a question definition."""
    question = {'code': code, 'kind': 'likert', 'question': scale.get('question') or code, 'required': True,
                'min': int(scale['min']), 'max': int(scale['max'])}
    if scale.get('labels'):
        question['labels'] = list(scale['labels'])
    return question


def _ordered(scales: dict) -> list:
    return sorted(scales, key=lambda code: (_ORDER.index(code) if code in _ORDER else len(_ORDER), code))


def upgrade() -> None:
    bind = op.get_bind()
    studies_old = sa.table('reader_studies', sa.column('id', sa.Integer), sa.column('likert_scales', sa.JSON),
                           sa.column('questions', sa.JSON))
    likert = sa.table('likert_responses', sa.column('id', sa.Integer), sa.column('report_id', sa.Integer),
                      sa.column('question', sa.String), sa.column('value', sa.Integer), sa.column('scale', sa.JSON))
    answers = op.create_table('question_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('question', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_question_answers_report_id_reports'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_question_answers')),
    sa.UniqueConstraint('report_id', 'question', name=op.f('uq_question_answers_report_id_question'))
    )
    # plain ALTER TABLE (not a batch copy of reader_studies, which SQLite refuses while rows refer to it)
    op.add_column('reader_studies', sa.Column('questions', sa.JSON(), server_default='[]', nullable=False))
    for study_id, scales in bind.execute(sa.select(studies_old.c.id, studies_old.c.likert_scales)).all():
        scales = scales or {}
        bind.execute(studies_old.update().where(studies_old.c.id == study_id).values(
            questions=[_question(code, scales[code]) for code in _ordered(scales)]))
    rows = bind.execute(sa.select(likert.c.id, likert.c.report_id, likert.c.question, likert.c.value,
                                  likert.c.scale).order_by(likert.c.id)).all()
    if rows:
        op.bulk_insert(answers, [{'id': r.id, 'report_id': r.report_id, 'question': r.question, 'value': r.value,
                                  'definition': _question(r.question, r.scale or {})} for r in rows])
    op.drop_column('reader_studies', 'likert_scales')
    op.drop_table('likert_responses')


def downgrade() -> None:
    """Back to Likert scales: only Likert questions and their answers survive (other kinds have no place there)."""
    bind = op.get_bind()
    likert = op.create_table('likert_responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('question', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('scale', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_likert_responses_report_id_reports'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_likert_responses')),
    sa.UniqueConstraint('report_id', 'question', name=op.f('uq_likert_responses_report_id_question'))
    )
    studies = sa.table('reader_studies', sa.column('id', sa.Integer), sa.column('likert_scales', sa.JSON),
                       sa.column('questions', sa.JSON))
    answers = sa.table('question_answers', sa.column('id', sa.Integer), sa.column('report_id', sa.Integer),
                       sa.column('question', sa.String), sa.column('value', sa.JSON),
                       sa.column('definition', sa.JSON))
    op.add_column('reader_studies', sa.Column('likert_scales', sa.JSON(), server_default='{}', nullable=False))

    def scale(q):
        return {k: q[k] for k in ('min', 'max', 'question', 'labels') if k in q}

    for study_id, questions in bind.execute(sa.select(studies.c.id, studies.c.questions)).all():
        bind.execute(studies.update().where(studies.c.id == study_id).values(
            likert_scales={q['code']: scale(q) for q in questions or [] if q.get('kind') == 'likert'}))
    rows = [r for r in bind.execute(sa.select(answers).order_by(answers.c.id)).all()
            if (r.definition or {}).get('kind') == 'likert']
    if rows:
        op.bulk_insert(likert, [{'id': r.id, 'report_id': r.report_id, 'question': r.question, 'value': r.value,
                                 'scale': scale(r.definition)} for r in rows])
    op.drop_column('reader_studies', 'questions')
    op.drop_table('question_answers')
