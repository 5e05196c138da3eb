"""Sign-in throttling: growing delays and a temporary lockout after failed sign-ins, per account and per client
address (OWASP Authentication Cheat Sheet, "Protect against automated attacks").

Each key (an account name, whether it exists or not, and a client address) counts its failed sign-ins since its last
success. The first ``free_failures`` failures cost nothing; each further failure makes the key wait before its
next try is even checked: 1 s, 2 s, 4 s ... up to ``max_delay_s``; after ``lockout_failures`` failures the key is
locked for ``lockout_s``, and every failure after a lockout locks it again. Each try is counted before its
password is checked (tries sent in parallel see each other); a correct sign-in then clears the account's count and
takes its own try back from the address's count. An address gets ``client_factor`` times the account's allowances (several readers may sign
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
    last: float = 0.0  # when the last failure was counted


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
            return max(0.0, *(self._next_try(key, factor) - now for key, factor in self._keys(username, client)))

    def failed(self, username: str, client: str) -> bool:
        """Count a try as failed (before checking it: :meth:`succeeded` takes it back); returns whether it locked
        the account or the address now."""
        now = self.clock()
        locked = False
        with self._lock:
            if len(self._counts) > 100_000:  # a spray of names: forget keys that wait no more
                self._counts = {k: c for k, c in self._counts.items()
                                if self._next_try(k, self.policy.client_factor if k[0] == "client" else 1) > now}
            for key, factor in self._keys(username, client):
                count = self._counts.setdefault(key, _Count())
                count.failures += 1
                count.last = now
                locked |= self.policy.wait_after(count.failures, factor) >= self.policy.lockout_s
        return locked

    def succeeded(self, username: str, client: str) -> None:
        """A correct sign-in (its try counted by :meth:`failed`): the account starts again from no failures, the
        address's count loses this try."""
        with self._lock:
            (account, _), (address, _) = self._keys(username, client)
            self._counts.pop(account, None)
            count = self._counts.get(address)
            if count is not None:
                count.failures -= 1
                if count.failures <= 0:
                    del self._counts[address]

    def _next_try(self, key: tuple[str, str], factor: int) -> float:
        count = self._counts.get(key)
        return 0.0 if count is None else count.last + self.policy.wait_after(count.failures, factor)

    def _keys(self, username: str, client: str) -> tuple[tuple[tuple[str, str], int], tuple[tuple[str, str], int]]:
        """The account's and the address's keys, each with its allowance factor."""
        return (("account", username.casefold()), 1), (("client", client), self.policy.client_factor)
