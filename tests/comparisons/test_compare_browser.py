"""End to end in a real browser (Debian chromium on loopback): a reader judges two pairs of real chest DICOM
cases, comments on a selected passage, reloads, revises one judgement and submits; the CSV the coordinator downloads
holds exactly those judgements, unblinded; nothing the reader's browser received names a source."""

import pandas as pd

from studyapp.db.comparisons import ComparisonAssignment
from studyapp.db.models import ROLE_COORDINATOR
from studyapp.services import accounts, comparisons, ingest, studies
from tests.browser import sign_in

SOURCES = ("radiologist-src-secret", "medversa-src-secret")
PASSWORD = "reader-one-password"
TEXTS = {
    SOURCES[0]: "Findings: Heart size normal. Small left pleural effusion. Impression: small effusion {k}.",
    SOURCES[1]: "Findings: The lungs are clear. No pleural effusion. Impression: no acute disease {k}.",
}


def _fill(shared_data, tmp_path):
    def fill(session):
        study = studies.create_study(session, "CXR comparison")
        report = ingest.import_folder(session, study, shared_data / "dicom" / "cxr")
        assert report.counts["failed"] == 0, report.summary()
        keys = [case.case_key for case in study.cases][:2]
        rows = [{"case_key": key, "source_a_name": SOURCES[i % 2], "text_a": TEXTS[SOURCES[i % 2]].format(k=i),
                 "source_b_name": SOURCES[1 - i % 2], "text_b": TEXTS[SOURCES[1 - i % 2]].format(k=i)}
                for i, key in enumerate(keys)]
        pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
        reader = accounts.add_user(session, "reader1", PASSWORD)
        other = accounts.add_user(session, "reader2", "reader-two-password")
        for user in (reader, other):
            accounts.enroll_reader(session, study, user)
        accounts.add_user(session, "coord", "coordinator-password", role=ROLE_COORDINATOR)
        cset = comparisons.import_comparison_set(session, study, "Round 1", tmp_path / "pairs.csv", SOURCES[1],
                                                 seed=13)
        comparisons.assign_readers(session, cset, readers=[reader])

    return fill


def _drag_select(page, selector: str, start: int, end: int, overshoot: float = 0) -> None:
    """Select characters ``start:end`` of the element's text with a real mouse drag (press, move, release); with
    ``overshoot`` the button is released that many pixels below the last character, as a hasty reader does."""
    boxes = page.evaluate(
        """([selector, start, end]) => {
            const node = document.querySelector(selector).firstChild;
            const at = (offset) => {
                const range = document.createRange();
                range.setStart(node, offset); range.setEnd(node, offset + 1);
                return range.getBoundingClientRect();
            };
            const first = at(start), last = at(end - 1);
            return [first.left + 1, first.top + first.height / 2, last.right - 1, last.top + last.height / 2];
        }""",
        [selector, start, end],
    )
    page.mouse.move(boxes[0], boxes[1])
    page.mouse.down()
    page.mouse.move(boxes[2], boxes[3] + overshoot, steps=8)
    page.mouse.up()


def _choose(page, label: str) -> None:
    page.locator("#compare-choice").get_by_text(label).click()
    page.wait_for_selector("#compare-status >> text=Judgement saved", timeout=30_000)


