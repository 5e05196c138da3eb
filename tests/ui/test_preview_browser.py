"""A coordinator previews a reader's reading screen in a real browser: the reader's worklist with neutral labels,
the case's context, the text the reader would find and the questions, read-only; nothing sent for the preview
names an arm or a draft source, and the preview changes nothing (no report opened, nothing logged)."""

from sqlalchemy import select

from studyapp.db.models import ROLE_COORDINATOR, AuditEvent, Report
from studyapp.services import accounts
from tests.browser import sign_in
from tests.ui.test_reading_browser import ARM_LABELS, SOURCES, _fill


def test_coordinator_previews_a_reader_blinded_and_read_only(serve_app, browser, shared_data, tmp_path):
    fill_study = _fill(shared_data, tmp_path)

    def fill(session):
        fill_study(session)
        accounts.add_user(session, "coord", "coordinator-password", role=ROLE_COORDINATOR)

    app = serve_app(fill)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_text("Preview a reader's screen").click()
    mark = app.sent.mark()
    page.locator("#preview-reader input").click()
    page.get_by_role("option", name="reader1").click()
    labels = page.locator("#preview-worklist label")
    labels.first.wait_for(timeout=30_000)
    assert labels.count() == 3
    assert all(text.startswith("Case 0") and "to do" in text for text in labels.all_inner_texts())
    labels.first.click()
    page.wait_for_function("() => document.querySelector('#preview-text textarea').value.length > 0", timeout=30_000)
    text = page.locator("#preview-text textarea")
    assert text.input_value().startswith(("Draft ", "TEMPLATE"))
    assert not text.is_editable()
    assert "Case 01" in page.locator("#preview-context").inner_text()
    assert "How confident are you in your final report?" in page.locator("#preview-questions").inner_text()

    sent = app.sent.text_since(mark)
    assert text.input_value() in sent  # the capture holds what the preview sent
    for secret in [*SOURCES.values(), *ARM_LABELS.values(), "normal template"]:
        assert secret not in sent, f"{secret!r} was sent with the preview"
    with app.sessions() as session:
        assert session.scalars(select(Report)).all() == []  # the reader's case is still unopened
        assert session.scalars(select(AuditEvent).where(AuditEvent.kind.in_(["opened", "resumed"]))).all() == []
    page.close()
