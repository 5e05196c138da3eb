"""Dataset adapters: each reads one public dataset in its own published layout and writes a manifest.

One module per dataset, with ``build_<dataset>(root: Path, out_manifest: Path, ..., seed: int) -> int`` (the
number of samples written). Register it in :data:`ADAPTERS` so that ``python -m engine.data convert NAME ROOT OUT``
finds it; modules are imported only when used.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path

#: Dataset name (as typed on the command line) -> ``"module:function"`` of its builder.
ADAPTERS: dict[str, str] = {
    "chest-imagenome": "engine.data.adapters.chest_imagenome:build_chest_imagenome",
    "chexmask": "engine.data.adapters.chexmask:build_chexmask",
    "ham10000": "engine.data.adapters.ham10000:build_ham10000",
    "iu-xray": "engine.data.adapters.iu_xray:build_iu_xray",
    "medical-diff-vqa": "engine.data.adapters.medical_diff_vqa:build_medical_diff_vqa",
    "mimic-cxr": "engine.data.adapters.mimic_cxr:build_mimic_cxr",
    "msd": "engine.data.adapters.msd:build_msd",
    "totalsegmentator": "engine.data.adapters.totalsegmentator:build_totalsegmentator",
}

_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def get_adapter(name: str) -> Callable[..., int]:
    """The builder registered as ``name``.

    Raises:
        ValueError: no adapter of that name (the message lists the known ones).
    """
    if name not in ADAPTERS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(ADAPTERS)}")
    module, function = ADAPTERS[name].split(":")
    return getattr(importlib.import_module(module), function)


def adapter_kwargs(builder: Callable[..., int], options: dict[str, str]) -> dict[str, object]:
    """Command-line ``KEY=VALUE`` strings -> keyword arguments of ``builder``, typed by its annotations: ``Path``,
    ``bool`` (true/false, yes/no, 1/0), ``int``, ``tuple[str, ...]`` (comma-separated), ``str``.

    Raises:
        ValueError: a key the builder does not take (the message lists those it takes), or a value of the wrong kind.
    """
    hints = typing.get_type_hints(builder)
    accepted = [n for n in inspect.signature(builder).parameters if n not in ("root", "out_manifest", "seed")]
    kwargs: dict[str, object] = {}
    for key, text in options.items():
        if key not in accepted:
            raise ValueError(f"{builder.__name__} takes no option {key!r}; it takes {accepted}")
        kind = hints[key]
        kinds = set(typing.get_args(kind)) if typing.get_origin(kind) in (typing.Union, types.UnionType) else {kind}
        if Path in kinds:
            kwargs[key] = Path(text)
        elif bool in kinds:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(f"option {key} needs true or false, got {text!r}")
            kwargs[key] = text.lower() in _TRUE
        elif int in kinds:
            try:
                kwargs[key] = int(text)
            except ValueError as err:
                raise ValueError(f"option {key} needs an integer, got {text!r}") from err
        elif typing.get_origin(kind) is tuple:
            kwargs[key] = tuple(part.strip() for part in text.split(",") if part.strip())
        else:
            kwargs[key] = text
    return kwargs
