"""The server side of one save at a time per tab: tokens and the per-page lock."""

import threading
import time

from studyapp.services.reading import TabSave
from studyapp.ui.tab_saves import TabSaveLocks, parse_tab


def test_parse_tab_accepts_the_browser_token_only():
    assert parse_tab("0123456789abcdef" * 2 + ":42") == TabSave("0123456789abcdef" * 2, 42)
    for token in (None, "", "0123:1", "g" * 32 + ":1", "a" * 32 + ":", "a" * 32 + ":-1", "a" * 32 + ":1:2"):
        assert parse_tab(token) is None, token


def test_saves_of_one_page_run_one_at_a_time_and_other_pages_in_parallel():
    locks = TabSaveLocks()
    both_pages_inside = threading.Barrier(2, timeout=60)  # broken if one page's save waited for the other's
    running, per_page, broken, guard = {}, [], [], threading.Lock()

    def save(page: str, sequence: int):
        with locks.hold(TabSave(page, sequence)):
            with guard:
                running[page] = running.get(page, 0) + 1
                per_page.append(running[page])
            if sequence == 0:
                try:
                    both_pages_inside.wait()
                except threading.BrokenBarrierError:
                    broken.append(page)
            time.sleep(0.01)
            with guard:
                running[page] -= 1

    threads = [threading.Thread(target=save, args=(page, n)) for n in range(6) for page in ("a" * 32, "b" * 32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(per_page) == 1  # never two saves of one page at once
    assert not broken  # the first saves of the two pages were inside their locks at the same time
    assert len(locks._locks) == 0  # nothing kept for pages without a save
