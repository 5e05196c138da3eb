"""CheXmask lung and heart masks (run-length encoded) -> 2D segmentation samples, and detection samples with the
masks' box extents (paper Table 4: CheXmask, 2D segmentation).

Expected layout (PhysioNet chexmask-cxr-segmentation-data, unpacked)::

    ROOT/
      OriginalResolution/MIMIC-CXR-JPG.csv[.gz]   dicom_id, ..., Left Lung, Right Lung, Heart, Height, Width
      OriginalResolution/ChestX-Ray8.csv[.gz]     Image Index, ..., Left Lung, Right Lung, Heart, Height, Width
    IMAGES_ROOT/                                  the images the masks belong to:
      MIMIC-CXR-JPG (``source="mimic-cxr-jpg"``: metadata csv + files/..., see engine.data.adapters.mimic_cxr)
      NIH ChestX-ray8 (``source="chestx-ray8"``: images/00000001_000.png, ...)

Masks are decoded with :func:`engine.data.adapters.common.rle_decode` (1-based starts, row-major, ``Height`` x
``Width``; an empty cell is an organ without mask) and written as 0/255 PNGs into ``chexmask_masks/`` next to the
manifest. Each organ gives "The segmentation mask of left lung is <2DSEG>."; with ``detection`` each image also
gives "left lung <DET>. right lung <DET>. heart <DET>." with the masks' normalized extents.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from engine.data.adapters.common import (AdapterError, detection_answer, finish, first_existing, image_size,
                                         iter_csv, manifest_path, mask_box, require_file, rle_decode,
                                         segmentation_sample, table5)
from engine.data.adapters.mimic_cxr import MimicCxrJpg
from engine.data.schema import ImageRef, ImagingType, MaskTarget, Sample
from engine.processing import Task

SOURCE = "chexmask"
ORGANS = {"Left Lung": "left lung", "Right Lung": "right lung", "Heart": "heart"}
MASK_DIR = "chexmask_masks"
#: source -> (csv name under OriginalResolution/, image id column)
SOURCES = {"mimic-cxr-jpg": ("MIMIC-CXR-JPG.csv", "dicom_id"), "chestx-ray8": ("ChestX-Ray8.csv", "Image Index")}


def build_chexmask(root: Path, out_manifest: Path, images_root: Path, source: str = "mimic-cxr-jpg",
                   detection: bool = True, seed: int = 0) -> int:
    """Write the CheXmask segmentation (and detection) samples of one source dataset to ``out_manifest``, with the
    decoded mask PNGs next to it; returns the sample count.

    Raises:
        AdapterError: unknown ``source``; the CheXmask csv (or the MIMIC-CXR-JPG metadata csv) is missing or lacks
            columns; an image is missing or unreadable; a row's RLE or Height/Width is malformed or its Height x Width
            differs from the image size (row and file named).
    """
    if source not in SOURCES:
        raise AdapterError(f"unknown CheXmask source {source!r}; known: {sorted(SOURCES)}")
    root, out_manifest, images_root = Path(root), Path(out_manifest), Path(images_root)
    name, id_column = SOURCES[source]
    csv_path = first_existing([root / "OriginalResolution" / name, root / "OriginalResolution" / f"{name}.gz"],
                              "CheXmask csv")
    rows = iter_csv(csv_path, (id_column, *ORGANS, "Height", "Width"), "CheXmask csv")
    mimic = MimicCxrJpg(images_root) if source == "mimic-cxr-jpg" else None
    mask_dir = out_manifest.parent / MASK_DIR
    mask_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    samples: list[Sample] = []
    skipped: dict[str, int] = defaultdict(int)
    for line, row in enumerate(rows, start=2):
        key = row[id_column]
        image = mimic.image_path(key) if mimic else require_file(images_root / "images" / key, "ChestX-ray8 image")
        try:
            height, width = int(row["Height"]), int(row["Width"])
        except ValueError:
            raise AdapterError(f"{csv_path} line {line}: Height {row['Height']!r} and Width {row['Width']!r} must be "
                               "integers") from None
        size = image_size(image, "ChestX-ray8 image" if mimic is None else "MIMIC-CXR-JPG image")
        if size != (width, height):
            raise AdapterError(f"{csv_path} line {line}: mask size {width}x{height} differs from the image "
                               f"size {size[0]}x{size[1]} of {image}")
        images = (ImageRef(path=manifest_path(image, out_manifest.parent), modality=ImagingType.CHEST_XRAY.value),)
        stem = Path(key).stem
        entries = []
        for column, organ in ORGANS.items():
            if not row[column]:
                skipped[f"no {organ} mask"] += 1
                continue
            try:
                mask = rle_decode(row[column], height, width)
            except ValueError as err:
                raise AdapterError(f"{csv_path} line {line}, column {column!r}: {err}") from err
            path = mask_dir / f"{stem}_{organ.replace(' ', '_')}.png"
            Image.fromarray((mask * 255).astype(np.uint8)).save(path)
            entries.append((organ, mask_box(mask)))
            target = MaskTarget(path=manifest_path(path, out_manifest.parent), label=organ)
            samples.append(segmentation_sample(f"{SOURCE}:{stem}:{organ}", SOURCE, images, organ, target, rng))
        if detection and entries:
            answer, boxes = detection_answer(entries)
            samples.append(Sample(sample_id=f"{SOURCE}:{stem}:detection", source=SOURCE, task=Task.DETECTION.value,
                                  imaging=ImagingType.CHEST_XRAY.value, images=images,
                                  **table5(Task.DETECTION, rng, target=", ".join(o for o, _ in entries)),
                                  answer=answer, boxes=boxes))
    return finish(samples, out_manifest, SOURCE, dict(skipped))
