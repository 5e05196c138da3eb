"""A training manifest of real files from ../shared/data, one group per task the tiny model can train on:
NIH chest PNG + IU report text (report), HAM10000 images + lesion masks (2D segmentation; detection with the
box of the real mask's extent, two absent classes), the TotalSegmentator CT + organ masks (3D segmentation).
Instructions (and detection classes) are re-drawn every iteration. Used by the training tests and bench/train.py."""

from pathlib import Path

import numpy as np
from PIL import Image

from engine.configuration import DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN
from engine.data.schema import BoxTarget, ImageRef, MaskTarget, Sample
from engine.processing import Task, instruction
from tests.engine.conftest import iu_reports

DERM = ("ISIC_0024311", "ISIC_0027001", "ISIC_0027287")
CT_ORGANS = {"liver": 5, "spleen": 1}  # TotalSegmentator v1 label values


def mask_box(mask_path: Path) -> tuple[float, float, float, float]:
    """Normalized xyxy extent of the nonzero pixels of a real mask (pixel edges, so a full mask is 0..1)."""
    mask = np.asarray(Image.open(mask_path).convert("L")) > 0
    rows, cols = np.nonzero(mask)
    h, w = mask.shape
    return (cols.min() / w, rows.min() / h, (cols.max() + 1) / w, (rows.max() + 1) / h)


def fixture_samples(shared_data: Path) -> list[Sample]:
    derm = shared_data / "derm"
    samples = []
    for i, report in enumerate(iu_reports(shared_data, 2)):
        samples.append(Sample(
            f"iu-{i}", "iu-xray", "report", "chest_xray",
            (ImageRef(str(shared_data / "cxr_png" / "00000001_000.png"), "chest_xray"),),
            instruction(Task.REPORT, index=i), f"FINDINGS: {report['FINDINGS']} IMPRESSION: {report['IMPRESSION']}",
            instruction_fields={"image": "<img0>"}))
    for name in DERM:
        image = ImageRef(str(derm / "images" / f"{name}.jpg"), "dermoscopy")
        mask = derm / "masks" / f"{name}.png"
        samples.append(Sample(
            f"seg-{name}", "ham10000", "segmentation", "dermoscopy", (image,),
            instruction(Task.SEGMENTATION, target="lesion"), f"The segmentation mask of lesion is {SEG2D_TOKEN}.",
            masks=(MaskTarget(str(mask), "lesion"),), instruction_fields={"image": "<img0>", "target": "lesion"}))
        samples.append(Sample(
            f"det-{name}", "ham10000", "detection", "dermoscopy", (image,),
            instruction(Task.DETECTION, target="lesion"), f"lesion {DET_TOKEN}.",
            boxes=(BoxTarget("lesion", mask_box(mask)),), instruction_fields={"image": "<img0>"},
            absent_classes=("nodule", "scar")))
    for organ, value in CT_ORGANS.items():
        samples.append(Sample(
            f"ct-{organ}", "totalsegmentator", "segmentation", "ct",
            (ImageRef(str(shared_data / "nifti" / "example_ct_sm.nii.gz"), "ct"),),
            instruction(Task.SEGMENTATION, target=organ), f"The segmentation mask of {organ} is {SEG3D_TOKEN}.",
            masks=(MaskTarget(str(shared_data / "nifti" / "example_seg.nii.gz"), organ, value=value),),
            instruction_fields={"image": "<img0>", "target": organ}))
    return samples
