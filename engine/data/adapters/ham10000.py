"""HAM10000 / ISIC 2018 dermoscopy -> skin lesion classification and 2D lesion segmentation samples (paper 4.1).

Expected layout (Harvard Dataverse HAM10000 release, unpacked; a single ``images/`` folder also works)::

    ROOT/
      HAM10000_metadata.csv                 lesion_id, image_id, dx, dx_type, age, sex, localization
      HAM10000_images_part_1/ISIC_0024306.jpg, HAM10000_images_part_2/...   (or images/ISIC_*.jpg)
      HAM10000_segmentations_lesion_tschandl/ISIC_0024306_segmentation.png   (optional: lesion masks, 0/255)

Classification answers spell the diagnosis out (``nv`` -> "melanocytic nevus"; never abbreviated, so that
"melanocytic nevus" is not read as melanoma: released defect 6). The context is
``Age:{age}.Gender:{sex}.Location:{localization}.`` without the parts recorded as unknown. With the mask folder,
each image also gives a segmentation sample "The segmentation mask of skin lesion is <2DSEG>.".
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from engine.data.adapters.common import (AdapterError, finish, manifest_path, read_csv, require_file, table5,
                                         segmentation_sample)
from engine.data.schema import ImageRef, ImagingType, MaskTarget, Sample
from engine.processing import Task, format_context

SOURCE = "ham10000"
METADATA = "HAM10000_metadata.csv"
IMAGE_DIRS = ("images", "HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images")
MASK_DIR = "HAM10000_segmentations_lesion_tschandl"
SEGMENTATION_TARGET = "skin lesion"

#: HAM10000 ``dx`` codes (Tschandl et al., Sci Data 2018) -> the diagnosis as written in answers.
DIAGNOSES = {
    "akiec": "actinic keratosis",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}


def _known(value: str) -> str | None:
    return value if value and value.lower() != "unknown" else None


def _age(value: str) -> str | None:
    try:
        return str(int(float(value)))
    except (ValueError, OverflowError):  # "", "unknown", "nan", "inf"
        return None


def build_ham10000(root: Path, out_manifest: Path, seed: int = 0) -> int:
    """Write the HAM10000 classification (and, with masks, segmentation) samples to ``out_manifest``; returns the count.

    Raises:
        AdapterError: the metadata csv is missing or lacks its columns, a ``dx`` code is unknown, an image is in none
            of the image folders, or the mask folder lacks an image's mask (path named).
    """
    root, out_manifest = Path(root), Path(out_manifest)
    rows = read_csv(root / METADATA, ("image_id", "dx", "age", "sex", "localization"), "HAM10000 metadata csv")
    image_dirs = [root / d for d in IMAGE_DIRS if (root / d).is_dir()]
    if not image_dirs:
        raise AdapterError(f"HAM10000 image folder not found: none of {[str(root / d) for d in IMAGE_DIRS]} exists")
    mask_dir = root / MASK_DIR
    rng = random.Random(seed)
    samples: list[Sample] = []
    skipped: dict[str, int] = defaultdict(int)
    for row in sorted(rows, key=lambda r: r["image_id"]):
        if row["dx"] not in DIAGNOSES:
            raise AdapterError(f"{root / METADATA}: image {row['image_id']} has unknown dx {row['dx']!r}; "
                               f"known: {sorted(DIAGNOSES)}")
        image = next((d / f"{row['image_id']}.jpg" for d in image_dirs if (d / f"{row['image_id']}.jpg").is_file()),
                     None)
        if image is None:
            raise AdapterError(f"HAM10000 image not found: {row['image_id']}.jpg in {[str(d) for d in image_dirs]}")
        images = (ImageRef(path=manifest_path(image, out_manifest.parent), modality=ImagingType.DERMOSCOPY.value),)
        context = format_context(age=_age(row["age"]), sex=_known(row["sex"]), location=_known(row["localization"]))
        sample_id = f"{SOURCE}:{row['image_id']}"
        samples.append(Sample(sample_id=f"{sample_id}:classification", source=SOURCE,
                              task=Task.CLASSIFICATION.value, imaging=ImagingType.DERMOSCOPY.value, images=images,
                              **table5(Task.CLASSIFICATION, rng), answer=DIAGNOSES[row["dx"]],
                              context=context))
        if not mask_dir.is_dir():
            skipped["no mask folder"] += 1
            continue
        mask = require_file(mask_dir / f"{row['image_id']}_segmentation.png", "HAM10000 lesion mask")
        target = MaskTarget(path=manifest_path(mask, out_manifest.parent), label=SEGMENTATION_TARGET)
        samples.append(segmentation_sample(f"{sample_id}:segmentation", SOURCE, images, SEGMENTATION_TARGET, target,
                                           rng, context))
    return finish(samples, out_manifest, SOURCE, dict(skipped))
