"""A series decoded once: the browser viewer's frame bodies (``studyapp.dicom.browser.encode_file``) made in
worker processes, one per CPU, nearest the slice on screen first, and kept in a bounded memory cache and, once
``configure``d, in the on-disk store under the data folder (``studyapp.dicom.frame_store``), so that later
slices and the reformat volume (``studyapp.dicom.reformat.load_volume``) are a copy, not a decode.

Series are queued when they are imported (``decode_in_background``) and when a reader first opens one
(``prefetch_once``, ahead of imports). A slice asked for while it is being decoded waits for that decode instead of
starting another; one asked for while still queued goes first in the workers' queue, so the first slice on screen
never waits behind the rest of its series (the slice on screen is decoded by the asking thread, as is any slice
while no worker is up). The workers
run at a lower priority than the app (``WORKER_NICENESS``). A series whose bodies would not fit in the store (the memory
cache without one) is queued only as far as it holds (the slices nearest the one on screen); the rest are decoded
when asked for, evicting the least recently used. A slice that cannot be decoded keeps its own error; the others
are decoded.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from studyapp.dicom import browser, display
from studyapp.dicom.frame_store import FrameStore

WORKERS = max(1, os.cpu_count() or 1)
"""Worker processes decoding at the same time (JPEG 2000 decoding holds the GIL, so threads would not help)."""

WORKER_NICENESS = 10
"""Added to the workers' nice value: the app's own requests (a reader's saves, the slices it sends) go first while a
large import decodes; the workers still take every idle CPU."""

MEMORY_BYTES = 256 * 1024 * 1024
"""Upper bound on the memory of the bodies kept in this process (recently sent, warmed ahead)."""

FORMAT = 1
"""Version of the body layout in the store's keys (a new layout never reads an old body)."""

_ASKED, _OPENED, _IMPORTED = -1, 0, 1  # queue ranks: a slice a request waits for, a series a reader opened, imports


@dataclass(frozen=True)
class Body:
    """One body as ``bodies`` keeps it."""

    body: bytes

    @property
    def nbytes(self) -> int:
        """Bytes of the body."""
        return len(self.body)


bodies = display.FrameCache(MEMORY_BYTES)
"""Bodies in memory, keyed by ``frame_key`` (reformat bodies by their own keys)."""

_store: FrameStore | None = None
_cond = threading.Condition()
_jobs: dict[str, Future] = {}  # key -> the body being made (queued or running)
_queue: list[tuple] = []  # (rank, distance, seq, key, path, frame)
_seq = itertools.count()
_running = 0
_pool: ProcessPoolExecutor | None = None
_warm = False  # every worker of _pool has answered
_dispatcher: threading.Thread | None = None
_scheduled: dict[tuple, None] = {}  # series whose prefetch was started, most recent last
_SCHEDULED_KEPT = 32


def configure(folder: str | os.PathLike, max_bytes: int) -> FrameStore:
    """Keep bodies on disk in ``folder`` (at most ``max_bytes``) from now on; returns the store.

    Raises:
        ValueError: ``max_bytes`` is not positive. OSError: the folder cannot be created.
    """
    global _store
    _store = FrameStore(folder, max_bytes)
    _workers()  # started now: a worker takes a second or more to import the decoders
    return _store


def _ready() -> int:
    """Run in a worker process once this module (and the decoders) is imported there."""
    return os.getpid()


def _workers() -> ProcessPoolExecutor:
    """The worker processes, started when first needed (again after one died), at ``WORKER_NICENESS``. They are
    forked from a fork server that has imported the main module and this one, so a worker starts without importing
    them again; until every worker has answered, the dispatcher hands them nothing, so a reader's slice never waits
    behind their start."""
    global _pool, _warm
    with _cond:
        if _pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["__main__", __name__])  # imported once, not in each worker
            _pool = ProcessPoolExecutor(max_workers=WORKERS, mp_context=context, initializer=os.nice,
                                        initargs=(WORKER_NICENESS,))
            _warm = False
            pool = _pool
            answers = [pool.submit(_ready) for _ in range(WORKERS)]
            threading.Thread(target=_warm_up, args=(pool, answers), name="series-decode-start", daemon=True).start()
        return _pool


