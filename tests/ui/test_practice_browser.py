"""In the browser: the practice case comes first in the worklist, labelled "practice" there and on the case, and a
counted case is refused until the practice case is submitted; the coordinator picks practice cases from a
searchable list, and changing them once an assignment exists asks first."""

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


def test_marking_a_practice_case_after_the_assignment_asks_first(serve_app, browser, shared_data, tmp_path):
    from sqlalchemy import func, select

    from studyapp.db.models import ROLE_COORDINATOR, Assignment, Case

    def fill(s):
        study = chest_study_with_drafts(s, "Practice study", shared_data / "dicom" / "cxr", tmp_path)
        accounts.enroll_reader(s, study, accounts.add_user(s, "reader1", PASSWORD))
        accounts.add_user(s, "coord", "coordinator-password", role=ROLE_COORDINATOR)
        design.generate_assignments(s, study, seed=2, cases_per_reader=3)

    app = serve_app(fill)
    with app.sessions() as s:
        key = s.scalars(select(Case.case_key).order_by(Case.id)).first()

    def stored() -> tuple[int, bool]:
        with app.sessions() as s:
            return (s.scalar(select(func.count(Assignment.id))),
                    s.scalar(select(Case.is_practice).where(Case.case_key == key)))

    page = browser.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_text("Practice cases", exact=True).click()
    # the case is picked from the study's cases, searched by part of its key; each choice names modality and key
    page.locator("#coord-practice-pick input").fill(key[-8:])
    option = page.get_by_role("option").filter(has_text=key)
    option.wait_for(timeout=30_000)
    assert page.get_by_role("option").count() == 1 and option.inner_text().startswith("CR ")
    option.click()
    page.locator("#coord-mark-practice").click()
    # the question appears next to the buttons, with what would be removed; nothing changed
    page.wait_for_selector("#coord-practice-status >> text=Not changed yet", timeout=60_000)
    assert "3 assignment(s) of 1 reader(s)" in page.locator("#coord-practice-status").inner_text()
    assert stored() == (3, False)
    page.locator("#coord-practice-confirm input").check()
    page.locator("#coord-mark-practice").click()
    page.wait_for_selector("#coord-practice-status >> text=The 3 assignments of the old design were removed",
                           timeout=60_000)
    assert "Not changed yet" not in page.locator("#coord-practice-status").inner_text()
    assert stored() == (0, True)
    assert not page.locator("#coord-practice-confirm input").is_checked()
    assert "No assignment yet" in page.locator("#coord-progress-note").inner_text()  # why the tables are empty
    page.locator("#coord-practice-pick input").fill(key[-8:])  # the choice now says it is a practice case
    assert "· practice · " + key in page.get_by_role("option").filter(has_text=key).inner_text()
    page.keyboard.press("Escape")

    # generating the design: the first time at once, again only after a confirmation that names what it replaces
    page.get_by_text("Readers and assignment", exact=True).click()
    page.locator("#coord-assign").click()
    page.wait_for_selector("#coord-assign-status >> text=Assignments generated", timeout=60_000)
    assert stored()[0] == 4  # the practice case and three counted cases
    assert page.locator("#coord-progress-note").inner_text().strip() == ""
    page.locator("#coord-assign").click()
    page.wait_for_selector("#coord-assign-status >> text=Not generated yet", timeout=60_000)
    assert "4 assignment(s) of 1 reader(s)" in page.locator("#coord-assign-status").inner_text()
    page.locator("#coord-assign-confirm input").check()
    page.locator("#coord-assign").click()
    page.wait_for_function("() => document.querySelector('#coord-assign-status').innerText.includes("
                           "'Assignments generated')", timeout=60_000)
    assert stored()[0] == 4 and not page.locator("#coord-assign-confirm input").is_checked()
    page.close()
