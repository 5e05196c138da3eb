"""Dataset adapters: each reads one public dataset in its own published layout and writes a manifest.

One module per dataset, with ``build_<dataset>(root: Path, out_manifest: Path, ..., seed: int) -> int`` (the
number of samples written). Register it in :data:`ADAPTERS` so that ``python -m engine.data convert NAME ROOT OUT``
finds it; modules are imported only when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

#: Dataset name (as typed on the command line) -> ``"module:function"`` of its builder.
ADAPTERS: dict[str, str] = {}


def get_adapter(name: str) -> Callable[..., int]:
    """The builder registered as ``name``.

    Raises:
        ValueError: no adapter of that name (the message lists the known ones).
    """
    if name not in ADAPTERS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(ADAPTERS)}")
    module, function = ADAPTERS[name].split(":")
    return getattr(importlib.import_module(module), function)
