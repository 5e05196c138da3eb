"""Graceful stop: user actions (a save, a submission) in progress are counted, so that on SIGTERM or SIGINT the
server refuses new work and waits, for a bounded time, until the work it accepted is done."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class InFlight:
    """User actions running now, and whether the server is draining (thread-safe)."""

    def __init__(self):
        self._running = 0
        self._idle = threading.Condition()
        self.draining = False

    @contextmanager
    def action(self) -> Iterator[None]:
        """Count the enclosed work (a handler's database transaction) as in progress."""
        with self._idle:
            self._running += 1
        try:
            yield
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    @property
    def running(self) -> int:
        """Actions in progress now."""
        return self._running

    def drain(self, timeout_s: float, queued: callable = lambda: 0) -> bool:
        """Start draining (new work is refused from now on) and wait until no action runs and ``queued()`` (events
        accepted but not started) is 0, at most ``timeout_s`` seconds. Returns whether all work finished."""
        self.draining = True
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._running or queued():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
        return True
