"""Load bench of the reading screen: N readers autosaving at once through the browser's own protocol.

Starts the app as its own process (``python app.py --serve``) on 127.0.0.1 over a fresh database holding a study of
the real chest radiographs in ../shared/data/dicom/cxr with ``--readers`` readers. Each simulated reader signs in
(Gradio's ``/login`` form, cookie), fetches ``/config`` to find the page's events, runs the page-load event, opens
its first case from the worklist and then, every ``--interval`` seconds for ``--duration`` seconds, types a few
words and autosaves: each event is ``POST /gradio_api/queue/join`` followed by the server-sent event stream
``GET /gradio_api/queue/data`` until ``process_completed`` -- what Gradio 6's browser client does. Latency is measured
from the join request to the completion message.

Prints, per database: saves, p50 / p95 / max autosave latency (ms), errors (HTTP errors, failed events, a save
status that is not "Saved ..."), and how many readers' last text is not what the database holds (lost texts).
The 1-minute load average before and after is printed: other processes on the machine inflate the latencies.
Asserts nothing; the exit status is 1 when there were errors or lost texts.

    python bench/load.py                              # 30 readers, 2 minutes, SQLite then PostgreSQL
    python bench/load.py --readers 5 --duration 20 --database sqlite

Target (issue 9) on the 2-core machine: p95 < 150 ms, 0 errors, 0 lost texts, with SQLite (WAL) and PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
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

from studyapp.db.models import Report  # noqa: E402
from studyapp.db.session import open_database  # noqa: E402
from studyapp.services import accounts, design, drafts, ingest, studies  # noqa: E402
from tests.appserver import AppProcess  # noqa: E402
from tests.pgserver import throwaway_postgresql  # noqa: E402

CXR = ROOT.parent / "shared" / "data" / "dicom" / "cxr"
STUDY = "Load study"
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
    sessions.kw["bind"].dispose()


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

        load = [d for d in config["dependencies"] if any(t[1] == "load" for t in d["targets"]) and d["backend_fn"]]
        return cls(load, listening(by_elem["worklist"], "input"), listening(by_elem["autosave-now"], "click"),
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
    assignment_id: int | None = None
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

    async def sign_in(self, events_holder: dict) -> Events:
        response = await self.client.post(f"{self.base}/login",
                                          data={"username": f"reader{self.index:02d}", "password": password(self.index)})
        if response.status_code != 200:
            raise RuntimeError(f"sign-in answered {response.status_code}: {response.text[:200]}")
        if "events" not in events_holder:
            config = (await self.client.get(f"{self.base}/config")).raise_for_status().json()
            events_holder["events"] = Events.from_config(config)
        return events_holder["events"]

    async def run(self, events_holder: dict, duration_s: float, interval_s: float, offset_s: float) -> None:
        try:
            events = await self.sign_in(events_holder)
            study_name, assignment_id = None, None
            for dependency in events.load:
                outputs = await self.event(dependency, [None] * len(dependency["inputs"]))
                for component, value in zip(dependency["outputs"], outputs):
                    elem_id = events.components[component].get("props", {}).get("elem_id")
                    if elem_id == "reader-study" and isinstance(value, dict):
                        study_name = value.get("value")
                    if elem_id == "worklist" and isinstance(value, dict) and value.get("choices"):
                        assignment_id = value["choices"][0][1]
            if study_name is None or assignment_id is None:
                raise RuntimeError("the page load showed no study or worklist")
            # open the first case: inputs study, worklist, assignment (state), version (state), editor, seconds
            values = {"reader-study": study_name, "worklist": assignment_id, "report-editor": ""}
            await self.event(events.open_case, [values.get(events.components[c].get("props", {}).get("elem_id"))
                                                if events.components[c]["type"] != "state" else None
                                                for c in events.open_case["inputs"]])
            self.assignment_id = assignment_id
        except (RuntimeError, httpx.HTTPError) as error:
            self.errors.append(f"setup: {error}")
            return
        text = ""
        n = 0
        start = time.monotonic()
        await asyncio.sleep(offset_s)  # readers' saves spread over the interval, as real readers' would be
        while time.monotonic() - start < duration_s:
            n += 1
            text += f" {WORDS[(self.index + n) % len(WORDS)]}-{n}"
            # inputs: assignment (state), version (state), editor text, the page's save token ("<page id>:<save
            # number>", as autosave.js sends it), active seconds (the browser timer's total)
            data = [None, None, text, f"{self.page}:{n}", float(n * interval_s)]
            began = time.perf_counter()
            try:
                status = (await self.event(events.autosave, data))[0]
                self.latencies_ms.append((time.perf_counter() - began) * 1000)
                if isinstance(status, str) and status.startswith("Saved"):
                    self.last_saved_text = text
                else:
                    self.errors.append(f"save {n}: status {status!r}")
            except (RuntimeError, httpx.HTTPError) as error:
                self.errors.append(f"save {n}: {error}")
            await asyncio.sleep(max(0.0, interval_s - (time.perf_counter() - began)))


async def drive(base: str, n_readers: int, duration_s: float, interval_s: float) -> list[Reader]:
    """Run ``n_readers`` readers concurrently against ``base``."""
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    clients = [httpx.AsyncClient(timeout=60, limits=limits) for _ in range(n_readers)]
    readers = [Reader(i, base, client) for i, client in enumerate(clients)]
    holder: dict = {}
    try:
        await readers[0].sign_in(holder)  # read /config once before the crowd arrives
        await asyncio.gather(*(r.run(holder, duration_s, interval_s, interval_s * r.index / n_readers)
                               for r in readers))
    finally:
        for client in clients:
            await client.aclose()
    return readers


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


def run_one(name: str, database_url: str, n_readers: int, duration_s: float, interval_s: float) -> bool:
    """Build, serve, drive and report one database; True when there were no errors and no lost texts."""
    with tempfile.TemporaryDirectory(prefix=f"load-{name}-") as work:
        build_study(database_url, n_readers, Path(work))
        server = AppProcess(Path(work) / "data", database_url)
        server.start()
        load_before = os.getloadavg()[0]  # other processes on the machine inflate the latencies
        try:
            readers = asyncio.run(drive(server.url, n_readers, duration_s, interval_s))
        finally:
            server.stop()
        latencies = [ms for r in readers for ms in r.latencies_ms]
        errors = [f"reader{r.index:02d} {e}" for r in readers for e in r.errors]
        lost = lost_texts(database_url, readers)
        print(f"{name}: {n_readers} readers x {duration_s:.0f} s, a save every {interval_s:.0f} s "
              f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after): "
              f"{len(latencies)} saves; autosave latency p50 {percentile(latencies, 50):.0f} ms, "
              f"p95 {percentile(latencies, 95):.0f} ms, max {max(latencies, default=float('nan')):.0f} ms; "
              f"errors {len(errors)}; lost texts {len(lost)} of {n_readers}")
        for line in errors[:10]:
            print(f"  error: {line}")
        if lost:
            print(f"  lost: {', '.join(lost)}")
        if errors:
            print(f"  server log tail:\n{server.log_tail(2000)}")
        return not errors and not lost


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the bench; exit status 1 when a database had errors or lost texts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=30)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of autosaving (default 120)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a reader's saves (default 5)")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    ok = True
    if args.database in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="load-db-") as folder:
            ok &= run_one("SQLite (WAL)", f"sqlite:///{folder}/study.db", args.readers, args.duration, args.interval)
    if args.database in ("postgresql", "both"):
        with throwaway_postgresql() as url:
            ok &= run_one("PostgreSQL", url, args.readers, args.duration, args.interval)
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
