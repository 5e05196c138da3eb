"""A finished reader study built through the services, for the archive tests: the real chest radiographs (one a
practice case), drafts from named sources, three readers who open, autosave and submit with answers (one case
left in progress), a blinded comparison set judged, commented and submitted."""

import csv
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from studyapp.services import accounts, comparisons, design, drafts, ingest, judging, practice, reading, studies

TEMPLATE = "FINDINGS: Normal chest.\nIMPRESSION: No acute disease."
#: Draft sources per arm: names that appear nowhere else, so a blinded archive can be searched for them.
SOURCES = {"llm": "gpt-4o-2024-08-06-run17", "model": "medversa-checkpoint-0042"}
DESIGN_SEED = 424242
SET_SEED = 313131
READERS = ("ada", "ben", "cy")
PASSWORD = "correct horse battery staple 42"
FINDINGS = ["Mild cardiomegaly.", "Small left effusion.", "Right lower lobe opacity, pneumonia possible.",
            "No pneumothorax.", "Degenerative changes of the spine."]


def build_finished_study(session: Session, name: str, cxr_folder: Path, tmp_path: Path):
    """Create and run study ``name``; returns the ``ReaderStudy``."""
    study = studies.create_study(session, name, template_text=TEMPLATE, seed=0)
    assert ingest.import_folder(session, study, cxr_folder).counts["failed"] == 0
    drafts_csv = tmp_path / f"{name}-drafts.csv"
    with drafts_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case_key", "arm", "text", "source"])
        writer.writerows([c.case_key, arm, f"FINDINGS: {FINDINGS[i % 5]} ({arm})\nIMPRESSION: {FINDINGS[(i + 1) % 5]}",
                          source] for i, c in enumerate(study.cases) for arm, source in SOURCES.items())
    assert drafts.import_drafts(session, study, drafts_csv).errors == []
    drafts.set_template(session, study, TEMPLATE)
    assert practice.set_practice(session, study, [(0, study.cases[0].case_key)]).errors == []
    readers = [accounts.add_user(session, username, PASSWORD, display_name=username.title()) for username in READERS]
    for reader in readers:
        accounts.enroll_reader(session, study, reader)
    design.generate_assignments(session, study, seed=DESIGN_SEED, cases_per_reader=3)
    for r, reader in enumerate(readers):
        for j, item in enumerate(reading.worklist(session, reader, study)):
            screen = reading.open_case(session, reader, item.assignment_id)
            report = reading.own_assignment(session, reader, item.assignment_id).report
            report.opened_at -= timedelta(seconds=600)  # the reader opened it ten minutes ago
            session.flush()
            seconds = 40.0 + 17 * r + 9 * j + (r * j) % 5
            text = screen.text + f"\nAddendum: {FINDINGS[(r + j) % 5]}"
            reading.autosave(session, reader, item.assignment_id, text, seconds / 2)
            if (r, j) == (2, 3):
                continue  # left in progress
            reading.submit(session, reader, item.assignment_id, text + " Reviewed.", seconds,
                           {"confidence": 1 + (r + j) % 5, "mental_demand": 1 + (r * 2 + j) % 5})
    comparison_set = comparisons.create_comparison_set(session, study, "second look", "draft:llm",
                                                       "draft:model", "draft:model", seed=SET_SEED,
                                                       readers_per_pair=2)
    comparisons.assign_readers(session, comparison_set)
    for r, reader in enumerate(readers):
        pairs = judging.blinded_pairs(session, reader, comparison_set.id)
        for k, pair in enumerate(pairs):
            judging.save_judgement(session, reader, pair.pair_id, ("A", "B", "equivalent")[(r + k) % 3])
        if pairs:
            judging.add_comment(session, reader, pairs[0].pair_id, 2, "laterality", side="A", start=0, end=8)
            if r < 2:
                judging.submit_comparison_set(session, reader, comparison_set.id)
    session.flush()
    return study
