"""A coordinator in a real browser: creates a study, imports real DICOM, adds a reader, generates the design,
and downloads the reads CSV; a reader's account is refused the coordinator handlers."""

import pandas as pd

from studyapp.db.models import ROLE_COORDINATOR
from studyapp.services import accounts, studies
from tests.browser import sign_in


def _coordinator_only(session):
    accounts.add_user(session, "coord", "coordinator-password", role=ROLE_COORDINATOR)


def test_coordinator_sets_up_study_and_exports(serve_app, browser, shared_data, tmp_path):
    app = serve_app(_coordinator_only)
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    assert page.get_by_role("tab", name="Reading").count() == 0

    page.get_by_text("New study").click()
    page.get_by_label("Study name").fill("Browser study")
    page.get_by_label("Normal template (starting text of arm 'template')").fill("FINDINGS: normal. IMPRESSION: normal.")
    page.get_by_role("button", name="Create study").click()
    page.wait_for_selector("#coord-status >> text=Created study", timeout=30_000)

    page.get_by_text("Import DICOM folder").click()
    page.get_by_label("Folder on the server (searched recursively)").fill(str(shared_data / "dicom" / "cxr"))
    page.get_by_role("button", name="Import", exact=True).click()
    page.wait_for_selector("#coord-status >> text=4 imported", timeout=60_000)

    with app.sessions() as session:
        keys = [case.case_key for case in studies.get_study(session, "Browser study").cases]
    drafts_csv = tmp_path / "drafts.csv"
    pd.DataFrame([{"case_key": key, "arm": arm, "text": f"{arm} draft of {key}", "source": f"{arm}-source"}
                  for key in keys for arm in ("llm", "model")]).to_csv(drafts_csv, index=False)
    page.get_by_text("Drafts and template").click()
    page.locator("#coord-drafts-file input[type=file]").set_input_files(str(drafts_csv))
    page.get_by_role("button", name="Import drafts").click()
    page.wait_for_selector("#coord-status >> text=Imported 8", timeout=30_000)

    page.get_by_text("Readers and assignment").click()
    page.get_by_label("Username").fill("reader9")
    page.get_by_label("Password (at least 8 characters)").fill("reader-nine-password")
    page.get_by_role("button", name="Add account (readers join the selected study)").click()
    page.wait_for_selector("#coord-status >> text=Reader of Browser study", timeout=30_000)
    page.get_by_label("Seed (recorded with the design)").fill("5")
    page.get_by_label("Cases per reader (0: all)").fill("3")
    page.get_by_role("button", name="Generate balanced assignment").click()
    page.wait_for_selector("#coord-status >> text=seed 5", timeout=30_000)
    page.wait_for_function("() => document.querySelector('#coord-progress').innerText.includes('reader9')",
                           timeout=30_000)

    page.locator("#coord-export").click()
    link = page.locator("#coord-export-file a").first
    link.wait_for(timeout=30_000)
    with page.expect_download() as download:
        link.click()
    path = tmp_path / "downloaded.csv"
    download.value.save_as(path)
    reads = pd.read_csv(path)
    assert len(reads) == 3 and set(reads.reader) == {"reader9"}
    assert set(reads.arm) == {"template", "llm", "model"}
    assert set(reads.draft_source) == {"normal template", "llm-source", "model-source"}
    with app.sessions() as session:
        study = studies.get_study(session, "Browser study")
        assert study.seed == 5 and study.template_text.startswith("FINDINGS")
    context.close()


def _two_studies(session):
    accounts.add_user(session, "coord", "coordinator-password", role=ROLE_COORDINATOR)
    alpha = studies.create_study(session, "Alpha", template_text="normal")
    studies.create_study(session, "Beta", template_text="normal")
    accounts.enroll_reader(session, alpha, accounts.add_user(session, "reader1", "reader-one-password"))
    accounts.add_user(session, "reader2", "reader-two-password")


def _input_value(page, selector: str) -> str:
    return page.locator(f"{selector} input").input_value()


def test_coordinator_tabs_share_one_study_choice(serve_app, browser):
    """The study picked in one coordinator tab is the one the Comparison results and Analysis tabs show, and back;
    the Analysis tab clears results of the study it showed before."""
    app = serve_app(_two_studies)
    page = browser.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    assert _input_value(page, "#coord-study") == "Alpha"
    page.get_by_text("Readers and assignment").click()
    page.locator("#coord-study input").click()
    page.get_by_role("option", name="Beta").click()
    page.wait_for_selector("#coord-readers >> text=Beta has no readers yet", timeout=30_000)

    page.get_by_role("tab", name="Analysis").click()
    page.wait_for_function("() => document.querySelector('#analysis-study input').value === 'Beta'", timeout=30_000)
    page.get_by_role("tab", name="Comparison results").click()
    page.wait_for_function("() => document.querySelector('#cmp-coord-study input').value === 'Beta'", timeout=30_000)
    page.locator("#cmp-coord-study input").click()
    page.get_by_role("option", name="Alpha").click()
    page.get_by_role("tab", name="Analysis").click()
    page.wait_for_function("() => document.querySelector('#analysis-study input').value === 'Alpha'", timeout=30_000)
    page.get_by_role("tab", name="Coordinator").click()
    page.wait_for_selector("#coord-readers >> text=Readers of Alpha (1): reader1", timeout=30_000)
    assert _input_value(page, "#coord-study") == "Alpha"
    page.close()


def test_coordinator_adds_an_existing_reader_and_sees_readable_progress(serve_app, browser):
    app = serve_app(_two_studies)
    page = browser.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_text("Readers and assignment").click()
    page.wait_for_selector("#coord-readers >> text=Readers of Alpha (1): reader1", timeout=30_000)
    page.locator("#coord-add-existing").click()  # nothing chosen: refused, nothing changes
    page.wait_for_selector("text=choose a reader account first", timeout=30_000)

    page.locator("#coord-existing-reader input").click()
    assert page.get_by_role("option", name="reader1").count() == 0  # already a reader of Alpha
    page.get_by_role("option", name="reader2").click()
    page.locator("#coord-add-existing").click()
    page.wait_for_selector("#coord-status >> text=reader2 is a reader of Alpha", timeout=30_000)
    page.wait_for_selector("#coord-readers >> text=Readers of Alpha (2): reader1, reader2", timeout=30_000)
    with app.sessions() as session:
        assert [u.username for u in accounts.study_readers(session, studies.get_study(session, "Alpha"))] == [
            "reader1", "reader2"]
        assert accounts.study_readers(session, studies.get_study(session, "Beta")) == []

    headers = page.locator("#coord-progress").inner_text()
    assert "In progress" in headers and "Practice cases submitted" in headers and "Active minutes" in headers
    assert "in_progress" not in headers and "practice_submitted" not in headers
    page.get_by_role("tab", name="Per case").click()
    page.wait_for_function("() => document.querySelector('#coord-case-progress').innerText.includes('Case key')",
                           timeout=30_000)
    cases = page.locator("#coord-case-progress").inner_text()
    assert "Submitted (llm)" in cases and "Median active seconds" in cases and "submitted_" not in cases
    page.close()
