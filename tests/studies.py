"""A ready reader study for tests that drive the app: the real chest radiographs with drafts for every arm."""

import csv
from pathlib import Path

from sqlalchemy.orm import Session

from studyapp.services import drafts, ingest, studies

TEMPLATE = "TEMPLATE: normal chest."


def chest_study_with_drafts(session: Session, name: str, cxr_folder: Path, tmp_path: Path):
    """Create study ``name`` from the DICOM files in ``cxr_folder`` with the normal template and one
    ``"Draft {arm} for {case_key}."`` per case for the ``llm`` and ``model`` arms; returns the ``ReaderStudy``."""
    study = studies.create_study(session, name, template_text=TEMPLATE)
    assert ingest.import_folder(session, study, cxr_folder).counts["failed"] == 0
    drafts_csv = tmp_path / "drafts.csv"
    with drafts_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case_key", "arm", "text", "source"])
        writer.writerows([c.case_key, arm, f"Draft {arm} for {c.case_key}.", arm] for c in study.cases
                         for arm in ("llm", "model"))
    assert drafts.import_drafts(session, study, drafts_csv).errors == []
    drafts.set_template(session, study, study.template_text)
    return study
