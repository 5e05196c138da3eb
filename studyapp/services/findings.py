"""Findings of model drafts: the boxes (``<DET>``) and masks (``<2DSEG>``/``<3DSEG>``) MedVersa grounds its
sentences with (paper section 4.2, Table 5), stored with the draft and shown on the image to readers of an arm that
shows findings ("model draft with findings").

In a drafts JSONL line, ``findings`` is a list of:

    {"type": "box", "sentence": str, "sop_instance_uid": str, "frame": int, "xyxy": [x0, y0, x1, y1]}
        normalized xyxy (0..1, x to the right, y down) on that frame of that instance of the case;
    {"type": "mask", "sentence": str, "rows": int, "columns": int,
     "slices": [{"sop_instance_uid": str, "frame": int, "rle": [int, ...]}, ...]}
        one binary mask per image (a 2D mask: one slice; a 3D mask: its non-empty slices of the series), each a
        row-major run-length code: lengths of alternating runs of 0 and 1, starting with 0, summing to rows x columns.

Blinding: :func:`shown_findings` returns findings only to the reader of the case under an arm that shows them;
every other reader, and every other screen, gets none.
"""

from __future__ import annotations

import json
from numbers import Integral, Real

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyapp.db.models import Assignment, Case, Draft, DraftFinding, User
from studyapp.services import images

KINDS = ("box", "mask")


def encode_rle(mask: np.ndarray) -> list[int]:
    """Row-major run lengths of a 2D boolean mask, starting with a (possibly empty) run of 0.

    Args:
        mask: (rows, columns) bool or 0/1 array.

    Returns:
        Run lengths summing to ``mask.size``.
    """
    flat = np.asarray(mask, dtype=bool).ravel()
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat.size and flat[0] else runs


def decode_rle(counts: list[int], rows: int, columns: int) -> np.ndarray:
    """The (rows, columns) bool mask of :func:`encode_rle` counts.

    Raises:
        ValueError: a negative or non-integer count, or counts not summing to rows x columns.
    """
    if not all(isinstance(c, Integral) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise ValueError("run lengths must be non-negative integers")
    if sum(counts) != rows * columns:
        raise ValueError(f"run lengths sum to {sum(counts)}, not rows x columns = {rows * columns}")
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(rows, columns)


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _image_problem(image: dict, frames: dict[str, int]) -> str | None:
    uid = image.get("sop_instance_uid")
    if uid not in frames:
        return f"sop_instance_uid {uid!r} is not an image of this case"
    frame = image.get("frame", 0)
    if not _is_int(frame) or not 0 <= frame < frames[uid]:
        return f"frame {frame!r} is not a frame of {uid} (it has {frames[uid]})"
    return None


def _problem(item, frames: dict[str, int]) -> str | None:
    if not isinstance(item, dict):
        return "is not an object"
    if item.get("type") not in KINDS:
        return f"type must be one of {', '.join(KINDS)}, not {item.get('type')!r}"
    if not isinstance(item.get("sentence"), str) or not item["sentence"].strip():
        return "has no sentence"
    if item["type"] == "box":
        xyxy = item.get("xyxy")
        if not (isinstance(xyxy, list) and len(xyxy) == 4 and all(isinstance(v, Real) and not isinstance(v, bool)
                                                                  for v in xyxy)):
            return "xyxy must be 4 numbers"
        x0, y0, x1, y1 = xyxy
        if not (0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1):
            return f"xyxy {xyxy} is not a normalized box (0 <= x0 <= x1 <= 1, 0 <= y0 <= y1 <= 1)"
        return _image_problem(item, frames)
    rows, columns, slices = item.get("rows"), item.get("columns"), item.get("slices")
    if not (_is_int(rows) and _is_int(columns) and rows > 0 and columns > 0):
        return "rows and columns must be positive integers"
    if not isinstance(slices, list) or not slices or not all(isinstance(s, dict) for s in slices):
        return "slices must be a non-empty list of objects"
    for image in slices:
        problem = _image_problem(image, frames)
        if problem:
            return problem
        try:
            decode_rle(image.get("rle") if isinstance(image.get("rle"), list) else [], rows, columns)
        except ValueError as error:
            return f"rle of {image['sop_instance_uid']}: {error}"
    return None


def parse_findings(value, case: Case) -> list[DraftFinding] | str:
    """Unsaved findings of one drafts row, or the reason the row is rejected.

    Args:
        value: the row's ``findings``: a list as in the module docstring, JSON text of one (CSV), or None/"".
        case: the row's case; every referenced image must be one of its instances.
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            return f"findings is not JSON: {error}"
    if not isinstance(value, list):
        return "findings must be a list"
    frames = {i.sop_instance_uid: i.number_of_frames or 1 for s in case.series for i in s.instances}
    out = []
    for position, item in enumerate(value, start=1):
        problem = _problem(item, frames)
        if problem:
            return f"finding {position} {problem}"
        geometry = {k: v for k, v in item.items() if k not in ("type", "sentence")}
        if item["type"] == "box":
            geometry.setdefault("frame", 0)
        out.append(DraftFinding(position=position, kind=item["type"], sentence=item["sentence"].strip(),
                                geometry=geometry))
    return out


def as_rows(findings: list[DraftFinding]) -> list[tuple]:
    """Comparable content of findings (re-import: identical or conflicting)."""
    return [(f.position, f.kind, f.sentence, json.dumps(f.geometry, sort_keys=True)) for f in findings]


def shown_findings(session: Session, user: User, case_id: int) -> list[dict]:
    """The findings the viewer draws for ``user`` on ``case_id``: those of the draft the user reads the case
    with, when that arm shows findings; ``[]`` otherwise (other arms, no reading assignment, coordinators).

    Returns:
        Per finding: ``{"sentence", "kind", "stack", "slice", "xyxy"}`` for a box, ``{"sentence", "kind", "rows",
        "columns", "slices": [{"stack", "slice", "rle"}]}`` for a mask; stack and slice are 0-based indices into
        ``images.case_stacks``. Images no longer in the case are left out.
    """
    assignment = session.scalar(select(Assignment).where(Assignment.reader_id == user.id,
                                                         Assignment.case_id == case_id))
    if assignment is None or not assignment.arm.shows_findings:
        return []
    draft = session.scalar(select(Draft).where(Draft.case_id == case_id, Draft.arm_id == assignment.arm_id))
    if draft is None or not draft.findings:
        return []
    where = {}
    for s, stack in enumerate(images.case_stacks(session, user, case_id)):
        for n, key in enumerate(stack.images):
            where[key] = (s, n)
    shown = []
    for finding in draft.findings:
        geometry = finding.geometry
        if finding.kind == "box":
            at = where.get((geometry["sop_instance_uid"], geometry.get("frame", 0)))
            if at:
                shown.append({"sentence": finding.sentence, "kind": "box", "stack": at[0], "slice": at[1],
                              "xyxy": geometry["xyxy"]})
            continue
        slices = [{"stack": at[0], "slice": at[1], "rle": image["rle"]} for image in geometry["slices"]
                  if (at := where.get((image["sop_instance_uid"], image.get("frame", 0))))]
        if slices:
            shown.append({"sentence": finding.sentence, "kind": "mask", "rows": geometry["rows"],
                          "columns": geometry["columns"], "slices": slices})
    return shown