def _warm_up(pool: ProcessPoolExecutor, answers: list[Future]) -> None:
    """Let the dispatcher use ``pool`` once every worker answered; a pool whose workers could not start is never
    used (the requests then decode in their own threads, as without workers)."""
    global _warm
    for answer in answers:
        try:
            answer.result()
        except BrokenProcessPool:
            return
    with _cond:
        if _pool is pool:
            _warm = True
            _cond.notify_all()


def ready(timeout: float | None = None) -> bool:
    """Block until the worker processes have started (or ``timeout`` seconds passed); True when they have."""
    _workers()
    with _cond:
        return _cond.wait_for(lambda: _warm, timeout)


def store() -> FrameStore | None:
    """The on-disk store in use (``None`` before ``configure``)."""
    return _store


def frame_key(path: str | os.PathLike, frame: int = 0) -> str:
    """The cache key of ``frame`` of ``path`` as the file is now (path, modification time, size, frame, format).

    Raises:
        UndecodableImageError: the file cannot be read (:class:`~studyapp.dicom.display.NoImageFileError`: no file
            is stored).
    """
    resolved = display.stored_file(path).resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise display.UndecodableImageError(f"Cannot read {path}: {exc}") from exc
    text = f"{FORMAT}\0{resolved}\0{stat.st_mtime_ns}\0{stat.st_size}\0{int(frame)}"
    return hashlib.sha256(text.encode()).hexdigest()


def frame_body(path: str | os.PathLike, frame: int = 0, on_screen: bool = False) -> bytes:
    """``browser.encode_file`` of ``frame`` of ``path``, made once: from memory, else the store, else the decode
    already running for it (waited for), else decoded by the worker processes ahead of everything queued (waited
    for), else decoded now in this thread: the slice a reader has on screen (``on_screen``), or any slice while no
    worker is up. Other decodes stay out of the app's process: a JPEG 2000 decode holds the interpreter lock, which
    stalls the app's other requests (a reader's saves) while it runs.

    Raises:
        IndexError, UndecodableImageError, ValueError: as ``browser.encode_file``.
    """
    key = frame_key(path, frame)
    cached = bodies.get(key)
    if cached is not None:
        return cached.body
    body = _store.get(key) if _store is not None else None
    if body is None:
        with _cond:
            future = _jobs.get(key)
            if future is None:
                future = _jobs[key] = Future()
            waiting = future.running() or future.done()
            if not waiting and _warm and not on_screen:  # first in the workers' queue
                heapq.heappush(_queue, (_ASKED, 0, next(_seq), key, str(path), int(frame)))
                _cond.notify_all()
                waiting = True
            mine = not waiting and _claim(future)
        if not mine:
            _start_dispatcher()
        if mine:
            try:
                body = browser.encode_file(path, frame)
            except BaseException as error:
                _settle(key, future, error=error)
                raise
            _settle(key, future, body=body)
        else:
            body = future.result()
    bodies.put(key, Body(body))
    return body


def _claim(future: Future) -> bool:
    """Mark a queued body as made by the caller (``_cond`` held); False when it is already being made."""
    return not (future.running() or future.done()) and future.set_running_or_notify_cancel()


def _settle(key: str, future: Future, body: bytes | None = None, error: BaseException | None = None) -> None:
    """Keep a finished body (the store, else memory) and hand it to those waiting."""
    if error is None:
        try:
            if _store is not None:
                _store.put(key, body)
            else:
                bodies.put(key, Body(body))
        except OSError:  # disk full or the folder gone: the body still goes to the reader
            pass
    with _cond:
        _jobs.pop(key, None)
        _cond.notify_all()
    if error is None:
        future.set_result(body)
    else:
        future.set_exception(error)


def is_kept(path: str | os.PathLike, frame: int = 0) -> bool:
    """True when the body of ``frame`` of ``path`` (as the file is now) is in memory or in the store."""
    try:
        key = frame_key(path, frame)
    except display.UndecodableImageError:
        return False
    return bodies.get(key) is not None or (_store is not None and key in _store)


def _capacity() -> int:
    return _store.max_bytes if _store is not None else bodies.max_bytes


