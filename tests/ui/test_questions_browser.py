"""In a real browser: a study with a custom question set (Likert 0-3, single and multiple choice, yes/no, number
with unit, free text). The coordinator sees the set; a reader is refused while a required question is open, then
answers every kind and submits; the next case comes with a fresh, empty form; the export has one column per
question; nothing the reader's browser received names an arm or a draft source."""

import pandas as pd
from sqlalchemy import select

from studyapp.db.models import ROLE_COORDINATOR, QuestionAnswer
from studyapp.services import accounts, design, drafts, export, ingest, questions, studies
from tests.browser import sign_in

SOURCES = {"llm": "gpt-4o-2024-08-06-secret", "model": "medversa-7b-ckpt-secret"}
PASSWORD = "reader-one-password"
QUESTIONS = [
    {"code": "quality", "kind": "likert", "question": "Rate the image quality", "min": 0, "max": 3,
     "labels": ["non-diagnostic", "poor", "fair", "good"]},
    {"code": "main_finding", "kind": "single_choice", "question": "Main finding",
     "choices": ["none", "effusion", "pneumothorax"]},
    {"code": "devices", "kind": "multiple_choice", "question": "Devices seen", "choices": ["tube", "line", "pacer"],
     "required": False},
    {"code": "follow_up", "kind": "yes_no", "question": "Recommend follow-up imaging"},
    {"code": "effusion_depth", "kind": "number", "question": "Effusion depth", "unit": "mm", "required": False},
    {"code": "remarks", "kind": "text", "question": "Remarks for the coordinator", "required": False},
]


def _fill(shared_data, tmp_path):
    def fill(session):
        study = studies.create_study(session, "Custom questions", template_text="TEMPLATE: normal chest.")
        report = ingest.import_folder(session, study, shared_data / "dicom" / "cxr")
        assert report.counts["failed"] == 0, report.summary()
        rows = [{"case_key": c.case_key, "arm": arm, "text": f"Draft {arm} for the case.", "source": source}
                for c in study.cases for arm, source in SOURCES.items()]
        pd.DataFrame(rows).to_csv(tmp_path / "drafts.csv", index=False)
        assert drafts.import_drafts(session, study, tmp_path / "drafts.csv").errors == []
        drafts.set_template(session, study, study.template_text)
        questions.set_questions(session, study, QUESTIONS)
        for name, password in (("reader1", PASSWORD), ("reader2", "reader-two-password"), ("reader3", "reader-3-pass")):
            accounts.enroll_reader(session, study, accounts.add_user(session, name, password))
        accounts.add_user(session, "coord", "coordinator-password", role=ROLE_COORDINATOR)
        design.generate_assignments(session, study, seed=3, cases_per_reader=3)

    return fill


def test_reader_answers_a_custom_question_set_and_export_has_a_column_per_question(serve_app, browser, shared_data,
                                                                                  tmp_path):
    app = serve_app(_fill(shared_data, tmp_path))

    coordinator = browser.new_context().new_page()
    sign_in(coordinator, app.url, "coord", "coordinator-password")
    coordinator.get_by_text("Questions after each report").click()
    coordinator.wait_for_selector("#coord-questions >> text=Effusion depth", timeout=30_000)
    listed = coordinator.locator("#coord-questions").inner_text()
    assert "Likert 0-3: non-diagnostic, poor, fair, good" in listed and "number (mm); optional" in listed
    assert listed.index("quality") < listed.index("main_finding") < listed.index("remarks")

    mark = app.sent.mark()  # from here on: only the reader's traffic
    page = browser.new_context().new_page()
    sign_in(page, app.url, "reader1", PASSWORD)
    page.locator("#worklist label").first.wait_for(timeout=30_000)
    page.locator("#worklist label").first.click()
    page.wait_for_function("() => document.querySelector('#report-editor textarea').value.length > 0", timeout=30_000)
    page.locator("#report-editor textarea").press("Control+End")
    page.locator("#report-editor textarea").type(" Small left effusion.")
    page.locator("#finish-report").click()
    form = page.locator("#likert-panel")
    form.locator("#question-remarks").wait_for(timeout=30_000)
    labels = form.locator("label, span[data-testid='block-info']").all_inner_texts()
    shown = [q["question"] for q in QUESTIONS if any(q["question"] in text for text in labels)]
    assert shown == [q["question"] for q in QUESTIONS]  # every question, in the study's order
    assert page.get_by_text("Effusion depth (optional) (mm)").count() == 1

    page.locator("#question-quality").get_by_text("2 - fair").click()
    page.locator("#confirm-submit").click()  # main finding and follow-up are required
    page.wait_for_selector("#submit-message >> text=Please answer: Main finding Recommend follow-up imaging",
                           timeout=10_000)
    page.locator("#question-main_finding").get_by_text("effusion", exact=True).click()
    page.locator("#question-devices").get_by_text("line", exact=True).click()
    page.locator("#question-devices").get_by_text("tube", exact=True).click()
    page.locator("#question-follow_up").get_by_text("yes", exact=True).click()
    page.locator("#question-effusion_depth input").fill("14.5")
    page.locator("#question-remarks textarea").fill("Compare with prior.")
    page.locator("#confirm-submit").click()
    page.wait_for_selector("#save-status >> text=Report submitted", timeout=30_000)

    # the next case opened: its form is fresh and empty
    page.locator("#finish-report").click()
    page.locator("#question-remarks textarea").wait_for(timeout=30_000)
    assert page.locator("#question-remarks textarea").input_value() == ""
    assert page.locator("#question-quality input:checked").count() == 0
    assert page.locator("#question-devices input:checked").count() == 0

    with app.sessions() as session:
        stored = {a.question: a.value for a in session.scalars(select(QuestionAnswer))}
        table = export.reads_table(session, studies.get_study(session, "Custom questions"))
    assert stored == {"quality": 2, "main_finding": "effusion", "devices": ["tube", "line"], "follow_up": True,
                      "effusion_depth": 14.5, "remarks": "Compare with prior."}
    assert list(table.columns) == [*export.READS_COLUMNS, *(q["code"] for q in QUESTIONS)]
    row = table[(table.reader == "reader1") & (table.status == "submitted")].iloc[0]
    assert (row.quality, row.main_finding, row.devices, row.follow_up, row.effusion_depth, row.remarks) == (
        2, "effusion", "tube; line", "yes", 14.5, "Compare with prior.")

    # blinding: what the reader's browser received names no arm and no draft source
    everything = app.sent.text_since(mark) + page.content()
    assert "Rate the image quality" in everything
    for secret in [*SOURCES.values(), studies.PAPER_ARMS["llm"], studies.PAPER_ARMS["model"], "normal template"]:
        assert secret not in everything, f"{secret!r} reached the reader's browser"
