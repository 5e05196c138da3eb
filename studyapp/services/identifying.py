"""Which identifying attributes a DICOM file carries: the attributes of the Basic Application Level
Confidentiality Profile (DICOM PS3.15 Annex E, Table E.1-1) that are present with a value.

The table is not copied here: it comes from ``dicom-anonymizer`` (KitwareMedical), which generates its lists from
the standard's Table E.1-1 (:data:`TABLE_VERSION`, the 2026c edition), one list per Basic Profile action: ``D``
replace with a dummy value, ``Z`` replace with an empty or dummy value, ``X`` remove, ``U`` replace the UID, and the
combined actions (``X/Z``, ``X/D``, ``X/Z/D``, ``X/Z/U*``, ``Z/D``). Entries of a repeating group (curve data
``50xx``, overlay comments and data ``60xx``) are given with masks. Private attributes (odd groups) are removed by
the Basic Profile as well (action ``X`` unless the Retain Safe Private Option applies) and are listed as such.

Only the attribute's tag, keyword and action are reported, never its value, so a listing never repeats what it
warns about. An attribute present with an empty value (a type 2 ``PatientName`` left blank) identifies no one and
is not listed. UIDs (action ``U``) are listed but :func:`identifying_beyond_uids` leaves them out: an archive made
with ``--no-images`` keeps the UIDs, which tie the study to its images at the site.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pydicom
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.datadict import keyword_for_tag
from pydicom.tag import Tag

#: Edition of PS3.15 Table E.1-1 the attribute lists were generated from (a module of ``dicom-anonymizer``).
TABLE_VERSION = "dicomfields_2026c"

#: ``dicom-anonymizer``'s list name -> Basic Profile action code of Table E.1-1.
ACTIONS = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}
#: The action of private attributes in the Basic Profile (removed).
PRIVATE_ACTION = "X"


@dataclass(frozen=True)
class IdentifyingAttribute:
    """One Basic Profile attribute present with a value: ``tag`` as ``(gggg,eeee)``, its DICOM ``keyword``
    (``"private"`` for a private attribute) and the profile's ``action`` (``D``, ``Z``, ``X``, ``U``, ...)."""

    tag: str
    keyword: str
    action: str


@cache
def _profile() -> tuple[dict[int, str], list[tuple[int, int, int, int, str]]]:
    """The Basic Profile as ``({tag: action}, [(group, element, group mask, element mask, action)])``."""
    exact, masked = {}, []
    for name, tags in dicom_anonymization_database_selector(TABLE_VERSION).items():
        if name not in ACTIONS:
            continue  # ALL_TAGS: the union of the others
        for entry in tags:
            if len(entry) == 2:
                exact[int(Tag(entry))] = ACTIONS[name]
            else:
                masked.append((*entry, ACTIONS[name]))
    return exact, masked


def profile_action(tag: int) -> str | None:
    """The Basic Profile action of the attribute ``tag`` (an int such as ``0x00100010``), ``PRIVATE_ACTION`` for a
    private attribute, or ``None`` when the profile keeps it."""
    tag = Tag(tag)
    if tag.is_private:
        return PRIVATE_ACTION
    exact, masked = _profile()
    if int(tag) in exact:
        return exact[int(tag)]
    for group, element, group_mask, element_mask, action in masked:
        if tag.group & group_mask == group and tag.element & element_mask == element:
            return action
    return None


def identifying_attributes(dataset: pydicom.Dataset) -> list[IdentifyingAttribute]:
    """The Basic Profile attributes present with a non-empty value anywhere in ``dataset`` (sequence items
    included), each listed once, in tag order. Group lengths and the file meta information are not attributes
    of the dataset and are not looked at."""
    found: dict[int, IdentifyingAttribute] = {}
    for element in dataset.iterall():
        tag = element.tag
        if tag.element == 0 or int(tag) in found or element.is_empty:
            continue
        action = profile_action(tag)
        if action is not None:
            keyword = "private" if tag.is_private else (keyword_for_tag(tag) or "unknown")
            found[int(tag)] = IdentifyingAttribute(f"({tag.group:04X},{tag.element:04X})", keyword, action)
    return [found[t] for t in sorted(found)]


def file_identifying_attributes(path: str | Path) -> list[IdentifyingAttribute]:
    """:func:`identifying_attributes` of the DICOM file at ``path`` (read without its pixel data).

    Raises:
        OSError: the file cannot be read.
        pydicom.errors.InvalidDicomError: it is not a DICOM file.
    """
    return identifying_attributes(pydicom.dcmread(path, stop_before_pixels=True))


def identifying_beyond_uids(attributes: list[IdentifyingAttribute]) -> list[IdentifyingAttribute]:
    """``attributes`` without the UIDs (action ``U``), which an archive keeps even without its images."""
    return [a for a in attributes if a.action != "U"]
