"""Benchmark: the browser viewer in Debian chromium (Playwright) on the demo's 1955 x 1841 chest CR
(assets/dicom/cxr/RG1_J2KI.dcm, JPEG 2000, 15-bit MONOCHROME1).

Prints milliseconds
- from opening the case (the worklist click) to its first image painted on the canvas, cold (JPEG 2000 decode
  on the server included) and warm (decoded frame cached on the server); target <= 500 ms;
- from a window/level drag event (pointermove) to the frame painted at full resolution (the animation frame after
  the canvas was redrawn); target <= 16 ms per step. Median and 95th percentile over the drag steps.

The app is served on 127.0.0.1 over a temporary SQLite database; chromium runs headless without a GPU
(``tests.browser.CHROMIUM_ARGS``), so the canvas is drawn by the CPU.

Usage: python bench/viewer.py [--steps 60]
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from studyapp import demo  # noqa: E402
from studyapp.config import Settings  # noqa: E402
from studyapp.db.models import Assignment, Case  # noqa: E402
from studyapp.db.session import open_database  # noqa: E402
from studyapp.dicom import series_cache  # noqa: E402
from studyapp.services.reading import case_label  # noqa: E402
from studyapp.ui.context import UIContext  # noqa: E402
from studyapp.web.app import build_web_app  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS, free_port, sign_in  # noqa: E402

CASE = "DEMO-2 (CR)"
VIEWER = ".sv-root:visible"
OPEN_CASE = """([label]) => new Promise((resolve) => {
  const root = [...document.querySelectorAll('.sv-root')].find((r) => r.offsetParent !== null);
  const start = performance.now();
  [...document.querySelectorAll('#worklist label')].find((l) => l.innerText.includes(label)).click();
  const stats = root.studyViewer.stats;
  const poll = () => (stats.firstImageAt !== null && stats.firstImageAt > start
    ? resolve([stats.firstImageAt - start, stats.manifestAt - start, stats.frameAt - stats.manifestAt,
               stats.firstImageAt - stats.frameAt]) : setTimeout(poll, 2));
  poll();
})"""


def load() -> str:
    """The 1-, 5- and 15-minute load averages of the machine, printed with the figures (shared machines)."""
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def serve(folder: Path, case: str = CASE, prepare=None) -> tuple[str, str, str, str, str, uvicorn.Server, UIContext]:
    """The demo study served on 127.0.0.1 over SQLite in ``folder``; ``prepare(session)`` may change it first.

    Returns:
        (url, the reader of ``case``, their password, the case's worklist label, another case's label, server,
        the app's context)
    """
    settings = Settings(data_dir=folder)
    sessions = open_database(f"sqlite:///{folder / 'bench.db'}")
    with sessions.begin() as session:
        demo.ensure_demo(session, settings)
        if prepare is not None:
            prepare(session)
        mine = session.query(Assignment).join(Case).filter(Case.case_key == case).first()
        reader = mine.reader.username
        other = session.query(Assignment).join(Case).filter(Case.case_key != case,
                                                            Assignment.reader.has(username=reader)).first()
        label, other_label = (case_label(a.position, a.case) for a in (mine, other))  # what the worklist shows
    passwords = {line.split()[1]: line.split()[2] for line in (folder / "demo-credentials.txt").read_text().splitlines()}
    ctx = UIContext(sessions, settings)
    app = build_web_app(ctx)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the app did not start within 60 s")
        time.sleep(0.05)
    series_cache.ready(120)  # its decoding processes up, as on a server that has run a while (they take seconds)
    return f"http://127.0.0.1:{port}", reader, passwords[reader], label, other_label, server, ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="window/level drag steps (default 60)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        url, reader, password, label, other_label, server, _ = serve(Path(folder))
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        sign_in(page, url, reader, password)
        cold = page.evaluate(OPEN_CASE, [label])
        page.evaluate(OPEN_CASE, [other_label])
        warm = [page.evaluate(OPEN_CASE, [case]) for case in (label, other_label, label, other_label, label)][::2]
        page.wait_for_selector(f'{VIEWER}[data-status="ready"]')
        frame = page.locator(VIEWER).evaluate("(r) => [r.studyViewer.state.frame.columns, r.studyViewer.state.frame.rows]")

        box = page.locator(f"{VIEWER} canvas.sv-overlay").bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.locator(VIEWER).evaluate("(r) => { r.studyViewer.stats.latencies.length = 0; }")
        page.mouse.move(x, y)
        page.mouse.down()
        for step in range(1, args.steps + 1):
            page.mouse.move(x + (step % 20) * 3, y + (step % 7) * 2)
            page.wait_for_timeout(20)  # one step per animation frame or so, as a hand moves
        page.mouse.up()
        page.wait_for_timeout(100)
        latencies = page.locator(VIEWER).evaluate("(r) => r.studyViewer.stats.latencies.slice()")
        browser.close()
        server.should_exit = True

    print(f"image: {frame[0]} x {frame[1]} ({CASE}, RG1_J2KI.dcm); chromium headless, no GPU (canvas 2D on the CPU); "
          f"{load()}")
    def parts(t):
        return f"{t[0]:.0f} ms (case screen {t[1]:.0f} + frame values {t[2]:.0f} + decode and paint {t[3]:.0f})"

    middle = sorted(warm)[len(warm) // 2]
    print(f"case open -> first image (target <= 500 ms): cold {parts(cold)}, JPEG 2000 decode on the server "
          f"included; warm (decoded and encoded frame cached) median {parts(middle)}")
    if latencies:
        q95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
        print(f"window/level drag -> painted frame: median {statistics.median(latencies):.1f} ms, "
              f"95th percentile {q95:.1f} ms over {len(latencies)} steps (target <= 16 ms)")
    else:
        print("window/level drag -> painted frame: no step was painted")


if __name__ == "__main__":
    main()
