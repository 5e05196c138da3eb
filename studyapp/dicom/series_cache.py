"""A series decoded once: its slices decoded in parallel, nearest the slice on screen first, into the bounded
decoded-frame cache (``display.frame_cache``), so that later slices and the reformat volume
(``studyapp.dicom.reformat.load_volume``) are a copy, not a decode.

A slice asked for while it is being decoded waits for that decode instead of starting another; one asked for while
still queued is decoded at once by the asking thread. A series whose
decoded slices would not fit in the cache is decoded only as far as the cache holds (the slices nearest the one on
screen); the rest are decoded when asked for, evicting the least recently used.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from studyapp.dicom import display

WORKERS = max(1, os.cpu_count() or 1)
"""Slices decoded at the same time (JPEG 2000 decoders release the GIL while decoding)."""

_pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="series-decode")
_lock = threading.Lock()
_pending: dict[tuple[str, int], Future] = {}
_scheduled: OrderedDict[tuple, None] = OrderedDict()  # series whose prefetch has been started, most recent last
_SCHEDULED_KEPT = 32


def load_slice(path: str | os.PathLike, frame: int = 0) -> display.DecodedFrame:
    """``display.load_frame`` of one slice, sharing a decode already in progress for it.

    Raises:
        IndexError, UndecodableImageError: as ``display.load_frame``.
    """
    key = (str(path), int(frame))
    with _lock:
        future = _pending.get(key)
    if future is None:
        return display.load_frame(path, frame)
    if _claim(future):  # still queued behind others: decoded here, now
        _settle(key, future)
    return future.result()


def _claim(future: Future) -> bool:
    """Mark a queued decode as running in the calling thread; False when a thread already runs it."""
    with _lock:
        if future.running() or future.done():
            return False
        return future.set_running_or_notify_cancel()


def _settle(key: tuple[str, int], future: Future) -> None:
    try:
        future.set_result(_decode(key))
    except BaseException as error:  # the waiting request shows it
        future.set_exception(error)


def _decode(key: tuple[str, int]) -> display.DecodedFrame:
    try:
        return display.load_frame(*key)
    finally:
        with _lock:
            _pending.pop(key, None)


def prefetch(slices: list[tuple[str, int]] | tuple[tuple[str, int], ...], start: int,
             per_slice_bytes: int | None = None) -> list[Future]:
    """Decode the slices of a series in the background, nearest ``start`` first, as many as the decoded-frame
    cache holds (``per_slice_bytes`` estimates one slice; unknown: all).

    Args:
        slices: (file path, frame index) per slice, in display order.
        start: 0-based index of the slice on screen.
        per_slice_bytes: bytes of one decoded slice (e.g. ``DecodedFrame.nbytes`` of the one on screen).

    Returns:
        One future per slice scheduled (decodes already running are shared, cached slices skipped); a future
        raises what ``display.load_frame`` raises for its slice.
    """
    count = len(slices)
    order = sorted(range(count), key=lambda i: (abs(i - start), i < start))
    if per_slice_bytes:
        order = order[: max(1, display.frame_cache.max_bytes // max(1, per_slice_bytes) - 1)]
    futures = []
    with _lock:
        for i in order:
            key = (str(slices[i][0]), int(slices[i][1]))
            future = _pending.get(key)
            if future is None:
                if display.is_cached(*key):
                    continue
                future = _pending[key] = Future()
                _pool.submit(_run, key, future)
            futures.append(future)
    return futures


def prefetch_once(slices: list[tuple[str, int]] | tuple[tuple[str, int], ...], start: int,
                  per_slice_bytes: int | None = None) -> bool:
    """``prefetch`` the first time a series is asked for (again once it has left the most recent
    ``_SCHEDULED_KEPT``); later calls cost a lookup.

    Returns:
        True when a prefetch was started.
    """
    key = tuple(slices)
    with _lock:
        if key in _scheduled:
            _scheduled.move_to_end(key)
            return False
        _scheduled[key] = None
        while len(_scheduled) > _SCHEDULED_KEPT:
            _scheduled.popitem(last=False)
    prefetch(slices, start, per_slice_bytes)
    return True


def _run(key: tuple[str, int], future: Future) -> None:
    if _claim(future):  # else a request decoded it first
        _settle(key, future)


def decode_all(slices: list[tuple[str, int]] | tuple[tuple[str, int], ...]) -> list[display.DecodedFrame]:
    """Every slice decoded (in parallel, cached ones copied), in the order given.

    Raises:
        IndexError, UndecodableImageError: a slice cannot be decoded (the first such, in order).
    """
    prefetch(slices, 0)
    return [load_slice(path, frame) for path, frame in slices]
