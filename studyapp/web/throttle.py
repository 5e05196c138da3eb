"""Sign-in throttling: growing delays and a temporary lockout after failed sign-ins, per account and per client
address (OWASP Authentication Cheat Sheet, "Protect against automated attacks").

Each key (an account name, whether it exists or not, and a client address) counts its failed sign-ins since its last
success. The first ``free_failures`` failures cost nothing; each further failure makes the key wait before its
next try is even checked: 1 s, 2 s, 4 s ... up to ``max_delay_s``; after ``lockout_failures`` failures the key is
locked for ``lockout_s``, and every failure after a lockout locks it again. A correct sign-in clears the account's
and the address's count. An address gets ``client_factor`` times the account's allowances (several readers may sign
in from behind one proxy). Counts live in the server's memory: a restart clears them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ThrottlePolicy:
    """How failed sign-ins are slowed down.

    Attributes:
        free_failures: failures answered without any delay.
        base_delay_s: the first delay (seconds); it doubles with each further failure, up to ``max_delay_s``.
        lockout_failures: failures after which the key is locked for ``lockout_s`` seconds (> ``free_failures``).
        client_factor: a client address may fail this many times as often as an account before each step.

    Raises:
        ValueError: a count or time that is not positive, or ``lockout_failures <= free_failures``.
    """

    free_failures: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    lockout_failures: int = 10
    lockout_s: float = 900.0
    client_factor: int = 5

    def __post_init__(self):
        if min(self.base_delay_s, self.max_delay_s, self.lockout_s, self.lockout_failures, self.client_factor) <= 0 \
                or self.free_failures < 0:
            raise ValueError(f"sign-in throttling needs positive counts and times, got {self}")
        if self.lockout_failures <= self.free_failures:
            raise ValueError(f"the lockout ({self.lockout_failures} failures) must come after the free failures "
                             f"({self.free_failures})")

    def wait_after(self, failures: int, factor: int = 1) -> float:
        """Seconds a key with ``failures`` failures waits before its next try (``factor`` scales the counts)."""
        if failures >= self.lockout_failures * factor:
            return self.lockout_s
        steps = failures // factor - self.free_failures
        return 0.0 if steps <= 0 else min(self.max_delay_s, self.base_delay_s * 2 ** (steps - 1))


@dataclass
class _Count:
    failures: int = 0
    next_try: float = 0.0


@dataclass
class SignInThrottle:
    """Failed sign-ins per account and per client address (thread-safe).

    Args:
        policy: delays and lockout.
        clock: monotonic seconds (for tests).
    """

    policy: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    clock: Callable[[], float] = time.monotonic
    _counts: dict[tuple[str, str], _Count] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_s(self, username: str, client: str) -> float:
        """Seconds until a sign-in as ``username`` from ``client`` is checked (0: now)."""
        now = self.clock()
        with self._lock:
            return max(0.0, *(self._counts.get(key, _Count()).next_try - now for key in self._keys(username, client)))

    def failed(self, username: str, client: str) -> bool:
        """Count a failed sign-in; returns whether it locked the account or the address now."""
        now = self.clock()
        locked = False
        with self._lock:
            if len(self._counts) > 100_000:  # a spray of names: forget keys that wait no more
                self._counts = {k: c for k, c in self._counts.items() if c.next_try > now}
            for (kind, name), factor in zip(self._keys(username, client), (1, self.policy.client_factor)):
                count = self._counts.setdefault((kind, name), _Count())
                count.failures += 1
                wait = self.policy.wait_after(count.failures, factor)
                locked |= wait >= self.policy.lockout_s
                count.next_try = now + wait
        return locked

    def succeeded(self, username: str, client: str) -> None:
        """A correct sign-in: the account and the address start again from no failures."""
        with self._lock:
            for key in self._keys(username, client):
                self._counts.pop(key, None)

    @staticmethod
    def _keys(username: str, client: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("account", username.casefold()), ("client", client)
