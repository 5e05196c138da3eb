"""TotalSegmentator CT dataset -> 3D segmentation samples, one per non-empty structure mask of a subject
(paper Table 4: Totalsegmentator_dataset).

Expected layout (Zenodo TotalSegmentator dataset v1/v2, unpacked)::

    ROOT/
      meta.csv                  image_id;age;gender;...;split   (``;``-separated, optional)
      s0000/ct.nii.gz
      s0000/segmentations/liver.nii.gz, kidney_right.nii.gz, ...   one binary mask per structure, on the CT grid

Structure names come from the file names (``kidney_right`` -> "right kidney"); empty masks are skipped. With
``meta.csv``, subjects are kept by its ``split`` column (``train``, ``val``, ``test``).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path

from engine.data.adapters.common import (AdapterError, finish, label_values, manifest_path, nifti_shape, read_csv,
                                         segmentation_sample, structure_name)
from engine.data.schema import ImageRef, ImagingType, MaskTarget, Sample

SOURCE = "totalsegmentator"
SUBJECT = re.compile(r"s\d+")


def build_totalsegmentator(root: Path, out_manifest: Path, splits: tuple[str, ...] = ("train", "val"),
                           seed: int = 0) -> int:
    """Write the TotalSegmentator 3D segmentation samples to ``out_manifest``; returns the count.

    Raises:
        AdapterError: no subject folders, a subject without ``ct.nii.gz`` or ``segmentations/``, an unreadable mask,
            or a mask whose shape differs from the CT's (files named).
    """
    root, out_manifest = Path(root), Path(out_manifest)
    subjects = sorted(p for p in root.iterdir() if p.is_dir() and SUBJECT.fullmatch(p.name)) if root.is_dir() else []
    if not subjects:
        raise AdapterError(f"TotalSegmentator subject folders (s0000/ct.nii.gz) not found under {root}")
    split_of = None
    if (root / "meta.csv").is_file():
        rows = read_csv(root / "meta.csv", ("image_id", "split"), "TotalSegmentator meta.csv", delimiter=";")
        split_of = {row["image_id"]: row["split"] for row in rows}
    rng = random.Random(seed)
    samples: list[Sample] = []
    skipped: dict[str, int] = defaultdict(int)
    for subject in subjects:
        if split_of is not None and split_of.get(subject.name) not in splits:
            skipped["other split"] += 1
            continue
        ct = subject / "ct.nii.gz"
        shape = nifti_shape(ct, "TotalSegmentator CT")
        masks = sorted((subject / "segmentations").glob("*.nii.gz"))
        if not masks:
            raise AdapterError(f"TotalSegmentator masks not found: {subject / 'segmentations'}/*.nii.gz")
        images = (ImageRef(path=manifest_path(ct, out_manifest.parent), modality=ImagingType.CT.value),)
        for path in masks:
            if nifti_shape(path, "TotalSegmentator mask") != shape:
                raise AdapterError(f"TotalSegmentator mask {path} has shape {nifti_shape(path, 'mask')}, "
                                   f"the CT {ct} {shape}")
            if not label_values(path):
                skipped["empty mask"] += 1
                continue
            name = structure_name(path.name.removesuffix(".nii.gz"))
            mask = MaskTarget(path=manifest_path(path, out_manifest.parent), label=name)
            samples.append(segmentation_sample(f"{SOURCE}:{subject.name}:{name}", SOURCE, images, name, mask, rng))
    return finish(samples, out_manifest, SOURCE, dict(skipped))