def test_reader_judges_comments_reloads_revises_submits(serve_app, browser, shared_data, tmp_path):
    app = serve_app(_fill(shared_data, tmp_path))
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, app.url, "reader1", PASSWORD)
    page.get_by_role("tab", name="Comparison").click()
    pairs = page.locator("#compare-pairs label")
    pairs.first.wait_for(timeout=30_000)
    assert pairs.count() == 2
    page.wait_for_selector('.sv-root:visible[data-status="ready"]', timeout=30_000)  # the shared viewer shows the image
    first_b = page.locator("#report-b").inner_text()

    # pair 1: Report A better, then a score-1 comment on a passage selected in Report B by dragging the mouse from
    # "Impression:" to the end of the report, released below it (outside the reports)
    _choose(page, "Report A is better")
    start = first_b.index("Impression:")
    passage = first_b[start:]
    _drag_select(page, "#report-b", start, len(first_b), overshoot=250)
    page.wait_for_selector(f"#compare-selection >> text=Selected in Report B [{start}-{start + len(passage)}]")
    page.locator("#comment-score").get_by_text("1 -").click()
    page.locator("#comment-text textarea").fill("impression does not match the findings")
    page.locator("#comment-add").click()
    page.wait_for_selector("#compare-status >> text=Comment added", timeout=30_000)

    # pair 2: clinically equivalent
    pairs.nth(1).click()
    page.wait_for_function("() => document.querySelector('#report-b').innerText !== " + repr(first_b),
                           timeout=30_000)
    _choose(page, "Clinically equivalent")

    # reload: both judgements are back, progress is kept
    page.reload()
    page.get_by_role("tab", name="Comparison").click()
    page.wait_for_selector("#compare-progress >> text=2 of 2", timeout=30_000)
    assert [pairs.nth(i).inner_text() for i in range(2)] == ["Pair 1 · judged", "Pair 2 · judged"]
    assert page.locator("#compare-choice input:checked").get_attribute("value") == "A"
    assert page.locator("#report-b").inner_text() == first_b

    # revise pair 1 and submit the set
    _choose(page, "Report B is better")
    page.locator("#compare-submit").click()
    page.wait_for_selector("#compare-status >> text=Set submitted", timeout=30_000)
    reader_saw = app.sent.text_since(0) + page.content()
    assert page.get_by_role("tab", name="Comparison results").count() == 0
    context.close()

    # the coordinator sees unblinded results and downloads the CSV
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_role("tab", name="Comparison results").click()
    page.wait_for_function(
        f"() => document.querySelector('#cmp-coord-preference').innerText.includes('{SOURCES[1]}') || "
        f"document.querySelector('#cmp-coord-bias').innerText.includes('{SOURCES[1]}')", timeout=30_000)
    assert "Report A chosen in 0 of 1" in page.locator("#cmp-coord-bias").inner_text()
    # preference per case over submitted judgements, with the per-judgement rate beside it
    preference = page.locator("#cmp-coord-preference").inner_text()
    assert "n_cases" in preference and "per_judgement_equivalent_or_better" in preference
    assert page.get_by_text("A case counts once").count() == 1
    page.locator("#cmp-coord-export").click()
    link = page.locator("#cmp-coord-export-file a").first
    link.wait_for(timeout=30_000)
    with page.expect_download() as download:
        link.click()
    out = tmp_path / "comparison.csv"
    download.value.save_as(out)
    context.close()

    with app.sessions() as session:
        sides = {a.position + 1: comparisons.side_sources(a) for a in session.query(ComparisonAssignment)}
    table = pd.read_csv(out, keep_default_na=False)
    judged = table[table.record == "judgement"].sort_values("position")
    assert judged[["position", "choice", "preferred_source", "revisions", "submitted"]].values.tolist() == [
        [1, "B", sides[1][1], "1", True], [2, "equivalent", "", "0", True]]
    assert judged[["report_a_source", "report_b_source"]].values.tolist() == [list(sides[1]), list(sides[2])]
    comment = table[table.record == "comment"]
    assert comment[["position", "comment_side", "comment_source", "start", "end", "passage", "score", "comment"]
                   ].values.tolist() == [[1, "B", sides[1][1], str(start), str(start + len(passage)), passage, "1",
                                          "impression does not match the findings"]]

    # blinding: the page and every byte the server sent while the reader worked are free of source names
    assert "Small left pleural effusion" in reader_saw  # the capture holds what the app sent
    for secret in SOURCES:
        assert secret not in reader_saw, f"{secret!r} reached the reader's browser"


def _fill_unassigned(shared_data, tmp_path):
    """The study of :func:`_fill` plus a second set that no reader is assigned to yet."""
    first = _fill(shared_data, tmp_path)

    def fill(session):
        first(session)
        comparisons.import_comparison_set(session, studies.get_study(session, "CXR comparison"), "Round 2",
                                          tmp_path / "pairs.csv", SOURCES[1], seed=14)

    return fill


def test_score_meanings_and_a_set_without_readers(serve_app, browser, shared_data, tmp_path):
    app = serve_app(_fill_unassigned(shared_data, tmp_path))
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    sign_in(page, app.url, "reader1", PASSWORD)
    page.get_by_role("tab", name="Comparison").click()
    page.locator("#compare-pairs label").first.wait_for(timeout=30_000)
    score = page.locator("#comment-score")
    for meaning in ("1 major error, 2 minor error, 4 significant positive, 5 minor positive", "There is no 3"):
        assert meaning in score.inner_text()
    assert [score.locator("label").nth(i).inner_text().split(" - ")[0] for i in range(4)] == ["1", "2", "4", "5"]
    context.close()

    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_role("tab", name="Comparison results").click()
    # the newest set (Round 2) is shown: nobody assigned, so the per-reader table says so instead of empty headers
    page.wait_for_selector("text=Per reader: No readers assigned yet", timeout=30_000)
    page.get_by_text("New comparison set").click()
    page.wait_for_selector("#cmp-coord-include-practice >> text=practice cases never count", timeout=30_000)
    assert not page.locator("#cmp-coord-include-practice input").is_checked()
    context.close()
