"""The coordinator tab's PACS panel in a real browser against the real Orthanc: wrong password refused with a
message, a search by accession-number CSV shows the hits, the chosen study is imported as a case with its PACS
origin, and an SR export without submitted reports says so."""

from sqlalchemy import select

from studyapp.db.models import ROLE_COORDINATOR, Case
from studyapp.services import accounts, studies
from tests.browser import sign_in
from tests.pacs.conftest import PASSWORD, USER


def _setup(session):
    accounts.add_user(session, "coord", "coordinator-password", role=ROLE_COORDINATOR)
    studies.create_study(session, "PACS study")


def test_coordinator_searches_and_imports_from_the_pacs(orthanc, serve_app, browser, tmp_path):
    app = serve_app(_setup)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_text("PACS (DICOMweb): import studies, send reports back").click()
    page.get_by_label("DICOMweb URL", exact=True).fill(orthanc.connection.url)
    page.get_by_label("PACS username (basic auth)", exact=True).fill(USER)
    page.get_by_label("PACS password", exact=True).fill("wrong-password")
    page.get_by_label("Modality (e.g. CR, CT)", exact=True).fill("CT")
    page.locator("#pacs-search").click()
    page.get_by_text("refused the credentials (HTTP 401)").first.wait_for(timeout=30_000)

    accessions = tmp_path / "accessions.csv"
    accessions.write_text("accession_number\nCT-ACC-1\nNOPE-404\n")
    page.get_by_label("PACS password", exact=True).fill(PASSWORD)
    page.get_by_label("Modality (e.g. CR, CT)", exact=True).fill("")
    page.locator("#pacs-accessions input[type=file]").set_input_files(str(accessions))
    page.locator("#pacs-search").click()
    page.wait_for_function("() => (document.querySelector('#pacs-hits')?.innerText || '').includes('CT abdomen')",
                           timeout=30_000)
    assert "no study with accession number 'NOPE-404'" in page.locator("#pacs-result").inner_text()
    assert page.locator("#pacs-chosen input[type=checkbox]").count() == 1
    assert page.locator("#pacs-chosen input[type=checkbox]").is_checked()

    page.locator("#pacs-import").click()
    page.wait_for_function("() => (document.querySelector('#pacs-result')?.innerText || '').includes('20 imported')",
                           timeout=60_000)
    with app.sessions() as session:
        [case] = session.scalars(select(Case)).all()
        assert (case.accession_number, case.pacs_url) == ("CT-ACC-1", orthanc.connection.url)
        assert len(case.series[0].instances) == 20
        assert str(tmp_path / "data" / "pacs") in case.series[0].instances[0].file_path

    page.get_by_label("SR folder on the server", exact=True).fill(str(tmp_path / "sr"))
    page.locator("#pacs-export-sr").click()
    page.get_by_text("has no submitted report to export as DICOM SR").first.wait_for(timeout=30_000)
    assert not (tmp_path / "sr").exists()
    page.close()
