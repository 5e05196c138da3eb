"""Load bench of the reading screen: N readers autosaving at once through the browser's own protocol.

Starts the app as its own process (``python app.py --serve``) on 127.0.0.1 over a fresh database holding a study of
the real chest radiographs in ../shared/data/dicom/cxr with ``--readers`` readers and a coordinator. Each simulated
reader signs in (the ``/login`` form, cookie), fetches ``/config`` to find the page's events, runs the page-load
event and opens its first case from the worklist (8 readers at a time, as a crowd arriving over a minute). Then
all readers autosave for ``--duration`` seconds: every ``--interval`` seconds, spread evenly over the readers, each
types a word and saves. Each event is ``POST /gradio_api/queue/join`` followed by the server-sent event stream
``GET /gradio_api/queue/data`` until ``process_completed`` -- what Gradio 6's browser client does. Latency is
measured from the join request to the completion message. Meanwhile a coordinator refreshes the progress view and
exports the reads every ``--coordinator-every`` seconds (0: no coordinator).

Prints, per database: saves completed of those scheduled (a save that is late still runs: each reader has one in
flight at a time, as a tab does), p50 / p95 / max autosave latency (ms), errors (HTTP errors, failed events, a
save status that is not "Saved ..."), stale refusals (saves refused as "saved from another tab or window", which
one tab must never get), and how many readers' last acknowledged text is not what the database holds (lost
texts); then the coordinator's latencies. The machine's load averages (1, 5, 15 minutes) are printed at the start,
around each run and at the end: other processes on the machine inflate the latencies. Asserts nothing about
latency; the exit status is 1 when a save did not complete or there were errors, stale refusals or lost texts.

    python bench/load.py --readers 100                   # 100 readers, 2 minutes, SQLite then PostgreSQL
    python bench/load.py --readers 5 --duration 20 --database sqlite

Target (issue 16) on the 2-core machine, quiet: 100 readers, p95 <= 250 ms with SQLite (WAL) and PostgreSQL, every
save completed, 0 errors, 0 stale refusals, 0 lost texts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import math
import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studyapp.db.models import ROLE_COORDINATOR, Report  # noqa: E402
from studyapp.db.session import open_database  # noqa: E402
from studyapp.services import accounts, design, drafts, ingest, studies  # noqa: E402
from tests.appserver import AppProcess  # noqa: E402
from tests.pgserver import throwaway_postgresql  # noqa: E402

CXR = ROOT.parent / "shared" / "data" / "dicom" / "cxr"
STUDY = "Load study"
COORDINATOR, COORDINATOR_PASSWORD = "load-coordinator", "load-coordinator-password"
WORDS = "no focal consolidation pleural effusion or pneumothorax heart size normal mediastinum unremarkable".split()


def password(index: int) -> str:
    """The bench password of reader ``index``."""
    return f"load-reader-{index:02d}-password"


def build_study(database_url: str, n_readers: int, work: Path) -> None:
    """The study: the real chest DICOM, drafts for every arm, ``n_readers`` readers, 3 cases each."""
    sessions = open_database(database_url)
    with sessions.begin() as s:
        study = studies.create_study(s, STUDY, template_text="FINDINGS: normal chest.")
        report = ingest.import_folder(s, study, CXR)
        if report.counts["failed"]:
            raise SystemExit(report.summary())
        drafts_csv = work / "drafts.csv"
        with drafts_csv.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["case_key", "arm", "text", "source"])
            writer.writerows([c.case_key, arm, f"{arm} draft of {c.case_key}.", arm] for c in study.cases
                             for arm in ("llm", "model"))
        drafts.import_drafts(s, study, drafts_csv)
        drafts.set_template(s, study, study.template_text)
        for index in range(n_readers):
            accounts.enroll_reader(s, study, accounts.add_user(s, f"reader{index:02d}", password(index)))
        design.generate_assignments(s, study, seed=1, cases_per_reader=3)
        accounts.add_user(s, COORDINATOR, COORDINATOR_PASSWORD, role=ROLE_COORDINATOR)
    sessions.kw["bind"].dispose()


def page_load_events(config: dict) -> list[dict]:
    """The events a page runs on load (with a server function), from its ``/config``."""
    return [d for d in config["dependencies"] if any(t[1] == "load" for t in d["targets"]) and d["backend_fn"]]


@dataclass
class Events:
    """The page's event ids (``fn_index``) and component ids, read from ``/config``."""

    load: list[dict]
    open_case: dict
    autosave: dict
    components: dict[int, dict]

    @classmethod
    def from_config(cls, config: dict) -> Events:
        components = {c["id"]: c for c in config["components"]}
        by_elem = {c.get("props", {}).get("elem_id"): c["id"] for c in config["components"]}

        def listening(component: int, event: str) -> dict:
            found = [d for d in config["dependencies"] if [component, event] in [list(t) for t in d["targets"]]]
            if not found:
                raise SystemExit(f"no {event} event on component {component} in /config")
            return found[0]

        return cls(page_load_events(config), listening(by_elem["worklist"], "input"),
                   listening(by_elem["autosave-now"], "click"),
                   components)


