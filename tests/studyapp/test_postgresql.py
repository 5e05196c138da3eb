"""The same schema and a whole reading on a real PostgreSQL server: migrations, UTC timestamps, JSON Likert
scales, unique constraints and the reads export."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from studyapp.db.base import Base
from studyapp.db.models import Assignment, Report
from studyapp.db.session import make_engine, open_database
from studyapp.services import accounts, design, drafts, export, ingest, reading, studies


def test_migrations_and_a_reading_on_postgresql(postgresql_url, shared_data, tmp_path):
    sessions = open_database(postgresql_url)
    with make_engine(postgresql_url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    with sessions.begin() as s:
        study = studies.create_study(s, "PG study", template_text="FINDINGS: normal.")
        assert ingest.import_folder(s, study, shared_data / "dicom" / "cxr").counts["imported"] == 4
        drafts_csv = tmp_path / "drafts.csv"
        drafts_csv.write_text("case_key,arm,text,source\n" + "".join(
            f'"{c.case_key}",{arm},"{arm} draft",{arm}-src\n' for c in study.cases for arm in ("llm", "model")))
        assert drafts.import_drafts(s, study, drafts_csv).errors == []
        drafts.set_template(s, study, study.template_text)
        accounts.enroll_reader(s, study, accounts.add_user(s, "pg-reader", "pg-reader-password"))
        design.generate_assignments(s, study, seed=3, cases_per_reader=3)
    with sessions.begin() as s:
        reader = accounts.get_user(s, "pg-reader")
        first = reading.worklist(s, reader, studies.get_study(s, "PG study"))[0].assignment_id
        reading.open_case(s, reader, first)
        reading.autosave(s, reader, first, "Édition: épanchement pleural gauche.", 1.0)
        reading.submit(s, reader, first, "Édition: épanchement pleural gauche.", 1.0,
                       {"confidence": 5, "mental_demand": 1})
    with sessions() as s:
        report = s.query(Report).one()
        assert report.submitted_at.tzinfo is not None and report.submitted_at >= report.opened_at
        assert {r.question: r.definition["max"] for r in report.answers} == {"confidence": 5, "mental_demand": 5}
        row = export.reads_table(s, studies.get_study(s, "PG study")).query("status == 'submitted'").iloc[0]
        assert row.final_text == "Édition: épanchement pleural gauche." and row.confidence == 5
        taken = s.query(Assignment).filter_by(reader_id=report.assignment.reader_id).first()
    with pytest.raises(IntegrityError):  # a reader reads a case at most once, enforced by the database
        with sessions.begin() as s:
            s.add(Assignment(study_id=taken.study_id, reader_id=taken.reader_id, case_id=taken.case_id,
                             arm_id=taken.arm_id, position=99))
