"""Which files a piece of code opens or lists, from Python's audit events (``open``, ``os.listdir``,
``os.scandir``): the real reads of the process, without mocks."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_RECORDING: list[list[str]] = []


def _hook(event: str, args: tuple) -> None:
    if not _RECORDING or event not in ("open", "os.listdir", "os.scandir") or not args:
        return
    target = args[0]
    if isinstance(target, (str, bytes, os.PathLike)):
        for paths in _RECORDING:
            paths.append(os.fsdecode(target))


sys.addaudithook(_hook)  # audit hooks cannot be removed; it does nothing while nothing records


@contextmanager
def recording_opens() -> Iterator[list[str]]:
    """Collect the paths opened (files) or listed (folders) in this process while the block runs."""
    paths: list[str] = []
    _RECORDING.append(paths)
    try:
        yield paths
    finally:
        _RECORDING.remove(paths)
