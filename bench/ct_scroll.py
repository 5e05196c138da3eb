"""Benchmark: scrolling a real-size CT in the browser viewer (Debian chromium, headless, Playwright), as a reader.

A 400-slice 512 x 512 JPEG 2000 CT is built at bench time in a temporary folder from the shared 20-slice series
(``../shared/data/dicom/ct_series``), repeated with new SOP Instance / Series UIDs and Image Positions 2 mm apart
(the pixel data is the files' own). The app is served on 127.0.0.1 over SQLite with the demo's CT case emptied;
the series is imported into it as the coordinator's "Import DICOM folder" does (``ingest.import_folder`` with
the background decode into the frame store under the data folder). The reader clicks the case in the worklist and
the bench prints, with the load average of the machine:

- cold, the case opened right after the import (its background decode still running): time to the first image
  and until every slice is loaded;
- when the background decode finished (a reader opens a case long after its import), and then, in a new page
  with the server's memory caches emptied (bodies read from the disk store):
- time to the first image (the click to the first slice painted; target <= 0.5 s);
- time until every slice is loaded in the page (target <= 6 s);
- once loaded, stepping through ``--steps`` slices with the mouse wheel at ``--rate`` steps/s: per-step latency
  (wheel event to the slice painted, the animation frame after the redraw) median and 95th percentile (target
  p95 <= 50 ms), and how many steps were painted (a slice skipped is a step not shown);
- then the fastest scrolling the viewer sustains: ``--steps`` wheel steps, each dispatched on the viewer as soon
  as the previous slice is painted, in slices per second (target >= 20; a 60 Hz display caps it at 60);
- the first coronal and sagittal images after the series is loaded (their tiles), and a new coronal slice asked
  for after the load (target <= 1 s);
- the browser's memory (JS heap, and the resident memory of chromium's processes).

Usage: python bench/ct_scroll.py [--slices 400] [--steps 100] [--rate 20]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pydicom  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from bench.viewer import VIEWER, load, median_p95, serve  # noqa: E402
from studyapp import demo  # noqa: E402
from studyapp.db.models import Case  # noqa: E402
from studyapp.dicom import display, reformat, series_cache  # noqa: E402
from studyapp.services import ingest, studies  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS, sign_in  # noqa: E402

SHARED_SERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom" / "ct_series"
CASE = "DEMO-4 (CT)"
OPEN_CASE = """([label]) => new Promise((resolve) => {
  const root = [...document.querySelectorAll('.sv-root')].find((r) => r.offsetParent !== null);
  const start = performance.now();
  [...document.querySelectorAll('#worklist label')].find((l) => l.innerText.includes(label)).click();
  const stats = root.studyViewer.stats;
  const poll = () => (stats.firstImageAt !== null && stats.firstImageAt > start
    ? resolve([start, stats.firstImageAt - start, stats.manifestAt - start, stats.frameAt - stats.manifestAt,
               stats.firstImageAt - stats.frameAt]) : setTimeout(poll, 2));
  poll();
})"""

FASTEST_SCROLL = """(r, [steps, direction]) => new Promise((resolve) => {
  const overlay = r.querySelector('canvas.sv-overlay');
  const box = overlay.getBoundingClientRect();
  const painted = r.studyViewer.stats.stepWork;
  const start = performance.now();
  let done = 0;
  const next = () => {
    if (done === steps) { resolve(steps / ((performance.now() - start) / 1000)); return; }
    const before = painted.length;
    overlay.dispatchEvent(new WheelEvent('wheel', { deltaY: 100 * direction, bubbles: true, cancelable: true,
      clientX: box.left + box.width / 2, clientY: box.top + box.height / 2 }));
    const wait = () => (painted.length > before ? (done++, next()) : setTimeout(wait, 0));
    wait();
  };
  next();
})"""


def build_series(folder: Path, count: int) -> list[Path]:
    """``count`` slices of one new series from the shared 20-slice CT: the source slices in order of position,
    repeated downwards, each with new UIDs, Instance Number and Image Position (Patient) one slice gap apart.

    Raises:
        SystemExit: the shared series is missing.
    """
    sources = sorted(SHARED_SERIES.glob("*"))
    if not sources:
        raise SystemExit(f"no CT series at {SHARED_SERIES}")
    datasets = sorted((pydicom.dcmread(p) for p in sources), key=lambda d: -float(d.ImagePositionPatient[2]))
    gap = abs(float(datasets[0].ImagePositionPatient[2]) - float(datasets[1].ImagePositionPatient[2]))
    top = float(datasets[0].ImagePositionPatient[2])
    series_uid = generate_uid()
    paths = []
    for k in range(count):
        ds = datasets[k % len(datasets)]
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], top - k * gap]
        ds.SliceLocation = top - k * gap
        path = folder / f"slice{k:04d}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def without_ct(session) -> None:
    """A ``prepare`` for ``bench.viewer.serve``: the demo CT case without its series (the built one is imported
    into it: same StudyInstanceUID)."""
    case = session.query(Case).filter(Case.case_key == CASE).one()
    case.series.clear()
    session.flush()


def import_ct(ctx, folder: Path) -> float:
    """Import ``folder`` into the demo study as the coordinator's "Import DICOM folder" does
    (``ingest.import_folder`` with the background decode); returns the time the import itself took, in s."""
    started = time.perf_counter()
    with ctx.sessions.begin() as session:
        report = ingest.import_folder(session, studies.get_study(session, demo.DEMO_STUDY), folder, decode=True)
    if report.counts["imported"] == 0:
        raise SystemExit(f"nothing imported from {folder}: {report.summary()}")
    return time.perf_counter() - started


def open_case(browser, url, reader, password, label, root_locator=VIEWER):
    """A new page signed in as ``reader`` (nothing kept in the page), the case opened: (page, cdp, click time,
    first image in ms, all slices loaded in ms, the stats, the first image's parts: case screen, frame values,
    paint, in ms)."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    sign_in(page, url, reader, password)
    root = page.locator(root_locator)
    start, first, *parts = page.evaluate(OPEN_CASE, [label])
    page.wait_for_function("(r) => r.studyViewer.stats.allLoadedAt !== null", arg=root.element_handle(),
                           timeout=600_000, polling=50)
    stats = root.evaluate("(r) => r.studyViewer.stats")
    return page, cdp, start, first, stats["allLoadedAt"] - start, stats, parts