@dataclass
class Reader:
    """One simulated reader with its own cookies and Gradio session."""

    index: int
    base: str
    client: httpx.AsyncClient
    session_hash: str = field(default_factory=lambda: secrets.token_hex(6))
    page: str = field(default_factory=lambda: secrets.token_hex(16))  # the page id autosave.js would draw
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stale_refusals: list[str] = field(default_factory=list)  # saves refused as "saved from another tab"
    events: Events | None = None  # set once the reader's case is open
    assignment_id: int | None = None
    text: str = ""
    saved: int = 0
    last_saved_text: str | None = None

    async def event(self, dependency: dict, data: list) -> list:
        """Run one event as the browser does: join the queue, then read the SSE stream until it completes.

        Returns:
            The event's output data, one value per output component.

        Raises:
            RuntimeError: an HTTP error or a failed event.
        """
        body = {"data": data, "event_data": None, "fn_index": dependency["id"], "trigger_id": None,
                "session_hash": self.session_hash}
        joined = await self.client.post(f"{self.base}/gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            raise RuntimeError(f"queue/join answered {joined.status_code}: {joined.text[:200]}")
        event_id = joined.json()["event_id"]
        async with self.client.stream("GET", f"{self.base}/gradio_api/queue/data",
                                      params={"session_hash": self.session_hash}) as stream:
            if stream.status_code != 200:
                raise RuntimeError(f"queue/data answered {stream.status_code}")
            async for line in stream.aiter_lines():
                if not line.startswith("data: "):
                    continue
                message = json.loads(line[len("data: "):])
                if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                    if not message.get("success"):
                        raise RuntimeError(f"event failed: {str(message.get('output'))[:200]}")
                    return message["output"]["data"]
                if message.get("msg") in ("unexpected_error", "server_stopped"):
                    raise RuntimeError(f"{message.get('msg')}: {message.get('message')}")
        raise RuntimeError("the event stream ended before the event completed")

    async def sign_in(self, username: str, secret: str, events_holder: dict) -> Events:
        """Sign in (the form's POST, cookie kept by the client) and read the page's events from ``/config`` once.

        Raises:
            RuntimeError: the sign-in was refused.
        """
        response = await self.client.post(f"{self.base}/login", data={"username": username, "password": secret})
        if response.status_code != 200:
            raise RuntimeError(f"sign-in answered {response.status_code}: {response.text[:200]}")
        if "events" not in events_holder:
            config = (await self.client.get(f"{self.base}/config")).raise_for_status().json()
            events_holder["events"] = Events.from_config(config)
        return events_holder["events"]

    async def load_page(self, events: Events) -> dict[str, object]:
        """Run the page-load events; returns the last value each ``elem_id`` got."""
        values: dict[str, object] = {}
        for dependency in events.load:
            outputs = await self.event(dependency, [None] * len(dependency["inputs"]))
            for component, value in zip(dependency["outputs"], outputs):
                elem_id = events.components[component].get("props", {}).get("elem_id")
                if elem_id:
                    values[elem_id] = value
        return values

    async def set_up(self, events_holder: dict, gate: asyncio.Semaphore) -> None:
        """Sign in, load the page and open the first case of the worklist (a failure is recorded in ``errors``)."""
        try:
            async with gate:
                events = await self.sign_in(f"reader{self.index:02d}", password(self.index), events_holder)
                values = await self.load_page(events)
                study, worklist = values.get("reader-study"), values.get("worklist")
                study_name = study.get("value") if isinstance(study, dict) else None
                choices = worklist.get("choices") if isinstance(worklist, dict) else None
                if study_name is None or not choices:
                    raise RuntimeError("the page load showed no study or worklist")
                assignment_id = choices[0][1]
                # open the first case: inputs study, worklist, assignment, version, editor, ...
                chosen = {"reader-study": study_name, "worklist": assignment_id, "report-editor": ""}
                await self.event(events.open_case, [chosen.get(events.components[c].get("props", {}).get("elem_id"))
                                                    if events.components[c]["type"] != "state" else None
                                                    for c in events.open_case["inputs"]])
                self.events, self.assignment_id = events, assignment_id
        except (RuntimeError, httpx.HTTPError) as error:
            self.errors.append(f"setup: {type(error).__name__}: {error}")

    async def save(self, n: int) -> None:
        """Type a word and autosave (save number ``n``); the outcome goes to ``latencies_ms`` and ``saved``, or to
        ``stale_refusals`` or ``errors``."""
        self.text += f" {WORDS[(self.index + n) % len(WORDS)]}-{n}"
        # inputs: assignment and version (hidden in the page; no version: the page's save token alone tells its saves
        # apart), editor text, the save token ("<page id>:<save number>", as autosave.js sends it), active seconds
        data = [self.assignment_id, None, self.text, f"{self.page}:{n}", float(n)]
        began = time.perf_counter()
        try:
            status = (await self.event(self.events.autosave, data))[0]
        except (RuntimeError, httpx.HTTPError) as error:
            self.errors.append(f"save {n}: {type(error).__name__}: {error}")
            return
        self.latencies_ms.append((time.perf_counter() - began) * 1000)
        if isinstance(status, str) and status.startswith("Saved"):
            self.saved += 1
            self.last_saved_text = self.text
        elif isinstance(status, str) and "another tab" in status:
            self.stale_refusals.append(f"save {n}: {status}")
        else:
            self.errors.append(f"save {n}: status {status!r}")

    async def save_every(self, t0: float, duration_s: float, interval_s: float, offset_s: float) -> None:
        """Save at ``t0 + offset_s + k * interval_s`` for every such time before ``t0 + duration_s`` (a save still
        running when the next is due delays it: one save in flight per tab, as in the browser)."""
        if self.events is None:
            return
        for n in range(1, scheduled_saves(duration_s, interval_s, offset_s) + 1):
            await asyncio.sleep(max(0.0, t0 + offset_s + (n - 1) * interval_s - time.monotonic()))
            await self.save(n)


def scheduled_saves(duration_s: float, interval_s: float, offset_s: float) -> int:
    """How many saves a reader starting at ``offset_s`` makes, one every ``interval_s``, within ``duration_s``."""
    return max(0, math.ceil((duration_s - offset_s) / interval_s))


@dataclass
class Coordinator:
    """A coordinator who, every ``every_s`` seconds, refreshes the progress tables and exports the reads CSV."""

    reader: Reader  # its HTTP client and queue session (the same protocol as a reader's)
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {"progress": [], "export": []})

    async def set_up(self, username: str, secret: str) -> dict:
        """Sign in and load the coordinator's page; returns the refresh and export events."""
        response = await self.reader.client.post(f"{self.reader.base}/login",
                                                 data={"username": username, "password": secret})
        response.raise_for_status()
        home = response.json().get("redirect", "/").rstrip("/")
        self.reader.base += home
        config = (await self.reader.client.get(f"{self.reader.base}/config")).raise_for_status().json()
        for dependency in page_load_events(config):  # the page's own state: the study dropdown's choices
            await self.reader.event(dependency, [None] * len(dependency["inputs"]))
        by_elem = {c.get("props", {}).get("elem_id"): c["id"] for c in config["components"]}
        found = {}
        for name, elem_id in (("progress", "coord-refresh"), ("export", "coord-export")):
            found[name] = next(d for d in config["dependencies"] if [by_elem[elem_id], "click"] in
                               [list(t) for t in d["targets"]])
        return found

    async def watch(self, events: dict, t0: float, duration_s: float, every_s: float) -> None:
        """Refresh the progress view and export, every ``every_s`` seconds until ``t0 + duration_s``."""
        while time.monotonic() - t0 < duration_s:
            for name, dependency in events.items():
                began = time.perf_counter()
                try:
                    await self.reader.event(dependency, [STUDY])
                    self.latencies_ms[name].append((time.perf_counter() - began) * 1000)
                except (RuntimeError, httpx.HTTPError) as error:
                    self.reader.errors.append(f"coordinator {name}: {type(error).__name__}: {error}")
            await asyncio.sleep(every_s)


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, seconds) process ``pid`` has used so far, from ``/proc``; NaN where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14 and 15)


