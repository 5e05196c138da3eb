"""No outside requests from content, in a real browser: markdown images, links and raw HTML pointing at another
origin in every text a reader sees (study description, case information, drafts, question texts, comparison
texts and context) are shown as text; no request reaches the other origin, and the Content-Security-Policy blocks
such a load even when a script tries it, while the app itself works under that policy (case, viewer, questions,
comparison)."""

import csv
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pandas as pd

from studyapp.db.models import DEFAULT_QUESTIONS
from studyapp.services import accounts, cases, comparisons, design, questions
from tests.browser import free_port, sign_in
from tests.studies import chest_study_with_drafts

PASSWORD = "orbit-lantern-42"


class Beacon:
    """An HTTP server on another origin (another port) that counts every request it gets."""

    def __init__(self):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payload(self, where: str) -> str:
        """Markup that would make a browser fetch from or link to this origin, tagged with ``where``."""
        return (f"![beacon]({self.origin}/{where}-md.png) [click here]({self.origin}/{where}-link) "
                f'<img src="{self.origin}/{where}-html.png"> {self.origin}/{where}-bare.png')


def _fill(shared_data, tmp_path, beacon: Beacon):
    def fill(session):
        study = chest_study_with_drafts(session, "Remote content", shared_data / "dicom" / "cxr", tmp_path)
        study.description = "About: " + beacon.payload("about")
        info = tmp_path / "info.csv"
        with info.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["case_key", "indication", "comparison"])
            writer.writerows([c.case_key, beacon.payload("indication"), beacon.payload("comparison")]
                             for c in study.cases)
        assert cases.import_case_info(session, study, info).errors == []
        for draft in (d for c in study.cases for d in c.drafts):
            draft.text += " " + beacon.payload("draft")
        asked = [dict(DEFAULT_QUESTIONS[0], question="Confidence? " + beacon.payload("question"))]
        questions.set_questions(session, study, asked)
        reader = accounts.add_user(session, "reader1", PASSWORD)
        accounts.enroll_reader(session, study, reader)
        design.generate_assignments(session, study, seed=3, cases_per_reader=3)
        keys = [c.case_key for c in study.cases][:1]
        pd.DataFrame([{"case_key": key, "source_a_name": "src-a", "text_a": "A: " + beacon.payload("text-a"),
                       "source_b_name": "src-b", "text_b": "B: " + beacon.payload("text-b")} for key in keys]
                     ).to_csv(tmp_path / "pairs.csv", index=False)
        cset = comparisons.import_comparison_set(session, study, "Round 1", tmp_path / "pairs.csv", "src-b", seed=1)
        comparisons.assign_readers(session, cset, readers=[reader])

    return fill


OUTSIDE_ELEMENTS = """(origin) => [...document.querySelectorAll('img[src], a[href], iframe[src], source[src]')]
    .map((e) => e.getAttribute('src') || e.getAttribute('href')).filter((url) => url.includes(origin))"""


def test_user_text_never_makes_the_browser_fetch_or_link_another_origin(serve_app, browser, shared_data, tmp_path):
    beacon = Beacon()
    app = serve_app(_fill(shared_data, tmp_path, beacon))
    try:
        page = browser.new_context().new_page()
        outside_requests, violations = [], []
        page.on("request", lambda r: urlsplit(r.url).netloc != urlsplit(app.url).netloc
                and outside_requests.append(r.url))
        page.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))
        sign_in(page, app.url, "reader1", PASSWORD)
        page.locator("#worklist label").first.click()
        page.wait_for_function("() => document.querySelector('#report-editor textarea')?.value.includes('beacon')",
                               timeout=30_000)
        page.wait_for_selector('.sv-root:visible[data-status="ready"]', timeout=30_000)  # the viewer works
        context = page.locator("#clinical-context").inner_text()
        assert f"![beacon]({beacon.origin}/indication-md.png)" in context  # shown as the text it is
        assert f'<img src="{beacon.origin}/comparison-html.png">' in context
        page.locator("#finish-report").click()  # the questions appear
        page.get_by_text("Confidence? ![beacon]").wait_for(timeout=30_000)
        page.get_by_role("tab", name="Comparison").click()
        page.wait_for_selector("#report-a >> text=beacon", timeout=30_000)
        assert f"[click here]({beacon.origin}/text-a-link)" in page.locator("#report-a").inner_text() + \
            page.locator("#report-b").inner_text()
        assert page.evaluate(OUTSIDE_ELEMENTS, beacon.origin) == []
        assert violations == [], "the app itself tripped its Content-Security-Policy"

        # even a script that tries to load from the other origin is stopped by the policy
        blocked = page.evaluate("""(origin) => new Promise((resolve) => {
            document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), {once: true});
            const img = new Image(); img.src = origin + '/script-probe.png'; document.body.appendChild(img);
        })""", beacon.origin)
        assert blocked.startswith("img-src")
        page.wait_for_timeout(1_000)
        assert beacon.hits == [], f"requests reached the other origin: {beacon.hits}"
        assert [url for url in outside_requests if "script-probe" not in url] == []
    finally:
        beacon.server.shutdown()