def parts_text(parts) -> str:
    return f"case screen {parts[0]:.0f} ms + frame values {parts[1]:.0f} ms + paint {parts[2]:.0f} ms"


def browser_memory(page, cdp) -> str:
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    text = f"JS heap {metrics.get('JSHeapUsedSize', 0) / 2**20:.0f} MB"
    try:
        import psutil  # installed with the test tools; optional here
    except ImportError:
        return text
    processes = [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]
    rss = sum(p.memory_info().rss for p in processes)
    return f"{text}; chromium resident memory {rss / 2**20:.0f} MB over {len(processes)} processes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=400, help="slices of the built series (default 400)")
    parser.add_argument("--steps", type=int, default=100, help="wheel steps once loaded (default 100)")
    parser.add_argument("--rate", type=float, default=20.0, help="wheel steps per second (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        folder = Path(folder)
        started = time.perf_counter()
        (folder / "ct").mkdir()
        paths = build_series(folder / "ct", args.slices)
        print(f"built {len(paths)} slices in {time.perf_counter() - started:.1f} s ({load()})")
        url, reader, password, label, other_label, server, ctx = serve(folder, CASE, without_ct)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)

        imported = time.perf_counter()
        took = import_ct(ctx, folder / "ct")
        print(f"imported the series in {took:.1f} s as the coordinator's import does; its background decode "
              f"({series_cache.WORKERS} worker processes) started ({load()})")
        page, _, _, first, all_loaded, stats, parts = open_case(browser, url, reader, password, label)
        print(f"COLD (opened right after the import, the background decode still running): first image "
              f"{first / 1000:.2f} s after the click ({parts_text(parts)}), all {args.slices} slices loaded {all_loaded / 1000:.2f} s after "
              f"it, at most {stats['maxInFlight']} requests at once ({load()})")
        page.evaluate(OPEN_CASE, [other_label])  # left on another case, so that the next page opens the CT afresh
        page.close()
        series_cache.wait_idle(600)
        store = series_cache.store()
        print(f"background decode finished {time.perf_counter() - imported:.1f} s after the import began: "
              f"{len(store)} bodies, {store.total_bytes / 2**20:.0f} MB on disk ({load()})")

        for cache in (series_cache.bodies, display.frame_cache, reformat._volumes):
            cache.clear()  # what a server finds long after the import: the bodies on disk only
        reformat._geometries.clear()  # and the reformat geometry in the store
        page, cdp, start, first, all_loaded, stats, parts = open_case(browser, url, reader, password, label)
        root = page.locator(VIEWER)
        print("AFTER THE BACKGROUND DECODE (a new page; the server's memory caches emptied, bodies read from disk):")
        print(f"first image: {first / 1000:.2f} s after the click ({parts_text(parts)}; target <= 0.5 s; {load()})")
        print(f"all {args.slices} slices loaded: {all_loaded / 1000:.2f} s after the click, at most "
              f"{stats['maxInFlight']} requests at once (target <= 6 s; {load()})")

        for stack, plane in ((1, "coronal"), (2, "sagittal")):
            page.wait_for_selector(f"{VIEWER} .sv-tile[data-stack='{stack}'][data-status='ready']", timeout=600_000)
        tiles = root.evaluate("(r) => r.studyViewer.stats.tileReadyAt")
        for stack, plane in ((1, "coronal"), (2, "sagittal")):
            after = (tiles[str(stack)] - stats["allLoadedAt"]) / 1000
            print(f"first {plane} image: {(tiles[str(stack)] - start) / 1000:.2f} s after the click, "
                  f"{after:+.2f} s after the axial slices were all loaded (target <= 1 s; {load()})")

        box = page.locator(f"{VIEWER} canvas.sv-overlay").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        root.evaluate("(r) => { r.studyViewer.stats.stepLatencies.length = 0; r.studyViewer.stats.stepWork.length = 0; }")
        first_slice = int(root.get_attribute("data-slice"))
        direction = 1 if first_slice + args.steps <= args.slices else -1
        interval = 1.0 / args.rate
        begin = time.perf_counter()
        for step in range(args.steps):
            page.mouse.wheel(0, 100 * direction)
            delay = begin + (step + 1) * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        target = first_slice + direction * args.steps
        page.wait_for_function(f"(r) => r.dataset.slice === '{target}' && r.dataset.status === 'ready'",
                               arg=root.element_handle(), timeout=60_000)
        elapsed = time.perf_counter() - begin
        page.wait_for_timeout(200)
        latencies, work = root.evaluate("(r) => [r.studyViewer.stats.stepLatencies.slice(), "
                                        "r.studyViewer.stats.stepWork.slice()]")
        q95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
        within = sum(1 for v in latencies if v <= 50)
        print(f"scrolling {args.steps} slices at {args.rate:g} steps/s once loaded ({elapsed:.2f} s): per step median "
              f"{statistics.median(latencies):.1f} ms, 95th percentile {q95:.1f} ms over {len(latencies)} painted "
              f"steps ({within} within 50 ms; target p95 <= 50 ms; {load()}); the viewer's work per step (event "
              f"handled -> slice painted): {median_p95(work)}")
        rate = root.evaluate(FASTEST_SCROLL, [args.steps, -direction])
        print(f"fastest scrolling once loaded, each wheel step dispatched once the previous slice is painted: "
              f"{rate:.1f} slices/s over {args.steps} steps (target >= 20 slices/s; {load()})")

        page.locator(f"{VIEWER} .sv-tile[data-stack='1']").click()  # the coronal enlarged, then a new slice of it
        page.wait_for_function("(r) => { const s = r.studyViewer.state; return s.stack === 1 && s.frame && s.frame.plane "
                               "=== 'coronal' && r.dataset.status === 'ready' && r.dataset.slice === String(s.slice + 1); }",
                               arg=root.element_handle())
        before = int(root.get_attribute("data-slice"))
        asked = time.perf_counter()
        page.keyboard.press("ArrowDown")
        page.wait_for_function(f"(r) => r.dataset.slice === '{before + 1}' && r.dataset.status === 'ready'",
                               arg=root.element_handle(), timeout=60_000, polling=5)
        print(f"a new coronal slice once loaded: {(time.perf_counter() - asked) * 1000:.0f} ms ({load()})")
        print(f"browser memory with the series loaded: {browser_memory(page, cdp)}")
        browser.close()
        server.should_exit = True


if __name__ == "__main__":
    main()
