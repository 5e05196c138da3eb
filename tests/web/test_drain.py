"""The graceful stop's wait: until the actions in progress and the queued events are done, bounded."""

import threading
import time

from studyapp.web.drain import InFlight


def test_drain_waits_for_running_actions_and_queued_events():
    work = InFlight()
    started, release = threading.Event(), threading.Event()

    def save():
        with work.action():
            started.set()
            release.wait(10)

    thread = threading.Thread(target=save)
    thread.start()
    started.wait(10)
    threading.Timer(0.3, release.set).start()
    began = time.monotonic()
    assert work.drain(10) and work.draining and work.running == 0
    assert time.monotonic() - began >= 0.25  # it waited for the save
    thread.join()

    queued = [2]
    threading.Timer(0.2, lambda: queued.__setitem__(0, 0)).start()
    assert work.drain(10, queued=lambda: queued[0])


def test_drain_gives_up_after_its_time():
    work = InFlight()
    with work.action():
        began = time.monotonic()
        assert not work.drain(0.2)
        assert 0.15 < time.monotonic() - began < 5
