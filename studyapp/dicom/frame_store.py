"""Frame bodies on disk: the decoded frames of the viewer kept under the data folder with a size limit.

Each entry is one ``studyapp.dicom.browser.pack`` body (a small JSON header, then the decoded values and display
tables as raw little-endian arrays), in a file named by the entry's key. Files are written to a temporary name and
renamed, so a reader never sees half a body. The total size is bounded by ``max_bytes``: the least recently used
entries are deleted first (the newest entry is always kept). At start the folder's entries are taken up again,
oldest modification first, and leftover temporary files deleted.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

SUFFIX = ".frame"


class FrameStore:
    """Bounded, least-recently-used store of bodies on disk under ``folder``; safe across threads of one process.

    Args:
        folder: created when missing.
        max_bytes: upper bound on the total size of the entries' files, in bytes.

    Raises:
        ValueError: ``max_bytes`` is not positive.
        OSError: ``folder`` cannot be created.
    """

    def __init__(self, folder: str | os.PathLike, max_bytes: int):
        if max_bytes <= 0:
            raise ValueError(f"the frame store needs a positive size limit, got {max_bytes} bytes")
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._items: OrderedDict[str, int] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        found = []
        for entry in os.scandir(self.folder):
            if entry.name.endswith(SUFFIX):
                stat = entry.stat()
                found.append((stat.st_mtime_ns, entry.name[: -len(SUFFIX)], stat.st_size))
            elif entry.name.endswith(".tmp"):
                os.unlink(entry.path)
        for _, key, size in sorted(found):
            self._add(key, size)

    def _file(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def get(self, key: str) -> bytes | None:
        """The body stored under ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
        try:
            return self._file(key).read_bytes()
        except FileNotFoundError:  # deleted behind our back
            self._forget(key)
            return None

    def put(self, key: str, body: bytes) -> None:
        """Store ``body`` under ``key`` (replacing an older one) and evict beyond ``max_bytes``.

        Raises:
            OSError: the file cannot be written (disk full, folder removed); nothing is stored then.
        """
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(body)
            os.replace(temporary, self._file(key))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        with self._lock:
            self._add(key, len(body))

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def total_bytes(self) -> int:
        """Bytes the stored bodies take now."""
        return self._bytes

    def _add(self, key: str, size: int) -> None:
        self._bytes += size - self._items.pop(key, 0)
        self._items[key] = size
        while self._bytes > self.max_bytes and len(self._items) > 1:
            evicted, evicted_size = self._items.popitem(last=False)
            self._bytes -= evicted_size
            self._file(evicted).unlink(missing_ok=True)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._bytes -= self._items.pop(key, 0)
