"""Throttling arithmetic: free failures, doubling delays with a ceiling, lockout and re-lock, per-address factor."""

import pytest

from studyapp.web.throttle import SignInThrottle, ThrottlePolicy


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_delays_double_then_lock_and_success_clears():
    clock = Clock()
    throttle = SignInThrottle(ThrottlePolicy(free_failures=2, base_delay_s=1, max_delay_s=3, lockout_failures=6,
                                             lockout_s=600), clock)
    waits = []
    for _ in range(6):
        locked = throttle.failed("Reader1", "10.0.0.1")
        waits.append(throttle.wait_s("reader1", "10.0.0.2"))  # the account, from another address
    assert waits == [0, 0, 1, 2, 3, 600] and locked
    assert throttle.wait_s("reader2", "10.0.0.1") == 0  # the address has 5x the allowance
    clock.now += 601
    assert throttle.wait_s("reader1", "10.0.0.1") == 0
    assert throttle.failed("reader1", "10.0.0.1")  # after a lockout, one more failure locks again
    throttle.succeeded("reader1", "10.0.0.1")
    assert throttle.wait_s("reader1", "10.0.0.1") == 0


def test_bad_policies_are_refused():
    with pytest.raises(ValueError, match="must come after the free failures"):
        ThrottlePolicy(free_failures=5, lockout_failures=5)
    with pytest.raises(ValueError, match="positive"):
        ThrottlePolicy(lockout_s=0)


def test_a_correct_sign_in_takes_back_only_its_own_try_from_the_address():
    throttle = SignInThrottle(ThrottlePolicy(free_failures=0, base_delay_s=1, lockout_failures=3, client_factor=2),
                              Clock())
    throttle.failed("a", "10.0.0.1")
    throttle.failed("a", "10.0.0.1")  # two wrong passwords for a
    throttle.failed("b", "10.0.0.1")  # a try counted before it is checked ...
    throttle.succeeded("b", "10.0.0.1")  # ... and right: b is clear, the address keeps a's two failures
    assert throttle.wait_s("b", "10.0.0.2") == 0
    assert throttle.wait_s("b", "10.0.0.1") == 1