@dataclass
class Run:
    """What one database's run measured; ``server_cpu_s`` is the server's CPU time while the readers saved."""

    readers: list[Reader]
    coordinator: Coordinator | None
    expected_saves: int
    setup_s: float
    server_cpu_s: float


async def drive(base: str, n_readers: int, duration_s: float, interval_s: float, coordinator_every_s: float,
                server_pid: int | None = None, setup_concurrency: int = 8) -> Run:
    """Set up ``n_readers`` readers against ``base`` (at most ``setup_concurrency`` signing in and opening their
    case at once, as readers arriving over a minute would), then let them all autosave for ``duration_s`` seconds,
    spread evenly over each ``interval_s``; with ``coordinator_every_s`` > 0, a coordinator refreshes the progress
    view and exports the reads meanwhile."""
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    setup_timeout = httpx.Timeout(60, read=600)  # sign-in and page load of a crowd arriving at once queue up
    clients = [httpx.AsyncClient(timeout=setup_timeout, limits=limits) for _ in range(n_readers + 1)]
    readers = [Reader(i, base, client) for i, client in enumerate(clients[:n_readers])]
    coordinator = Coordinator(Reader(-1, base, clients[-1])) if coordinator_every_s > 0 else None
    holder: dict = {}
    try:
        began = time.monotonic()
        await readers[0].sign_in("reader00", password(0), holder)  # read /config once before the crowd arrives
        gate = asyncio.Semaphore(setup_concurrency)
        await asyncio.gather(*(r.set_up(holder, gate) for r in readers))
        coordinator_events = await coordinator.set_up(COORDINATOR, COORDINATOR_PASSWORD) if coordinator else None
        setup_s = time.monotonic() - began
        for client in clients:
            client.timeout = httpx.Timeout(60)
        t0 = time.monotonic() + 1.0
        offsets = [interval_s * r.index / n_readers for r in readers]
        tasks = [r.save_every(t0, duration_s, interval_s, offset) for r, offset in zip(readers, offsets)]
        if coordinator:
            tasks.append(coordinator.watch(coordinator_events, t0, duration_s, coordinator_every_s))
        cpu_before = cpu_seconds(server_pid)
        await asyncio.gather(*tasks)
        server_cpu_s = cpu_seconds(server_pid) - cpu_before
    finally:
        for client in clients:
            await client.aclose()
    expected = sum(scheduled_saves(duration_s, interval_s, offset) for offset in offsets)
    return Run(readers, coordinator, expected, setup_s, server_cpu_s)


