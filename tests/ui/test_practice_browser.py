"""In the browser: the practice case comes first in the worklist, labelled "practice" there and on the case, and a
counted case is refused until the practice case is submitted."""

from studyapp.services import accounts, design, practice
from tests.browser import sign_in
from tests.studies import chest_study_with_drafts

PASSWORD = "practice-reader-password"


def test_practice_case_is_first_and_labelled(serve_app, browser, shared_data, tmp_path):
    def fill(s):
        study = chest_study_with_drafts(s, "Practice study", shared_data / "dicom" / "cxr", tmp_path)
        accounts.enroll_reader(s, study, accounts.add_user(s, "reader1", PASSWORD))
        practice.set_practice(s, study, [(0, study.cases[0].case_key)])
        design.generate_assignments(s, study, seed=2, cases_per_reader=3)

    app = serve_app(fill)
    page = browser.new_page()
    sign_in(page, app.url, "reader1", PASSWORD)
    labels = page.locator("#worklist label")
    labels.first.wait_for(timeout=30_000)
    texts = [labels.nth(i).inner_text() for i in range(labels.count())]
    assert len(texts) == 4 and "practice" in texts[0] and not any("practice" in t for t in texts[1:])
    labels.nth(1).click()  # a counted case first: refused with the reason
    page.get_by_text("read the practice cases first").first.wait_for(timeout=15_000)
    labels.first.click()
    page.wait_for_selector("#clinical-context >> text=PRACTICE CASE", timeout=30_000)
    assert "not counted" in page.locator("#clinical-context").inner_text()
    page.close()
