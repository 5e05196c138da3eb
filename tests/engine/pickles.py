"""Crafted pickles for the "no code from a checkpoint" tests (issue 18 item 1): each would create a marker file if
anything unpickled it."""

import pickle
from pathlib import Path

import torch


class _CreatesMarker:
    """Unpickles as ``open(marker, "w")``: the marker file exists afterwards iff the pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def plant_pickle(path: Path, marker: Path) -> None:
    """Replace ``path`` by a pickle that would create ``marker`` when loaded: a ``torch.save`` zip for ``.pt``,
    ``.pth`` and ``.bin`` files (the format ``torch.load`` expects), a bare pickle otherwise."""
    payload = {"state": _CreatesMarker(marker), "step": 1}
    if path.suffix in (".pt", ".pth", ".bin"):
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