def lost_texts(database_url: str, readers: list[Reader]) -> list[str]:
    """Readers whose last acknowledged text differs from the stored current text."""
    sessions = open_database(database_url)
    lost = []
    with sessions() as s:
        for r in readers:
            if r.assignment_id is None:
                continue
            stored = s.query(Report).filter_by(assignment_id=r.assignment_id).one_or_none()
            if r.last_saved_text is not None and (stored is None or stored.current_text != r.last_saved_text):
                lost.append(f"reader{r.index:02d}")
    sessions.kw["bind"].dispose()
    return lost


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def load_average() -> str:
    """The machine's 1-, 5- and 15-minute load averages, e.g. ``"1.2 / 0.9 / 0.7"``: other processes on the machine
    inflate the latencies, so every figure is printed with it."""
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def run_one(name: str, database_url: str, args: argparse.Namespace) -> bool:
    """Build, serve, drive and report one database; True when every scheduled save completed, with no errors, no
    stale refusals and no lost texts."""
    with tempfile.TemporaryDirectory(prefix=f"load-{name}-") as work:
        build_study(database_url, args.readers, Path(work))
        server = AppProcess(Path(work) / "data", database_url)
        server.start()
        load_before = load_average()
        try:
            run = asyncio.run(drive(server.url, args.readers, args.duration, args.interval, args.coordinator_every,
                                    server.process.pid))
        finally:
            server.stop()
        readers = run.readers
        latencies = [ms for r in readers for ms in r.latencies_ms]
        saved = sum(r.saved for r in readers)
        errors = [f"reader{r.index:02d} {e}" for r in readers for e in r.errors]
        errors += run.coordinator.reader.errors if run.coordinator else []
        stale = [f"reader{r.index:02d} {e}" for r in readers for e in r.stale_refusals]
        lost = lost_texts(database_url, readers)
        watching = f", a coordinator refreshing progress and exporting every {args.coordinator_every:g} s" \
            if run.coordinator else ""
        print(f"{name}: {args.readers} readers x {args.duration:g} s, a save every {args.interval:g} s{watching} "
              f"(load average {load_before} before, {load_average()} after; setup {run.setup_s:.0f} s): "
              f"saves completed {saved} of {run.expected_saves}; "
              f"autosave latency p50 {percentile(latencies, 50):.0f} ms, "
              f"p95 {percentile(latencies, 95):.0f} ms, max {max(latencies, default=float('nan')):.0f} ms; "
              f"errors {len(errors)}; stale refusals {len(stale)}; lost texts {len(lost)} of {args.readers}")
        print(f"  server CPU {run.server_cpu_s * 1000 / max(saved, 1):.1f} ms per save (all its work while the readers "
              f"saved, divided by the saves: a figure the machine's load inflates less than the latencies)")
        if run.coordinator:
            print("  coordinator: " + "; ".join(
                f"{what} {len(ms)} times, p50 {percentile(ms, 50):.0f} ms, max {max(ms, default=float('nan')):.0f} ms"
                for what, ms in run.coordinator.latencies_ms.items()))
        for line in (errors + stale)[:10]:
            print(f"  {'error' if line in errors else 'stale'}: {line}")
        if lost:
            print(f"  lost: {', '.join(lost)}")
        if errors or stale:
            print(f"  server log tail:\n{server.log_tail(2000)}")
        return saved == run.expected_saves and not errors and not stale and not lost


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the bench; exit status 1 when a database missed a save or had errors, stale
    refusals or lost texts, 2 for bad options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=30)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of autosaving (default 120)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a reader's saves (default 5)")
    parser.add_argument("--coordinator-every", type=float, default=10.0,
                        help="seconds between a coordinator's progress refresh and export (default 10; 0: none)")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    if args.readers < 1 or not 0 < args.duration <= 3600 or not 0 < args.interval <= args.duration \
            or args.coordinator_every < 0:
        parser.error("need --readers >= 1, 0 < --interval <= --duration <= 3600 s and --coordinator-every >= 0")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    print(f"load average at start: {load_average()} ({os.cpu_count()} CPUs)", flush=True)
    ok = True
    if args.database in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="load-db-") as folder:
            ok &= run_one("SQLite (WAL)", f"sqlite:///{folder}/study.db", args)
    if args.database in ("postgresql", "both"):
        with throwaway_postgresql() as url:
            ok &= run_one("PostgreSQL", url, args)
    print(f"load average at end: {load_average()}")
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