def prefetch(slices: list[tuple[str, int]] | tuple[tuple[str, int], ...], start: int,
             per_slice_bytes: int | None = None, rank: int = _OPENED) -> list[Future]:
    """Queue the slices of a series for the worker processes, nearest ``start`` first, as many as the store (the
    memory cache without one) holds (``per_slice_bytes`` estimates one body; unknown: all).

    Args:
        slices: (file path, frame index) per slice, in display order.
        start: 0-based index of the slice on screen.
        per_slice_bytes: bytes of one body (e.g. the length of the one on screen).
        rank: ``_OPENED`` (a reader waits: ahead of everything) or ``_IMPORTED``.

    Returns:
        One future per slice queued or already being made (kept bodies and unreadable files skipped); a future's
        result is the body, or it raises what ``browser.encode_file`` raises for its slice.
    """
    count = len(slices)
    order = sorted(range(count), key=lambda i: (abs(i - start), i < start))
    if per_slice_bytes:
        order = order[: max(1, _capacity() // max(1, per_slice_bytes) - 1)]
    futures = []
    for distance, i in enumerate(order):
        path, frame = str(slices[i][0]), int(slices[i][1])
        if is_kept(path, frame):
            continue
        try:
            key = frame_key(path, frame)
        except display.UndecodableImageError:
            continue  # its request says why
        with _cond:
            future = _jobs.get(key)
            if future is None:
                future = _jobs[key] = Future()
            if not (future.running() or future.done()):
                heapq.heappush(_queue, (rank, distance, next(_seq), key, path, frame))
                _cond.notify()
        futures.append(future)
    _start_dispatcher()
    return futures


def prefetch_once(slices: list[tuple[str, int]] | tuple[tuple[str, int], ...], start: int,
                  per_slice_bytes: int | None = None) -> bool:
    """``prefetch`` the first time a series is asked for (again once it has left the most recent
    ``_SCHEDULED_KEPT``); later calls cost a lookup.

    Returns:
        True when a prefetch was started.
    """
    key = tuple(slices)
    with _cond:
        if key in _scheduled:
            _scheduled[key] = _scheduled.pop(key)
            return False
        _scheduled[key] = None
        while len(_scheduled) > _SCHEDULED_KEPT:
            del _scheduled[next(iter(_scheduled))]
    prefetch(slices, start, per_slice_bytes)
    return True


def decode_in_background(slices: list[tuple[str, int]], per_slice_bytes: int | None = None) -> list[Future]:
    """Queue an imported series (behind the series readers have opened), from its middle slice outwards (the
    slice a case opens at). No-op before ``configure`` (nothing would keep the bodies beyond memory).

    Returns:
        As ``prefetch``.
    """
    if _store is None or not slices:
        return []
    middle = len(slices) // 2 if len(slices) > 1 else 0
    return prefetch(slices, middle, per_slice_bytes, rank=_IMPORTED)


def wait_idle(timeout: float | None = None) -> bool:
    """Block until nothing is queued or being made (or ``timeout`` seconds passed); True when idle."""
    with _cond:
        return _cond.wait_for(lambda: not _jobs, timeout)


def _start_dispatcher() -> None:
    global _dispatcher
    _workers()
    with _cond:
        if _dispatcher is None:
            _dispatcher = threading.Thread(target=_dispatch, name="series-decode", daemon=True)
            _dispatcher.start()


def _dispatch() -> None:
    """Feed the worker processes from the queue, best rank first, a few bodies ahead of them."""
    global _running
    while True:
        with _cond:
            _cond.wait_for(lambda: _queue and _warm and _running < WORKERS + 1)
            _, _, _, key, path, frame = heapq.heappop(_queue)
            future = _jobs.get(key)
            if future is None or not _claim(future):
                continue  # made meanwhile, or taken over by a request
            _running += 1
            pool = _pool
        try:
            done = pool.submit(browser.encode_file, path, frame)
        except BrokenProcessPool as error:  # a worker died; a new pool next time
            _made(key, path, frame, future, pool, error)
        else:
            done.add_done_callback(lambda d, k=key, p=path, f=frame, fu=future, po=pool:
                                   _made(k, p, f, fu, po, d.exception(), None if d.exception() else d.result()))


def _made(key: str, path: str, frame: int, future: Future, pool: ProcessPoolExecutor, error: BaseException | None,
          body: bytes | None = None) -> None:
    global _running, _pool, _warm
    if isinstance(error, BrokenProcessPool):
        error = display.UndecodableImageError(f"Cannot decode frame {frame} of {path}: the decoding process stopped")
        with _cond:
            if _pool is pool:
                _pool, _warm = None, False
        _workers()
    _settle(key, future, body=body, error=error)
    with _cond:
        _running -= 1
        _cond.notify_all()
