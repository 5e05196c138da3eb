"""In the browser: a coordinator action that would overwrite stored drafts (a drafts file imported with
"Replace", a changed normal template) changes nothing until confirmed; the question, next to the button, says how
many drafts of which arms it would overwrite. New drafts and an unchanged template are stored without asking."""

from sqlalchemy import select

from studyapp.db.models import ROLE_COORDINATOR, Arm, Case, Draft
from studyapp.services import accounts
from tests.browser import sign_in
from tests.studies import TEMPLATE, chest_study_with_drafts


def test_overwriting_drafts_asks_first(serve_app, browser, shared_data, tmp_path):
    def fill(s):
        chest_study_with_drafts(s, "Drafts study", shared_data / "dicom" / "cxr", tmp_path)
        accounts.add_user(s, "coord", "coordinator-password", role=ROLE_COORDINATOR)

    app = serve_app(fill)

    def stored() -> dict[tuple[str, str], str]:
        with app.sessions() as s:
            rows = s.execute(select(Case.case_key, Arm.code, Draft.text).join(Case, Draft.case_id == Case.id)
                             .join(Arm, Draft.arm_id == Arm.id))
            return {(key, arm): text for key, arm, text in rows}

    before = stored()
    keys = sorted({key for key, _ in before})
    replacement = tmp_path / "replacement.csv"
    replacement.write_text("case_key,arm,text,source\n" + "".join(
        f"{key},llm,Second llm draft {key}.,llm-2\n" for key in keys[:2]) + f"{keys[0]},model,Second model.,mv-2\n",
        encoding="utf-8")

    page = browser.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_text("Drafts and template", exact=True).click()
    page.locator("#coord-drafts-file input[type=file]").set_input_files(str(replacement))
    page.locator("#coord-drafts-replace input").check()
    page.locator("#coord-import-drafts").click()
    page.wait_for_selector("#coord-drafts-status >> text=Not imported yet", timeout=60_000)
    assert "overwrites 3 stored draft(s) (llm 2, model 1)" in page.locator("#coord-drafts-status").inner_text()
    assert stored() == before
    page.locator("#coord-drafts-confirm input").check()
    page.locator("#coord-import-drafts").click()
    page.wait_for_selector("#coord-drafts-status >> text=Imported 0, unchanged 0, replaced 3", timeout=60_000)
    after = stored()
    assert after[(keys[0], "model")] == "Second model." and after[(keys[1], "llm")] == f"Second llm draft {keys[1]}."
    assert after[(keys[2], "llm")] == before[(keys[2], "llm")]
    assert not page.locator("#coord-drafts-confirm input").is_checked()

    # the template: saving the same text asks nothing; a new text asks first with the count
    template = page.locator("#coord-template textarea")
    assert template.input_value() == TEMPLATE
    page.locator("#coord-save-template").click()
    page.wait_for_selector(f"#coord-template-status >> text=unchanged {len(keys)}", timeout=60_000)
    template.fill("IMPRESSION: No acute cardiopulmonary process.")
    page.locator("#coord-save-template").click()
    page.wait_for_selector("#coord-template-status >> text=Not saved yet", timeout=60_000)
    assert (f"overwrites {len(keys)} stored draft(s) (template {len(keys)})"
            in page.locator("#coord-template-status").inner_text())
    assert stored()[(keys[0], "template")] == TEMPLATE
    page.locator("#coord-template-confirm input").check()
    page.locator("#coord-save-template").click()
    page.wait_for_selector(f"#coord-template-status >> text=replaced {len(keys)}", timeout=60_000)
    assert {text for (_, arm), text in stored().items() if arm == "template"} == {
        "IMPRESSION: No acute cardiopulmonary process."}
    page.close()
