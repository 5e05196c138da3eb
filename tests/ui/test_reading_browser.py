"""End to end in a real browser: a reader signs in, opens a real chest DICOM case, edits the draft, reloads
mid-edit and finds the text, submits with Likert answers; the row is in the exported CSV; nothing the
reader's browser received names an arm or a draft source."""

import csv

import pandas as pd
from sqlalchemy import select

from studyapp.db.models import QuestionAnswer, Report
from studyapp.services import accounts, design, drafts, export, ingest, studies
from tests.browser import sign_in

SOURCES = {"llm": "gpt-4o-2024-08-06-secret", "model": "medversa-7b-ckpt-secret"}
ARM_LABELS = {"template": "Normal template arm", "llm": "External LLM arm", "model": "MedVersa arm"}
PASSWORD = "reader-one-password"


def _fill(shared_data, tmp_path):
    def fill(session):
        study = studies.create_study(session, "CXR study", arms=ARM_LABELS, template_text="TEMPLATE: normal chest.")
        report = ingest.import_folder(session, study, shared_data / "dicom" / "cxr")
        assert report.counts["failed"] == 0, report.summary()
        drafts_csv = tmp_path / "drafts.csv"
        with drafts_csv.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["case_key", "arm", "text", "source"])
            for case in study.cases:
                for arm, source in SOURCES.items():
                    writer.writerow([case.case_key, arm, f"Draft {arm} text for {case.case_key}.", source])
        result = drafts.import_drafts(session, study, drafts_csv)
        assert result.errors == []
        drafts.set_template(session, study, study.template_text)
        for name, password in (("reader1", PASSWORD), ("reader2", "reader-two-password"), ("reader3", "reader-3-password")):
            accounts.enroll_reader(session, study, accounts.add_user(session, name, password))
        design.generate_assignments(session, study, seed=7, cases_per_reader=3)

    return fill


def test_reader_edits_reloads_submits_and_row_is_exported(serve_app, browser, shared_data, tmp_path):
    app = serve_app(_fill(shared_data, tmp_path))
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, app.url, "reader1", PASSWORD)

    worklist = page.locator("#worklist label")
    worklist.first.wait_for(timeout=30_000)
    assert worklist.count() == 3
    first_label = worklist.first.inner_text()
    assert "to do" in first_label
    worklist.first.click()
    editor = page.locator("#report-editor textarea")
    page.wait_for_function("() => document.querySelector('#report-editor textarea').value.length > 0", timeout=30_000)
    # the case is open and timed: the worklist says so at once
    page.wait_for_function("() => document.querySelector('#worklist label').innerText.includes('in progress')",
                           timeout=10_000)
    draft_text = editor.input_value()
    assert draft_text.startswith(("Draft ", "TEMPLATE"))
    # the browser viewer shows the DICOM image
    page.wait_for_selector('.sv-root:visible[data-status="ready"]', timeout=30_000)

    editor.click()
    editor.press("Control+End")
    editor.type(" Small left pleural effusion.")
    page.wait_for_selector("#save-status >> text=Saved", timeout=30_000)

    with app.sessions() as session:
        stored = session.scalars(select(Report.active_seconds)).one()
    assert stored > 0  # the browser's active time reached the database with the autosave

    page.reload()
    page.wait_for_selector("#signed-in-as >> text=Signed in as", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#report-editor textarea').value.includes('Small left pleural effusion.')",
        timeout=30_000,
    )
    assert editor.input_value() == draft_text + " Small left pleural effusion."
    # the timer resumes from the stored active time instead of restarting at zero
    page.wait_for_function(f"() => parseFloat(document.querySelector('#case-timer').dataset.seconds) >= {stored}",
                           timeout=10_000)

    # the timer pauses while the tab is hidden
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_function("() => document.querySelector('#case-timer').dataset.paused === 'true'", timeout=5_000)
    hidden_at = float(page.locator("#case-timer").get_attribute("data-seconds"))
    page.wait_for_timeout(1500)
    assert float(page.locator("#case-timer").get_attribute("data-seconds")) == hidden_at
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")

    editor.press("Control+End")
    editor.type(" No pneumothorax.")
    page.locator("#finish-report").click()
    # confirming without the Likert answers is refused with a message; the screen stays usable
    before_confirm = float(page.locator("#case-timer").get_attribute("data-seconds"))
    page.locator("#confirm-submit").click()
    page.wait_for_selector("#submit-message >> text=Please answer", timeout=10_000)
    page.wait_for_timeout(300)  # the timer restart that follows the refused submission has run
    assert float(page.locator("#case-timer").get_attribute("data-seconds")) >= before_confirm  # not reset
    assert page.locator("#report-editor textarea").input_value().endswith("No pneumothorax.")
    assert page.locator('.sv-root:visible[data-status="ready"]').count() == 1
    assert page.get_by_text("Error", exact=True).count() == 0  # no failed-output overlays
    page.locator("#question-confidence").get_by_text("4 -").click()
    page.locator("#question-mental_demand").get_by_text("2 -").click()
    page.locator("#confirm-submit").click()
    page.wait_for_selector("#save-status >> text=Report submitted", timeout=30_000)
    # the refusal belonged to the first confirm: after the successful one no warning is left on screen
    page.wait_for_timeout(500)
    assert page.get_by_text("Please answer").count() == 0
    assert page.get_by_text("Not submitted").count() == 0
    page.screenshot(path=str(tmp_path.parent / "after-submit.png"), full_page=True)
    final_text = draft_text + " Small left pleural effusion. No pneumothorax."

    out = tmp_path / "reads.csv"
    with app.sessions() as session:
        export.export_reads_csv(session, studies.get_study(session, "CXR study"), out)
    reads = pd.read_csv(out)
    row = reads[(reads.reader == "reader1") & (reads.status == "submitted")]
    assert len(row) == 1
    row = row.iloc[0]
    assert row.final_text == final_text
    assert first_label.startswith(f"Case {row.position:02d} · ") and row.case_key not in first_label
    assert (row.confidence, row.mental_demand) == (4, 2)
    with app.sessions() as session:  # each answer keeps the scale it was given on
        stored = {a.question: a.definition["max"] for a in session.scalars(select(QuestionAnswer))}
    assert stored == {"confidence": 5, "mental_demand": 5}
    assert row.active_seconds > 0
    assert row.chars_changed == len(" Small left pleural effusion. No pneumothorax.")
    assert row.draft_source == (SOURCES.get(row.arm) or "normal template")

    # blinding: the page and every byte the server sent to the reader are free of arm and source names
    everything = app.sent.text_since(0) + page.content()
    assert draft_text in everything  # the capture holds what the app sent
    long_keys = [key for key in reads.case_key if len(key) >= 10]  # short ones ("2") occur in any page
    for secret in [*SOURCES.values(), *ARM_LABELS.values(), "normal template", *long_keys]:
        assert secret not in everything, f"{secret!r} reached the reader's browser"
    context.close()


def test_reader_cannot_see_coordinator_tab_or_others_cases(serve_app, browser, shared_data, tmp_path):
    app = serve_app(_fill(shared_data, tmp_path))
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, app.url, "reader2", "reader-two-password")
    page.locator("#worklist label").first.wait_for(timeout=30_000)
    assert page.get_by_role("tab", name="Coordinator").count() == 0
    assert page.locator("#coord-export").count() == 0 or not page.locator("#coord-export").is_visible()
    context.close()
