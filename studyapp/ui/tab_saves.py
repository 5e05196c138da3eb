"""One save at a time per browser tab: the server side of "saves of one tab are serialised".

Every handler that saves a reader's text (periodic and typing autosaves, leaving the editor, switching case, asking
for the questions, submitting) runs inside :meth:`TabSaveLocks.hold` for the tab that sent it, so two saves of one
page never run at once whatever Gradio's queue does; :func:`studyapp.services.reading.autosave` then orders them by
the tab's sequence number. The browser sends ``"<page id>:<sequence>"`` (``autosave.js``, ``window.studySave``).
"""

import re
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from studyapp.services.reading import TabSave

_TOKEN = re.compile(r"([0-9a-f]{16,64}):([0-9]{1,15})")


def parse_tab(token: str | None) -> TabSave | None:
    """The :class:`TabSave` of a page's save token ``"<hex page id>:<sequence>"``; ``None`` for anything else (a
    save without a tab is checked against its base version alone, never favoured)."""
    match = _TOKEN.fullmatch(token or "")
    return TabSave(match[1], int(match[2])) if match else None


class TabSaveLocks:
    """A lock per open page, dropped once no save of that page holds or waits for it."""

    def __init__(self):
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, tab: TabSave | None) -> Iterator[None]:
        """Run the block while no other save of ``tab``'s page runs (no lock for a save without a tab)."""
        if tab is None:
            yield
            return
        with self._guard:
            lock = self._locks.get(tab.page)
            if lock is None:
                lock = self._locks[tab.page] = threading.Lock()
        with lock:
            yield
